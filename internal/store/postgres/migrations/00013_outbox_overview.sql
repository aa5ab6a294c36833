-- +goose NO TRANSACTION
-- +goose Up
-- The dashboard's overview reads the last 24 hours. Errors found the rows
-- created since through outbox_created and read each for its error;
-- outbox_errors holds only the rows that carry one (retries and dead
-- letters). Activity counts each minute's deliveries in outbox_delivered
-- and its dead letters in outbox_dead (a row with a delivered_at is
-- delivered or dead). Built CONCURRENTLY, so nodes still running go on
-- writing the outbox meanwhile; a build cut short leaves an invalid index,
-- which the next run drops and builds again.
DROP INDEX CONCURRENTLY IF EXISTS outbox_errors;
CREATE INDEX CONCURRENTLY outbox_errors ON outbox (created_at) WHERE last_error <> '';
DROP INDEX CONCURRENTLY IF EXISTS outbox_dead;
CREATE INDEX CONCURRENTLY outbox_dead ON outbox (delivered_at) WHERE state = 'dead';

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS outbox_dead;
DROP INDEX CONCURRENTLY IF EXISTS outbox_errors;
