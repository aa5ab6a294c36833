-- +goose Up
CREATE TABLE admin_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE admin_sessions (
    id_hash    TEXT PRIMARY KEY,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

CREATE TABLE admin_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL DEFAULT 0
);

-- The dashboard reads the last 24 hours of the outbox by minute.
CREATE INDEX outbox_created ON outbox (created_at);
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at > 0;

-- +goose Down
DROP INDEX outbox_delivered;
DROP INDEX outbox_created;
DROP TABLE admin_tokens;
DROP TABLE admin_sessions;
DROP TABLE admin_settings;
