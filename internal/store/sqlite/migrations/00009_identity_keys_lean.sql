-- +goose Up
-- Learning writes the keys of every new customer, and each row of a
-- random-keyed index costs a page write: the (site_key, visitor_id) index
-- goes (forget deletes a person's rows by their hashes, which the identity
-- holds), and a pseudo visitor's own external_id ('ext:' || hash) is found
-- by the visitor id, not by a row of its own.
DROP INDEX identity_keys_visitor;
DELETE FROM identity_keys WHERE kind = 'external_id' AND visitor_id = 'ext:' || hash;

-- +goose Down
INSERT OR IGNORE INTO identity_keys (kind, hash, site_key, visitor_id, updated_at)
    SELECT 'external_id', substr(visitor_id, 5), site_key, visitor_id, updated_at FROM identities WHERE visitor_id LIKE 'ext:%';
CREATE INDEX identity_keys_visitor ON identity_keys (site_key, visitor_id);
