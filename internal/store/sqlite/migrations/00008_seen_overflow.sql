-- +goose Up
-- Dedup keys past the in-memory index's bound (dedup.go) go to a B-tree
-- keyed by the event, as before seen_log: slower per event, but memory
-- stays bounded at any volume.
CREATE TABLE seen (
    site_key   TEXT NOT NULL,
    event_name TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (site_key, event_name, event_id)
) WITHOUT ROWID;
CREATE INDEX seen_at ON seen (seen_at);

-- +goose Down
DROP TABLE seen;
