-- +goose Up
-- The request's own top-level Graph parameters besides test_event_code
-- (partner_agent, namespace_id, upload_*), an encoded query string sent
-- with the event; '' = none.
ALTER TABLE outbox ADD COLUMN params TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE outbox DROP COLUMN params;
