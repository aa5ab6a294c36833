-- +goose Up
-- Payloads (about 1.4 KB sealed) of new events live apart from the outbox
-- row, as in the SQLite store. PostgreSQL moves a value out of line only
-- past about 2 KB, so in the row every update (the claim, the outcome)
-- wrote a new version of the row with its payload, and WAL, index and
-- vacuum work to match; a row is now about 200 bytes.
--
-- The outbox keeps its payload column, now nullable: rows written before
-- keep their payload there (readers take outbox_payload's, else the
-- row's), so the migration copies nothing, and during a rolling upgrade
-- nodes of the version before go on inserting theirs there.
CREATE TABLE outbox_payload (
    id      bigint PRIMARY KEY,
    payload bytea NOT NULL
);
-- Sealed, so compressing it would be wasted work.
ALTER TABLE outbox_payload ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL;
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
UPDATE outbox o SET payload = p.payload FROM outbox_payload p WHERE p.id = o.id;
ALTER TABLE outbox ALTER COLUMN payload SET NOT NULL;
DROP TABLE outbox_payload;
