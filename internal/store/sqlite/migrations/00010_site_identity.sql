-- +goose Up
-- How far identity stitching goes for a site (full, visitor, off), and how
-- long after a click its fbc may be added to the person's later events.
ALTER TABLE sites ADD COLUMN identity TEXT NOT NULL DEFAULT 'full';
ALTER TABLE sites ADD COLUMN click_window INTEGER NOT NULL DEFAULT 604800000;

-- +goose Down
ALTER TABLE sites DROP COLUMN click_window;
ALTER TABLE sites DROP COLUMN identity;
