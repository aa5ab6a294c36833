-- +goose Up
-- Same tables and meaning as the SQLite store. Times are timestamptz,
-- durations are milliseconds; sealed values (access_token, payload) are
-- secret.Box output with the same additional data as SQLite, so data can
-- move between the two with the same key.
CREATE TABLE sites (
    key                     text PRIMARY KEY,
    name                    text NOT NULL,
    domains                 text[] NOT NULL DEFAULT '{}',
    pixel_id                text NOT NULL DEFAULT '',
    access_token            bytea,
    api_key_hash            text NOT NULL UNIQUE,
    test_event_code         text NOT NULL DEFAULT '',
    consent                 text NOT NULL DEFAULT 'none',
    default_region          text NOT NULL DEFAULT '',
    partial_leads           boolean NOT NULL DEFAULT true,
    partial_lead_timeout_ms bigint NOT NULL DEFAULT 1200000,
    partial_lead_forward    boolean NOT NULL DEFAULT false,
    partial_lead_event      text NOT NULL DEFAULT 'PartialLead',
    webhook_url             text NOT NULL DEFAULT '',
    retention_ms            bigint NOT NULL DEFAULT 2592000000,
    paused                  boolean NOT NULL DEFAULT false,
    pause_reason            text NOT NULL DEFAULT '',
    demo                    boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL
);

-- Dedup keys: the primary key is what makes dedup hold across nodes.
CREATE TABLE seen (
    site_key   text NOT NULL,
    event_name text NOT NULL,
    event_id   text NOT NULL,
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (site_key, event_name, event_id)
);
CREATE INDEX seen_at ON seen (seen_at);

CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_key     text NOT NULL,
    event_name   text NOT NULL,
    event_id     text NOT NULL,
    event_time   timestamptz NOT NULL,
    payload      bytea NOT NULL,
    state        text NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    next_attempt timestamptz NOT NULL,
    lease_owner  text NOT NULL DEFAULT '',
    last_error   text NOT NULL DEFAULT '',
    trace_id     text NOT NULL DEFAULT '',
    source       text NOT NULL DEFAULT '',
    visitor_id   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    delivered_at timestamptz
);
-- Claim: due items of one site in id order. Partial, so delivered and dead
-- rows (the bulk of the table) cost nothing.
CREATE INDEX outbox_ready ON outbox (site_key, id) WHERE state IN ('pending', 'inflight');
-- DueSites and Depth.
CREATE INDEX outbox_due ON outbox (site_key, next_attempt) WHERE state IN ('pending', 'inflight');
CREATE INDEX outbox_owner ON outbox (lease_owner) WHERE state = 'inflight';
CREATE INDEX outbox_held ON outbox (site_key, visitor_id) WHERE state = 'held';
-- Prune (delivered) and the dashboard's activity (delivered and dead).
CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX outbox_site_state ON outbox (site_key, state, id);
-- A queue table churns: every item is inserted, updated twice and later
-- deleted. Fresh statistics keep Claim on outbox_ready (with stale ones the
-- planner may walk the primary key through finished rows), and frequent
-- vacuums keep the partial indexes small.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.01);

CREATE TABLE sandbox (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_key text NOT NULL,
    at       timestamptz NOT NULL,
    payload  bytea NOT NULL
);
CREATE INDEX sandbox_site ON sandbox (site_key, id);

-- +goose Down
DROP TABLE sandbox;
DROP TABLE outbox;
DROP TABLE seen;
DROP TABLE sites;
