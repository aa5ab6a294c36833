-- +goose Up
-- Admin API tokens get a scope (read, write or webhooks), an expiry (0:
-- never, which tokens made before keep) and a revocation time (0: active).
-- Tokens made before can no longer change webhook settings: scope write.
ALTER TABLE admin_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'write';
ALTER TABLE admin_tokens ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE admin_tokens ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE admin_tokens DROP COLUMN revoked_at;
ALTER TABLE admin_tokens DROP COLUMN expires_at;
ALTER TABLE admin_tokens DROP COLUMN scope;
