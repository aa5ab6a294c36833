-- +goose Up
-- Lead sessions and leads, as in the SQLite store. data is sealed JSON.
-- Times that may be unset hold the zero time ('0001-01-01'), which sorts
-- before every real time, as 0 does in SQLite.
CREATE TABLE leads (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id    text NOT NULL UNIQUE,
    site_key      text NOT NULL,
    visitor_id    text NOT NULL,
    form_id       text NOT NULL,
    state         text NOT NULL,
    data          bytea NOT NULL,
    consent       text NOT NULL DEFAULT '',
    em_hash       text NOT NULL DEFAULT '',
    ph_hash       text NOT NULL DEFAULT '',
    started_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    due_at        timestamptz NOT NULL,
    partial_at    timestamptz NOT NULL,
    closed_at     timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    forward_state text NOT NULL DEFAULT '',
    forward_at    timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    forward_error text NOT NULL DEFAULT ''
);
-- One active lead per (site, visitor, form), also across nodes.
CREATE UNIQUE INDEX leads_active ON leads (site_key, visitor_id, form_id) WHERE state IN ('open', 'partial');
CREATE INDEX leads_due ON leads (due_at) WHERE state = 'open';
CREATE INDEX leads_forward ON leads (forward_at) WHERE forward_state = 'pending';
CREATE INDEX leads_site ON leads (site_key, updated_at);
CREATE INDEX leads_visitor ON leads (visitor_id);
CREATE INDEX leads_expires ON leads (expires_at);
CREATE INDEX leads_em ON leads (em_hash) WHERE em_hash <> '';
CREATE INDEX leads_ph ON leads (ph_hash) WHERE ph_hash <> '';

CREATE TABLE lead_webhooks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lead_id      bigint NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    site_key     text NOT NULL,
    state        text NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    next_attempt timestamptz NOT NULL,
    last_error   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    done_at      timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00'
);
CREATE INDEX lead_webhooks_due ON lead_webhooks (next_attempt) WHERE state = 'pending';
CREATE INDEX lead_webhooks_lead ON lead_webhooks (lead_id);

CREATE TABLE lead_webhook_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      bigint NOT NULL REFERENCES lead_webhooks (id) ON DELETE CASCADE,
    site_key    text NOT NULL,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL,
    status      integer NOT NULL DEFAULT 0,
    error       text NOT NULL DEFAULT '',
    duration_ms bigint NOT NULL DEFAULT 0,
    state       text NOT NULL,
    retry_at    timestamptz NOT NULL
);
CREATE INDEX lead_webhook_log_job ON lead_webhook_log (job_id);
CREATE INDEX lead_webhook_log_site ON lead_webhook_log (site_key, id);

CREATE TABLE lead_webhook_secrets (
    site_key   text PRIMARY KEY,
    secret     bytea NOT NULL,
    created_at timestamptz NOT NULL
);

-- Identity stitching: hashes is JSON text (key -> list, newest first);
-- device is the sealed fbp, fbc, IP, UA.
CREATE TABLE identities (
    site_key   text NOT NULL,
    visitor_id text NOT NULL,
    hashes     text NOT NULL DEFAULT '{}',
    device     bytea,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (site_key, visitor_id)
);

CREATE TABLE identity_keys (
    kind       text NOT NULL,
    hash       text NOT NULL,
    site_key   text NOT NULL,
    visitor_id text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (kind, hash, site_key, visitor_id)
);
CREATE INDEX identity_keys_visitor ON identity_keys (site_key, visitor_id);

-- +goose Down
DROP TABLE identity_keys;
DROP TABLE identities;
DROP TABLE lead_webhook_secrets;
DROP TABLE lead_webhook_log;
DROP TABLE lead_webhooks;
DROP TABLE leads;
