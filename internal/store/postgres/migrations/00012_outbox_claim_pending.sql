-- +goose Up
-- Claim walked outbox_ready in id order, and the index held in-flight
-- rows too: each claim visited every row leased to a batch still on its
-- way (up to the dispatcher's parallel batches of 1,000, of every node)
-- before it reached one it could take. Queued rows are now in two
-- indexes by state, each by site and next attempt: outbox_pending, from
-- which a claim takes due rows oldest first and never visits a retry
-- that is not due yet, and outbox_leased, where it finds leases that ran
-- out (and Release a node's leases). DueSites reads the first row of each
-- site in both. A row changes state twice, and each time it is added to
-- every index its new state belongs to: three indexes in place of
-- outbox_ready, outbox_due and outbox_owner are two fewer entries to write
-- over an event's life.
DROP INDEX outbox_ready;
DROP INDEX outbox_due;
DROP INDEX outbox_owner;
CREATE INDEX outbox_pending ON outbox (site_key, next_attempt, id) WHERE state = 'pending';
CREATE INDEX outbox_leased ON outbox (site_key, next_attempt, id) WHERE state = 'inflight';

-- +goose Down
DROP INDEX outbox_leased;
DROP INDEX outbox_pending;
CREATE INDEX outbox_ready ON outbox (site_key, id) WHERE state IN ('pending', 'inflight');
CREATE INDEX outbox_due ON outbox (site_key, next_attempt) WHERE state IN ('pending', 'inflight');
CREATE INDEX outbox_owner ON outbox (lease_owner) WHERE state = 'inflight';
