package postgres

import (
	"bytes"
	"database/sql"
	"fmt"
	"io/fs"
	"strings"
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

// Migration 11 leaves the payloads of events already queued in their rows
// (and a node of the version before, during a rolling upgrade, goes on
// writing them there): each way of reading or rewriting a payload finds
// them. Its Down puts every payload back in its row.
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
	payload := func(id string) string {
		return `{"event_name":"Lead","event_id":"` + id + `","user_data":{"client_ip_address":"203.0.113.9"}}`
	}
	now := time.Now()
	// insertOld writes an event as the version before did, its payload in
	// the row.
	insertOld := func(id, state, visitor string) {
		t.Helper()
		if _, err := sqlDB.ExecContext(ctx, `INSERT INTO outbox (site_key, event_name, event_id, event_time, payload, state,
			next_attempt, created_at, visitor_id) VALUES ('k', 'Lead', $1, $2, $3, $4, $2, $2, $5)`,
			id, now, box.Seal([]byte(payload(id)), []byte(store.PayloadAD)), state, visitor); err != nil {
			t.Fatal(err)
		}
	}
	insertOld("a", store.StatePending, "")
	insertOld("b", store.StateHeld, "v")
	insertOld("c", store.StatePending, "w")

	db, err := Open(ctx, dbURL, box) // migrates to the newest
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	insertOld("e", store.StatePending, "") // a node not yet upgraded
	if _, err := db.Enqueue(ctx, []store.NewEvent{{SiteKey: "k", EventName: "Lead", EventID: "d", EventTime: now,
		Payload: []byte(payload("d"))}}); err != nil {
		t.Fatal(err)
	}
	refilled := strings.Replace(payload("b"), `{"client`, `{"fbp":"fb.1.1.2","client`, 1)
	fill := func(pt []byte) []byte {
		return bytes.Replace(pt, []byte(`{"client`), []byte(`{"fbp":"fb.1.1.2","client`), 1)
	}
	if n, err := db.ReleaseHeld(ctx, "k", "v", true, fill); err != nil || n != 1 {
		t.Fatalf("ReleaseHeld = %d, %v", n, err)
	}
	if _, err := db.Forget(ctx, store.ForgetRequest{SiteKey: "k", VisitorIDs: []string{"w"}}); err != nil {
		t.Fatal(err)
	}
	items, err := db.Claim(ctx, "k", "o", 10, time.Now().Add(time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, it := range items {
		got[it.EventID] = string(it.Payload)
	}
	want := map[string]string{"a": payload("a"), "b": refilled, "d": payload("d"), "e": payload("e")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("claimed payloads after migrating:\n%v\nwant (c forgotten, b refilled)\n%v", got, want)
	}
	var inRows int
	if err := sqlDB.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE payload IS NOT NULL`).Scan(&inRows); err != nil {
		t.Fatal(err)
	}
	if inRows != 2 { // a and e; b's refill moved it
		t.Errorf("%d payloads in their rows, want 2 (a, e)", inRows)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := p.DownTo(ctx, 10); err != nil {
		t.Fatal(err)
	}
	rows, err := sqlDB.QueryContext(ctx, `SELECT event_id, payload FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	back := map[string]string{}
	for rows.Next() {
		var id string
		var sealed []byte
		if err := rows.Scan(&id, &sealed); err != nil {
			t.Fatal(err)
		}
		pt, err := box.Open(sealed, []byte(store.PayloadAD))
		if err != nil {
			t.Fatalf("event %s after Down: %v", id, err)
		}
		back[id] = string(pt)
	}
	if fmt.Sprint(back) != fmt.Sprint(want) {
		t.Errorf("payloads after Down:\n%v\nwant them back in their rows\n%v", back, want)
	}
}

// planRows runs EXPLAIN (ANALYZE, FORMAT JSON) of q in a transaction it
// rolls back, and sums over the plan's scans of outbox the rows they
// returned and the rows their filters removed.
func planRows(t *testing.T, db *DB, q string, args ...any) (returned, removed float64) {
	t.Helper()
	ctx := t.Context()
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var plan []struct{ Plan map[string]any }
	if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+q, args...).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if n["Relation Name"] == "outbox" && strings.HasSuffix(fmt.Sprint(n["Node Type"]), "Scan") {
			loops, _ := n["Actual Loops"].(float64)
			rows, _ := n["Actual Rows"].(float64)
			gone, _ := n["Rows Removed by Filter"].(float64)
			returned += rows * loops
			removed += gone * loops
		}
		kids, _ := n["Plans"].([]any)
		for _, k := range kids {
			walk(k.(map[string]any))
		}
	}
	walk(plan[0].Plan)
	return returned, removed
}

// A claim reads the pending rows it takes, not the rows leased to batches
// still in flight nor those to retry later, and DueSites reads a row or
// two per site, not every queued row.
func TestClaimAndDueSitesReadLittle(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, storetest.PostgresDatabase(t), newBox(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	for _, site := range []string{"a", "b", "c"} {
		evs := make([]store.NewEvent, 1000)
		for n := range 10 {
			for i := range evs {
				evs[i] = store.NewEvent{SiteKey: site, EventName: "Lead", EventID: fmt.Sprint(n, "-", i), EventTime: now, Payload: []byte(`{}`)}
			}
			if _, err := db.Enqueue(ctx, evs); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Of site a's 10,000 events, 7,000 delivered, 1,000 to retry in an
	// hour, 1,000 in flight and 1,000 pending.
	now = time.Now().Add(time.Second)
	for n := range 9 {
		items, err := db.Claim(ctx, "a", "o", 1000, now, time.Hour)
		if err != nil || len(items) != 1000 {
			t.Fatalf("Claim = %d items, %v", len(items), err)
		}
		if n == 8 {
			break
		}
		outs := make([]store.Outcome, len(items))
		for i, it := range items {
			outs[i] = store.Outcome{ID: it.ID, Kind: store.OutcomeDelivered}
			if n == 0 {
				outs[i] = store.Outcome{ID: it.ID, Kind: store.OutcomeRetry, RetryAt: now.Add(time.Hour)}
			}
		}
		if err := db.Complete(ctx, "o", outs, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.pool.Exec(ctx, "VACUUM ANALYZE outbox"); err != nil {
		t.Fatal(err)
	}

	returned, removed := planRows(t, db, claimSQL+"o.id", "a", now, 100, "p", now.Add(time.Hour))
	if removed > 0 || returned > 300 {
		t.Errorf("a claim of 100 read %.0f rows of outbox and its filters removed %.0f; want about 100 read, none removed", returned, removed)
	}
	returned, removed = planRows(t, db, dueSitesSQL)
	if returned+removed > 10 {
		t.Errorf("DueSites of 3 sites read %.0f rows of outbox and its filters removed %.0f; want about one a site", returned, removed)
	}
}
