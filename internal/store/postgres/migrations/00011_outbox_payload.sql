-- +goose Up
-- Payloads (about 1.4 KB sealed) live apart from the outbox row, as in
-- the SQLite store. PostgreSQL moves a value out of line only past about
-- 2 KB, so in the row every update (the claim, the outcome) wrote a new
-- version of the row with its payload, and WAL, index and vacuum work to
-- match; a row is now about 200 bytes.
CREATE TABLE outbox_payload (
    id      bigint PRIMARY KEY,
    payload bytea NOT NULL
);
-- Sealed, so compressing it would be wasted work.
ALTER TABLE outbox_payload ALTER COLUMN payload SET STORAGE EXTERNAL;
INSERT INTO outbox_payload (id, payload) SELECT id, payload FROM outbox;
ALTER TABLE outbox DROP COLUMN payload;
-- Every way an outbox row goes (prune, forget, consent denied, site
-- removed) takes its payload with it, once per statement.
-- +goose StatementBegin
CREATE FUNCTION outbox_payload_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox_payload p USING gone g WHERE p.id = g.id;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER outbox_payload_delete AFTER DELETE ON outbox REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_payload_delete();

-- +goose Down
DROP TRIGGER outbox_payload_delete ON outbox;
DROP FUNCTION outbox_payload_delete();
ALTER TABLE outbox ADD COLUMN payload bytea NOT NULL DEFAULT '\x';
UPDATE outbox o SET payload = p.payload FROM outbox_payload p WHERE p.id = o.id;
ALTER TABLE outbox ALTER COLUMN payload DROP DEFAULT;
DROP TABLE outbox_payload;
