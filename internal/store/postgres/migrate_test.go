package postgres

import (
	"bytes"
	"database/sql"
	"io/fs"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	"github.com/pressly/goose/v3"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

func newBox(t *testing.T) *secret.Box {
	t.Helper()
	box, err := secret.New(bytes.Repeat([]byte{7}, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// Migration 11 moves the payloads of a database's queued events into
// outbox_payload, and its Down puts them back in their rows.
func TestPayloadMigration(t *testing.T) {
	ctx := t.Context()
	dbURL := storetest.PostgresDatabase(t)
	box := newBox(t)
	sqlDB, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, sub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 10); err != nil {
		t.Fatal(err)
	}
	const plain = `{"event_name":"Lead","event_id":"old-1","user_data":{"client_ip_address":"203.0.113.9"}}`
	now := time.Now()
	if _, err := sqlDB.ExecContext(ctx, `INSERT INTO outbox (site_key, event_name, event_id, event_time, payload, state, next_attempt, created_at)
		VALUES ('k', 'Lead', 'old-1', $1, $2, 'pending', $1, $1)`, now, box.Seal([]byte(plain), []byte(store.PayloadAD))); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, dbURL, box) // migrates to the newest
	if err != nil {
		t.Fatal(err)
	}
	items, err := db.Claim(ctx, "k", "o", 10, now.Add(time.Second), time.Minute)
	if err != nil || len(items) != 1 || string(items[0].Payload) != plain {
		t.Fatalf("Claim after migrating = %+v, %v; want the event with its payload", items, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := p.DownTo(ctx, 10); err != nil {
		t.Fatal(err)
	}
	var sealed []byte
	if err := sqlDB.QueryRowContext(ctx, `SELECT payload FROM outbox WHERE event_id = 'old-1'`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if got, err := box.Open(sealed, []byte(store.PayloadAD)); err != nil || string(got) != plain {
		t.Errorf("payload after Down = %q, %v; want it back in its row", got, err)
	}
}
