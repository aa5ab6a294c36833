-- +goose Up
-- Admin API tokens get a scope (read, write or webhooks), an expiry (NULL:
-- never, which tokens made before keep) and a revocation time (NULL:
-- active). Tokens made before can no longer change webhook settings.
ALTER TABLE admin_tokens ADD COLUMN scope text NOT NULL DEFAULT 'write';
ALTER TABLE admin_tokens ADD COLUMN expires_at timestamptz;
ALTER TABLE admin_tokens ADD COLUMN revoked_at timestamptz;

-- +goose Down
ALTER TABLE admin_tokens DROP COLUMN revoked_at;
ALTER TABLE admin_tokens DROP COLUMN expires_at;
ALTER TABLE admin_tokens DROP COLUMN scope;
