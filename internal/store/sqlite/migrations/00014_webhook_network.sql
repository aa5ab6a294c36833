-- +goose Up
-- A site's webhook is https to a public address unless the operator allows
-- plain http or a private network (sitecfg, leads/webhook.go).
ALTER TABLE sites ADD COLUMN webhook_allow_http INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN webhook_allow_private INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE sites DROP COLUMN webhook_allow_private;
ALTER TABLE sites DROP COLUMN webhook_allow_http;
