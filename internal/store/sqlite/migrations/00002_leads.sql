-- +goose Up
-- Lead sessions and leads: one row from the first captured field to a
-- submit (submitted) or the sweeper (partial, later maybe converted).
-- data is sealed JSON (raw field values, page URL, fbp, fbc, IP, UA).
CREATE TABLE leads (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id    TEXT NOT NULL UNIQUE,
    site_key      TEXT NOT NULL,
    visitor_id    TEXT NOT NULL,
    form_id       TEXT NOT NULL,
    state         TEXT NOT NULL,
    data          BLOB NOT NULL,
    consent       TEXT NOT NULL DEFAULT '',
    em_hash       TEXT NOT NULL DEFAULT '',
    ph_hash       TEXT NOT NULL DEFAULT '',
    started_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    due_at        INTEGER NOT NULL DEFAULT 0,
    partial_at    INTEGER NOT NULL DEFAULT 0,
    closed_at     INTEGER NOT NULL DEFAULT 0,
    expires_at    INTEGER NOT NULL,
    forward_state TEXT NOT NULL DEFAULT '',
    forward_at    INTEGER NOT NULL DEFAULT 0,
    forward_error TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX leads_active ON leads (site_key, visitor_id, form_id) WHERE state IN ('open', 'partial');
CREATE INDEX leads_due ON leads (due_at) WHERE state = 'open';
CREATE INDEX leads_forward ON leads (forward_at) WHERE forward_state = 'pending';
CREATE INDEX leads_site ON leads (site_key, updated_at);
CREATE INDEX leads_visitor ON leads (visitor_id);
CREATE INDEX leads_expires ON leads (expires_at);
CREATE INDEX leads_em ON leads (em_hash) WHERE em_hash <> '';
CREATE INDEX leads_ph ON leads (ph_hash) WHERE ph_hash <> '';

-- Durable webhook deliveries of partial leads; the body is built from the
-- lead at each attempt, so no personal data is copied here.
CREATE TABLE lead_webhooks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    lead_id      INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    site_key     TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    done_at      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX lead_webhooks_due ON lead_webhooks (next_attempt) WHERE state = 'pending';
CREATE INDEX lead_webhooks_lead ON lead_webhooks (lead_id);

CREATE TABLE lead_webhook_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      INTEGER NOT NULL REFERENCES lead_webhooks (id) ON DELETE CASCADE,
    site_key    TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status      INTEGER NOT NULL DEFAULT 0,
    error       TEXT NOT NULL DEFAULT '',
    duration_ms INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL,
    retry_at    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX lead_webhook_log_job ON lead_webhook_log (job_id);
CREATE INDEX lead_webhook_log_site ON lead_webhook_log (site_key, id);

-- Per-site webhook signing secrets, sealed.
CREATE TABLE lead_webhook_secrets (
    site_key   TEXT PRIMARY KEY,
    secret     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- Identity stitching: SHA-256 hashes of match keys per visitor (JSON
-- object key -> list, newest first) and the sealed latest fbp, fbc, IP, UA.
CREATE TABLE identities (
    site_key   TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    hashes     TEXT NOT NULL DEFAULT '{}',
    device     BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (site_key, visitor_id)
) WITHOUT ROWID;

-- hash -> visitor index for em, ph and external_id lookups.
CREATE TABLE identity_keys (
    kind       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    site_key   TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, hash, site_key, visitor_id)
) WITHOUT ROWID;
CREATE INDEX identity_keys_visitor ON identity_keys (site_key, visitor_id);

-- +goose Down
DROP TABLE identity_keys;
DROP TABLE identities;
DROP TABLE lead_webhook_secrets;
DROP TABLE lead_webhook_log;
DROP TABLE lead_webhooks;
DROP TABLE leads;
