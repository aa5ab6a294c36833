package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	"github.com/pressly/goose/v3"

	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// Migration 11 leaves the payloads of events already queued in their rows
// (and a node of the version before, during a rolling upgrade, goes on
// writing them there): each way of reading or rewriting a payload finds
// them. Its Down puts every payload back in its row.
func TestPayloadMigration(t *testing.T) {
	ctx := t.Context()
	dbURL := storetest.PostgresDatabase(t)
	box := storetest.Box(t)
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

// plan is what planRows reads of EXPLAIN (ANALYZE, FORMAT JSON): over
// the scans of outbox, the rows they returned and the rows their filters
// removed (a bitmap scan's index entries count as rows returned: they
// include those of dead row versions, which its heap scan then passes
// over without counting them), with the rows any join's filter removed,
// the outbox indexes they used, the scans' node types and the heap
// fetches of its index-only scans.
type plan struct {
	returned, removed float64
	indexes           []string
	scans             []string
	heapFetches       float64
}

// planRows runs EXPLAIN (ANALYZE, FORMAT JSON) of q in a transaction it
// rolls back. With generic, q is prepared and its generic plan explained,
// the plan a prepared statement (as pgx makes them) may keep after five
// runs, planned without its parameters' values.
func planRows(t *testing.T, db *DB, generic bool, q string, args ...any) plan {
	t.Helper()
	ctx := t.Context()
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	explain := "EXPLAIN (ANALYZE, FORMAT JSON) " + q
	if generic {
		if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "PREPARE planned AS "+q); err != nil {
			t.Fatal(err)
		}
		// EXECUTE takes no parameters of its own: the values go as literals.
		values := make([]string, len(args))
		for i, a := range args {
			values[i] = literal(t, a)
		}
		explain, args = "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE planned("+strings.Join(values, ", ")+")", nil
	}
	var out []struct{ Plan map[string]any }
	if err := tx.QueryRow(ctx, explain, args...).Scan(&out); err != nil {
		t.Fatal(err)
	}
	if generic {
		if _, err := tx.Exec(ctx, "DEALLOCATE planned"); err != nil { // it outlives the transaction
			t.Fatal(err)
		}
	}
	var p plan
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		index, _ := n["Index Name"].(string)
		outboxIndex := strings.HasPrefix(index, "outbox_") && !strings.HasPrefix(index, "outbox_payload")
		if n["Relation Name"] == "outbox" && strings.HasSuffix(fmt.Sprint(n["Node Type"]), "Scan") ||
			n["Node Type"] == "Bitmap Index Scan" && outboxIndex {
			loops, _ := n["Actual Loops"].(float64)
			rows, _ := n["Actual Rows"].(float64)
			gone, _ := n["Rows Removed by Filter"].(float64)
			p.returned += rows * loops
			p.removed += gone * loops
			if n["Relation Name"] == "outbox" {
				p.scans = append(p.scans, fmt.Sprint(n["Node Type"]))
				fetched, _ := n["Heap Fetches"].(float64)
				p.heapFetches += fetched * loops
			}
		}
		if outboxIndex {
			p.indexes = append(p.indexes, index)
		}
		joined, _ := n["Rows Removed by Join Filter"].(float64)
		loops, _ := n["Actual Loops"].(float64)
		p.removed += joined * loops
		kids, _ := n["Plans"].([]any)
		for _, k := range kids {
			walk(k.(map[string]any))
		}
	}
	walk(out[0].Plan)
	return p
}

// OpenForTest opens the store on dbURL with storetest.Box, closed when the
// test ends (package postgres_test's mustOpen too).
func OpenForTest(tb testing.TB, dbURL string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), dbURL, storetest.Box(tb))
	if err != nil {
		tb.Fatalf("Open = %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// openNew opens a store on a new database.
func openNew(t *testing.T) *DB { return OpenForTest(t, storetest.PostgresDatabase(t)) }

// claimRounds claims site a's items at now for owner "o", limits[i] in
// round i, and completes each round's items with outcome but the last
// round's, which stay in flight.
func claimRounds(t *testing.T, db *DB, now time.Time, limits []int, outcome func(round int, id int64) store.Outcome) {
	t.Helper()
	for round, limit := range limits {
		items, err := db.Claim(t.Context(), "a", "o", limit, now, time.Hour)
		if err != nil || len(items) != limit {
			t.Fatalf("Claim = %d items, %v; want %d", len(items), err, limit)
		}
		if round == len(limits)-1 {
			return
		}
		outs := make([]store.Outcome, len(items))
		for i, it := range items {
			outs[i] = outcome(round, it.ID)
		}
		if err := db.Complete(t.Context(), "o", outs, now); err != nil {
			t.Fatal(err)
		}
	}
}

// literal writes a test's parameter as an SQL literal.
func literal(t *testing.T, v any) string {
	switch v := v.(type) {
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case int:
		return fmt.Sprint(v)
	case time.Time:
		return "'" + v.UTC().Format(time.RFC3339Nano) + "'"
	case []time.Time:
		ts := make([]string, len(v))
		for i, at := range v {
			ts[i] = `"` + at.UTC().Format(time.RFC3339Nano) + `"`
		}
		return "'{" + strings.Join(ts, ",") + "}'"
	case []string:
		quoted := make([]string, len(v))
		for i, x := range v {
			quoted[i] = `"` + strings.ReplaceAll(strings.ReplaceAll(x, `\`, `\\`), `"`, `\"`) + `"`
		}
		return "'{" + strings.ReplaceAll(strings.Join(quoted, ","), "'", "''") + "}'"
	case []int64:
		ids := make([]string, len(v))
		for i, id := range v {
			ids[i] = fmt.Sprint(id)
		}
		return "'{" + strings.Join(ids, ",") + "}'"
	}
	t.Fatalf("no literal for %T", v)
	return ""
}

// A claim reads the pending rows it takes, not the rows leased to batches
// still in flight nor those to retry later, and DueSites reads a row or
// two per site, not every queued row.
func TestClaimAndDueSitesReadLittle(t *testing.T) {
	ctx := t.Context()
	db := openNew(t)
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
	claimRounds(t, db, now, []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000}, func(round int, id int64) store.Outcome {
		if round == 0 {
			return store.Outcome{ID: id, Kind: store.OutcomeRetry, RetryAt: now.Add(time.Hour)}
		}
		return store.Outcome{ID: id, Kind: store.OutcomeDelivered}
	})
	if _, err := db.pool.Exec(ctx, "VACUUM ANALYZE outbox"); err != nil {
		t.Fatal(err)
	}

	if p := planRows(t, db, false, claimSQL+"o.id", "a", now, 100, "p", now.Add(time.Hour)); p.removed > 0 || p.returned > 300 {
		t.Errorf("a claim of 100 read %.0f rows of outbox and its filters removed %.0f; want about 100 read, none removed", p.returned, p.removed)
	}
	if p := planRows(t, db, false, dueSitesSQL); p.returned+p.removed > 10 {
		t.Errorf("DueSites of 3 sites read %.0f rows of outbox and its filters removed %.0f; want about one a site", p.returned, p.removed)
	}
}

// An outcome finds its rows by id (or, in a small outbox, reads it whole),
// never through outbox_leased, whose entries of rows no longer in flight
// stay until a vacuum: there a batch of 1,000 read every row leased since.
func TestOutcomesReadTheirRows(t *testing.T) {
	ctx := t.Context()
	db := openNew(t)
	const batch = 1000
	evs := make([]store.NewEvent, batch)
	var items []store.Item
	for round := range 10 {
		for i := range evs {
			evs[i] = store.NewEvent{SiteKey: "a", EventName: "Purchase", EventID: fmt.Sprint(round, "-", i), EventTime: time.Now(), Payload: []byte(`{}`)}
		}
		if _, err := db.Enqueue(ctx, evs); err != nil {
			t.Fatal(err)
		}
		var err error
		if items, err = db.Claim(ctx, "a", "o", batch, time.Now().Add(time.Second), time.Hour); err != nil || len(items) != batch {
			t.Fatalf("Claim = %d items, %v", len(items), err)
		}
		if round == 9 {
			break // the last batch stays in flight
		}
		outs := make([]store.Outcome, batch)
		for i, it := range items {
			outs[i] = store.Outcome{ID: it.ID, Kind: store.OutcomeDelivered, TraceID: "t"}
		}
		if err := db.Complete(ctx, "o", outs, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	ids := make([]int64, batch)
	times := make([]time.Time, batch)
	reasons := make([]string, batch)
	for i, it := range items {
		ids[i], times[i], reasons[i] = it.ID, time.Now().Add(time.Duration(i)*time.Second), fmt.Sprint("reason ", i)
	}
	for _, c := range []struct {
		name string
		q    string
		args []any
	}{
		{"delivered", deliveredSQL, []any{ids, "t", time.Now(), "o"}},
		{"retry", retrySQL, []any{ids, times, "r", "t", "o"}},
		{"dead", deadSQL, []any{ids, reasons, "t", time.Now(), "o"}},
		{"release", releaseSQL, []any{ids, time.Now(), "o"}},
	} {
		for _, generic := range []bool{false, true} {
			p := planRows(t, db, generic, c.q, c.args...)
			// By id, a bitmap scan also counts the versions a row left:
			// pending before its claim, and those of the statements
			// explained (and rolled back) before.
			if slices.Contains(p.indexes, "outbox_leased") || p.returned < batch || p.returned+p.removed > 10*batch {
				t.Errorf("%s (generic plan %v): %d outcomes in a %d-row outbox read %.0f rows through %q and filters removed %.0f; want them read by id or in one pass",
					c.name, generic, batch, 10*batch, p.returned, p.indexes, p.removed)
			}
		}
	}
}

// enqueueLeads enqueues rounds × 1,000 Lead events of site a.
func enqueueLeads(t *testing.T, db *DB, rounds int) {
	t.Helper()
	evs := make([]store.NewEvent, 1000)
	for n := range rounds {
		for i := range evs {
			evs[i] = store.NewEvent{SiteKey: "a", EventName: "Lead", EventID: fmt.Sprint(n, "-", i), EventTime: time.Now(), Payload: []byte(`{}`)}
		}
		if _, err := db.Enqueue(t.Context(), evs); err != nil {
			t.Fatal(err)
		}
	}
}

// Depth reads the queued rows, not the outbox's delivered history.
func TestDepthReadsQueuedRows(t *testing.T) {
	ctx := t.Context()
	db := openNew(t)
	enqueueLeads(t, db, 10)
	// 9,000 delivered, 500 in flight, 500 pending.
	claimRounds(t, db, time.Now().Add(time.Second), []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 500},
		func(_ int, id int64) store.Outcome { return store.Outcome{ID: id, Kind: store.OutcomeDelivered} })
	if _, err := db.pool.Exec(ctx, "VACUUM ANALYZE outbox"); err != nil {
		t.Fatal(err)
	}
	depth, err := db.Depth(ctx)
	if err != nil || depth["a"] != 1000 {
		t.Fatalf("Depth = %v, %v; want a: 1000", depth, err)
	}
	if p := planRows(t, db, false, depthSQL); p.removed > 0 || p.returned > 1000 {
		t.Errorf("Depth read %.0f rows of outbox and its filters removed %.0f; want the 1,000 queued read, none removed", p.returned, p.removed)
	}
}

// The overview reads indexes, not the day's rows: Errors only the rows
// that carry an error (outbox_errors), Activity index ranges it counts
// without a visit to the table (outbox_created, outbox_delivered,
// outbox_dead). Before, Errors read every row created since, and Activity
// visited each delivered row for its state.
func TestOverviewReadsIndexes(t *testing.T) {
	ctx := t.Context()
	db := openNew(t)
	enqueueLeads(t, db, 10)
	// 9,800 delivered, 100 to retry, 100 dead.
	claimRounds(t, db, time.Now().Add(time.Second), []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 0},
		func(_ int, id int64) store.Outcome {
			switch id % 100 {
			case 7:
				return store.Outcome{ID: id, Kind: store.OutcomeRetry, RetryAt: time.Now().Add(time.Hour), Reason: "HTTP 500"}
			case 8:
				return store.Outcome{ID: id, Kind: store.OutcomeDead, Class: store.DeadRejected, Reason: "rejected: bad"}
			}
			return store.Outcome{ID: id, Kind: store.OutcomeDelivered}
		})
	if _, err := db.pool.Exec(ctx, "VACUUM ANALYZE outbox"); err != nil {
		t.Fatal(err)
	}
	since, until := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if got := storetest.ActivityTotal(t, db, since, until); got != (store.MinuteCount{In: 10000, Delivered: 9800, Dead: 100}) {
		t.Fatalf("Activity's total = %+v; want 10000 in, 9800 delivered, 100 dead", got)
	}
	if p := planRows(t, db, false, activitySQL, since, until); p.removed > 0 || p.heapFetches > 0 || slices.ContainsFunc(p.scans, func(s string) bool { return s != "Index Only Scan" }) {
		t.Errorf("Activity scanned outbox by %v (%.0f heap fetches, %.0f rows removed by filters); want index-only scans, no fetch, none removed", p.scans, p.heapFetches, p.removed)
	}
	for _, generic := range []bool{false, true} {
		if p := planRows(t, db, generic, errorsSQL, since, 10); p.removed > 0 || p.returned > 200 {
			t.Errorf("Errors (generic plan %v) read %.0f rows of outbox and its filters removed %.0f; want the 200 with an error, none removed", generic, p.returned, p.removed)
		}
	}
}
