-- +goose Up
-- Identity stitching (identity.go), in its own file (identity_file.go):
-- SHA-256 hashes of match keys per visitor (JSON object key -> list, newest
-- first) and the sealed latest fbp, fbc, IP, UA.
CREATE TABLE identities (
    site_key   TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    hashes     TEXT NOT NULL DEFAULT '{}',
    device     BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (site_key, visitor_id)
) WITHOUT ROWID;
-- Relay nodes refresh their filter of known keys from what changed since.
CREATE INDEX identities_updated ON identities (updated_at);

-- hash -> visitor index for em and external_id look-ups (a phone links no
-- one; a pseudo visitor's own external_id is its name, not a row).
CREATE TABLE identity_keys (
    kind       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    site_key   TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, hash, site_key, visitor_id)
) WITHOUT ROWID;
CREATE INDEX identity_keys_updated ON identity_keys (updated_at);

-- +goose Down
DROP TABLE identity_keys;
DROP TABLE identities;
