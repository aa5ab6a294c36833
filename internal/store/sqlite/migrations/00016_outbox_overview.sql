-- +goose Up
-- The dashboard's overview reads the last 24 hours. Errors found the rows
-- created since through outbox_created and read each row for its error;
-- outbox_errors holds only the rows that carry one (retries and dead
-- letters), so it reads those alone. Activity counts each minute's
-- deliveries in outbox_delivered and its dead letters in outbox_dead, both
-- without reading a row (a row with a delivered_at is delivered or dead).
CREATE INDEX outbox_errors ON outbox (created_at) WHERE last_error <> '';
CREATE INDEX outbox_dead ON outbox (delivered_at) WHERE state = 'dead';

-- +goose Down
DROP INDEX outbox_dead;
DROP INDEX outbox_errors;
