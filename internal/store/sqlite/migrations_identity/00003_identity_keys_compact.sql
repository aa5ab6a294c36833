-- +goose Up
-- Learning's random-keyed trees hold 64-bit keys (capirelay_key, see
-- keys.go) instead of text: identities' unique index holds the key of
-- (site_key, visitor_id), about 16 bytes an entry against 80, and
-- identity_keys one (key of (kind, hash), identity rowid) pair per indexed
-- hash, about 20 bytes against 150, with no index by time (KnownKeys reads
-- identities). A chunk of new people then dirties far fewer pages: with
-- 100,000 people known, BenchmarkLearnIdentities wrote 26.9 KB per new
-- person in 76-100 us, against 91.7 KB in 220-241 us. Readers check a row's
-- site, visitor and hashes, so a key shared by two values links no one.
CREATE TABLE identities_new (
    id         INTEGER PRIMARY KEY,
    vk         INTEGER NOT NULL,
    site_key   TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    hashes     TEXT NOT NULL DEFAULT '{}',
    device     BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO identities_new (id, vk, site_key, visitor_id, hashes, device, created_at, updated_at)
    SELECT id, capirelay_key(site_key, visitor_id), site_key, visitor_id, hashes, device, created_at, updated_at
    FROM identities ORDER BY id;
-- Of two visitors whose keys collide, the first keeps its row (learning
-- skips the other from now on, see keys.go).
DELETE FROM identities_new WHERE id IN (
    SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY vk ORDER BY id) AS n FROM identities_new) WHERE n > 1);
-- Built once the rows are in: sorting 200,000 keys is quicker than
-- inserting them at random.
CREATE UNIQUE INDEX identities_vk ON identities_new (vk);
CREATE TABLE identity_keys_new (
    k  INTEGER NOT NULL,
    id INTEGER NOT NULL,
    PRIMARY KEY (k, id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO identity_keys_new (k, id)
    SELECT capirelay_key(x.kind, x.hash), n.id FROM identity_keys x
    JOIN identities i ON i.site_key = x.site_key AND i.visitor_id = x.visitor_id
    JOIN identities_new n ON n.id = i.id
    ORDER BY 1, 2;
DROP TABLE identity_keys;
DROP TABLE identities;
ALTER TABLE identities_new RENAME TO identities;
ALTER TABLE identity_keys_new RENAME TO identity_keys;
CREATE INDEX identities_updated ON identities (updated_at);

-- +goose Down
CREATE TABLE identities_old (
    id         INTEGER PRIMARY KEY,
    site_key   TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    hashes     TEXT NOT NULL DEFAULT '{}',
    device     BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (site_key, visitor_id)
);
INSERT INTO identities_old (id, site_key, visitor_id, hashes, device, created_at, updated_at)
    SELECT id, site_key, visitor_id, hashes, device, created_at, updated_at FROM identities ORDER BY id;
CREATE TABLE identity_keys_old (
    kind       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    site_key   TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, hash, site_key, visitor_id)
) WITHOUT ROWID;
-- The index rows again from each identity's em and external_id lists
-- (store.IndexRows: a pseudo visitor's own external_id has none).
INSERT OR IGNORE INTO identity_keys_old (kind, hash, site_key, visitor_id, updated_at)
    SELECT k.key, v.value, i.site_key, i.visitor_id, i.updated_at
    FROM identities i, json_each(i.hashes) k, json_each(k.value) v
    WHERE k.key IN ('em', 'external_id') AND NOT (k.key = 'external_id' AND i.visitor_id = 'ext:' || v.value);
DROP TABLE identity_keys;
DROP TABLE identities;
ALTER TABLE identities_old RENAME TO identities;
ALTER TABLE identity_keys_old RENAME TO identity_keys;
CREATE INDEX identities_updated ON identities (updated_at);
CREATE INDEX identity_keys_updated ON identity_keys (updated_at);
