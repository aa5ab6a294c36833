-- +goose Up
-- identities becomes a rowid table: a new person's row (about 1.2 KB of
-- hashes and sealed device data) is appended at the end of the table
-- instead of landing on a random page of a tree keyed by a hash-like
-- visitor id; only the small (site_key, visitor_id) entry of the unique
-- index lands at random. With 100,000 people known and keys in no order,
-- learning wrote 101 KB per new person against 145 KB, in 257 against
-- 370 µs (BenchmarkLearnIdentities); in process under realistic load it
-- learned a third more people with less CPU.
CREATE TABLE identities_rowid (
    id         INTEGER PRIMARY KEY,
    site_key   TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    hashes     TEXT NOT NULL DEFAULT '{}',
    device     BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (site_key, visitor_id)
);
INSERT INTO identities_rowid (site_key, visitor_id, hashes, device, created_at, updated_at)
    SELECT site_key, visitor_id, hashes, device, created_at, updated_at FROM identities ORDER BY created_at;
DROP TABLE identities;
ALTER TABLE identities_rowid RENAME TO identities;
CREATE INDEX identities_updated ON identities (updated_at);

-- +goose Down
CREATE TABLE identities_keyed (
    site_key   TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    hashes     TEXT NOT NULL DEFAULT '{}',
    device     BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (site_key, visitor_id)
) WITHOUT ROWID;
INSERT INTO identities_keyed SELECT site_key, visitor_id, hashes, device, created_at, updated_at FROM identities;
DROP TABLE identities;
ALTER TABLE identities_keyed RENAME TO identities;
CREATE INDEX identities_updated ON identities (updated_at);
