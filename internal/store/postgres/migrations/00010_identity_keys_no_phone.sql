-- +goose Up
-- A phone links no one: it has no index row (each cost a page write per
-- new customer); forget reads the identities through to find a phone.
DELETE FROM identity_keys WHERE kind = 'ph';

-- +goose Down
INSERT INTO identity_keys (kind, hash, site_key, visitor_id, updated_at)
    SELECT 'ph', j, i.site_key, i.visitor_id, i.updated_at FROM identities i, jsonb_array_elements_text(i.hashes::jsonb -> 'ph') AS j
    ON CONFLICT DO NOTHING;
