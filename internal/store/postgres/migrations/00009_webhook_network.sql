-- +goose Up
-- A site's webhook is https to a public address unless the operator allows
-- plain http or a private network (sitecfg, leads/webhook.go).
ALTER TABLE sites ADD COLUMN webhook_allow_http boolean NOT NULL DEFAULT false;
ALTER TABLE sites ADD COLUMN webhook_allow_private boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE sites DROP COLUMN webhook_allow_private;
ALTER TABLE sites DROP COLUMN webhook_allow_http;
