-- +goose Up
-- A request's own test_event_code and its other top-level Graph parameters
-- (partner_agent, namespace_id, upload_*, an encoded query string), kept
-- with each of its events and sent with them, as in the SQLite store.
ALTER TABLE outbox ADD COLUMN test_event_code text NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN params text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE outbox DROP COLUMN params;
ALTER TABLE outbox DROP COLUMN test_event_code;
