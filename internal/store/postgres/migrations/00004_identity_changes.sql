-- +goose Up
-- Relay nodes refresh their in-memory filter of known visitors and hashes
-- from what changed since their last look.
CREATE INDEX identities_updated ON identities (updated_at);
CREATE INDEX identity_keys_updated ON identity_keys (updated_at);

-- +goose Down
DROP INDEX identity_keys_updated;
DROP INDEX identities_updated;
