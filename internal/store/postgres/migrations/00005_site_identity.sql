-- +goose Up
-- How far identity stitching goes for a site (full, visitor, off), and how
-- long after a click its fbc may be added to the person's later events.
ALTER TABLE sites ADD COLUMN identity text NOT NULL DEFAULT 'full';
ALTER TABLE sites ADD COLUMN click_window_ms bigint NOT NULL DEFAULT 604800000;
-- A pseudo visitor's own external_id ('ext:' || hash) is found by the
-- visitor id, not by an index row (store.IndexRows), as in SQLite.
DELETE FROM identity_keys WHERE kind = 'external_id' AND visitor_id = 'ext:' || hash;

-- +goose Down
INSERT INTO identity_keys (kind, hash, site_key, visitor_id, updated_at)
    SELECT 'external_id', substr(visitor_id, 5), site_key, visitor_id, updated_at FROM identities
    WHERE visitor_id LIKE 'ext:%' ON CONFLICT DO NOTHING;
ALTER TABLE sites DROP COLUMN click_window_ms;
ALTER TABLE sites DROP COLUMN identity;
