-- +goose Up
-- Visitor ids are random, so indexing every outbox row by visitor dirtied
-- a scattered index page per event on the ingest path. Only held events
-- (waiting for consent) are looked up by visitor on a hot path; forgetting
-- a visitor, which is rare, reads the outbox instead.
DROP INDEX outbox_visitor;
CREATE INDEX outbox_held ON outbox (site_key, visitor_id) WHERE state = 'held';

-- +goose Down
DROP INDEX outbox_held;
CREATE INDEX outbox_visitor ON outbox (visitor_id) WHERE visitor_id <> '';
