-- +goose Up
-- The user_data keys identity stitching added to an event (names only,
-- comma-separated), shown on the live-event page.
ALTER TABLE outbox ADD COLUMN enriched text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE outbox DROP COLUMN enriched;
