-- +goose Up
-- Claim walked outbox_ready in id order, and the index held in-flight
-- rows too: each claim visited every row leased to a batch still on its
-- way (up to the dispatcher's parallel batches of 1,000, of every node)
-- before it reached one it could take. outbox_ready now holds pending
-- rows only; a lease that ran out is found through outbox_leased, which
-- holds the in-flight rows by their lease's end (and serves Release in
-- place of outbox_owner).
DROP INDEX outbox_ready;
CREATE INDEX outbox_ready ON outbox (site_key, id) WHERE state = 'pending';
DROP INDEX outbox_owner;
CREATE INDEX outbox_leased ON outbox (site_key, next_attempt) WHERE state = 'inflight';

-- +goose Down
DROP INDEX outbox_leased;
CREATE INDEX outbox_owner ON outbox (lease_owner) WHERE state = 'inflight';
DROP INDEX outbox_ready;
CREATE INDEX outbox_ready ON outbox (site_key, id) WHERE state IN ('pending', 'inflight');
