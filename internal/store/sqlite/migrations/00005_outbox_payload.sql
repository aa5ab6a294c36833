-- +goose Up
-- Payloads (about 1.4 KB sealed) live apart from the outbox row, so the
-- dispatcher's claim and outcome updates rewrite a row of about 150 bytes
-- instead of copying the payload into the WAL twice more.
CREATE TABLE outbox_payload (
    id      INTEGER PRIMARY KEY,
    payload BLOB NOT NULL
);
INSERT INTO outbox_payload (id, payload) SELECT id, payload FROM outbox;
ALTER TABLE outbox DROP COLUMN payload;
-- Every way an outbox row goes (prune, forget, consent denied, site
-- removed) takes its payload with it; secure_delete overwrites it.
-- +goose StatementBegin
CREATE TRIGGER outbox_payload_delete AFTER DELETE ON outbox BEGIN
    DELETE FROM outbox_payload WHERE id = old.id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER outbox_payload_delete;
ALTER TABLE outbox ADD COLUMN payload BLOB NOT NULL DEFAULT x'';
UPDATE outbox SET payload = (SELECT payload FROM outbox_payload p WHERE p.id = outbox.id);
DROP TABLE outbox_payload;
