-- +goose Up
-- Dedup keys are appended in arrival order and found through an index in
-- memory (dedup.go). Keyed by the event id, every new key landed on a
-- scattered B-tree page, and each commit rewrote one page per event.
CREATE TABLE seen_log (
    id         INTEGER PRIMARY KEY,
    site_key   TEXT NOT NULL,
    event_name TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    seen_at    INTEGER NOT NULL
);
INSERT INTO seen_log (site_key, event_name, event_id, seen_at)
    SELECT site_key, event_name, event_id, seen_at FROM seen ORDER BY seen_at;
DROP TABLE seen;

-- +goose Down
CREATE TABLE seen (
    site_key   TEXT NOT NULL,
    event_name TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (site_key, event_name, event_id)
) WITHOUT ROWID;
CREATE INDEX seen_at ON seen (seen_at);
INSERT INTO seen (site_key, event_name, event_id, seen_at)
    SELECT site_key, event_name, event_id, max(seen_at) FROM seen_log GROUP BY site_key, event_name, event_id;
DROP TABLE seen_log;
