-- +goose Up
-- A phone links no one: it has no index row (each cost a page write per
-- new customer); forget reads the identities through to find a phone.
DELETE FROM identity_keys WHERE kind = 'ph';

-- +goose Down
INSERT OR IGNORE INTO identity_keys (kind, hash, site_key, visitor_id, updated_at)
    SELECT 'ph', j.value, i.site_key, i.visitor_id, i.updated_at FROM identities i, json_each(i.hashes, '$.ph') j;
