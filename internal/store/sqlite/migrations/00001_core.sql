-- +goose Up
CREATE TABLE sites (
    key                  TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    domains              TEXT NOT NULL DEFAULT '[]',
    pixel_id             TEXT NOT NULL DEFAULT '',
    access_token         BLOB,
    api_key_hash         TEXT NOT NULL UNIQUE,
    test_event_code      TEXT NOT NULL DEFAULT '',
    consent              TEXT NOT NULL DEFAULT 'none',
    default_region       TEXT NOT NULL DEFAULT '',
    partial_leads        INTEGER NOT NULL DEFAULT 1,
    partial_lead_timeout INTEGER NOT NULL DEFAULT 1200000,
    partial_lead_forward INTEGER NOT NULL DEFAULT 0,
    partial_lead_event   TEXT NOT NULL DEFAULT 'PartialLead',
    webhook_url          TEXT NOT NULL DEFAULT '',
    retention            INTEGER NOT NULL DEFAULT 2592000000,
    paused               INTEGER NOT NULL DEFAULT 0,
    pause_reason         TEXT NOT NULL DEFAULT '',
    demo                 INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE seen (
    site_key   TEXT NOT NULL,
    event_name TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    seen_at    INTEGER NOT NULL,
    PRIMARY KEY (site_key, event_name, event_id)
) WITHOUT ROWID;
CREATE INDEX seen_at ON seen (seen_at);

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    site_key     TEXT NOT NULL,
    event_name   TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_time   INTEGER NOT NULL,
    payload      BLOB NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    lease_owner  TEXT NOT NULL DEFAULT '',
    last_error   TEXT NOT NULL DEFAULT '',
    trace_id     TEXT NOT NULL DEFAULT '',
    source       TEXT NOT NULL DEFAULT '',
    visitor_id   TEXT NOT NULL DEFAULT '',
    test_event_code TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER NOT NULL DEFAULT 0
);
-- Only queued rows are indexed for dispatch, so delivered history costs
-- nothing to claim past.
CREATE INDEX outbox_due ON outbox (site_key, next_attempt) WHERE state IN ('pending','inflight');
CREATE INDEX outbox_visitor ON outbox (visitor_id) WHERE visitor_id <> '';

CREATE TABLE sandbox (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    site_key TEXT NOT NULL,
    at       INTEGER NOT NULL,
    payload  BLOB NOT NULL
);
CREATE INDEX sandbox_site ON sandbox (site_key, id);

-- +goose Down
DROP TABLE sandbox;
DROP TABLE outbox;
DROP TABLE seen;
DROP TABLE sites;
