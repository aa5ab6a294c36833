-- +goose Up
CREATE TABLE admin_settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE admin_sessions (
    id_hash    text PRIMARY KEY,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

CREATE TABLE admin_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    hash         text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00'
);

-- The dashboard reads the last 24 hours of the outbox by minute
-- (outbox_delivered is in 00001).
CREATE INDEX outbox_created ON outbox (created_at);

-- +goose Down
DROP INDEX outbox_created;
DROP TABLE admin_tokens;
DROP TABLE admin_sessions;
DROP TABLE admin_settings;
