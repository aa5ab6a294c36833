package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/store"
)

// openTestDB opens a fresh store in a temporary directory, closed when
// the test ends.
func openTestDB(t *testing.T) *DB {
	t.Helper()
	box, _ := secret.New(bytes.Repeat([]byte{3}, secret.KeySize))
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), FileName), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// column reads the one column of q's rows on pool.
func column[T any](t *testing.T, pool *sql.DB, q string, args ...any) []T {
	t.Helper()
	rows, err := pool.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func enqueueN(t *testing.T, db *DB, site string, n int, now time.Time) []int64 {
	t.Helper()
	evs := make([]store.NewEvent, n)
	for i := range evs {
		evs[i] = store.NewEvent{SiteKey: site, EventName: "Purchase", EventID: fmt.Sprintf("%s-%d-%d", site, now.UnixNano(), i),
			EventTime: now, Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)), Source: "browser", VisitorID: fmt.Sprint("v", i),
			TestEventCode: map[bool]string{true: "TEST1"}[i%3 == 0]}
	}
	res, err := db.Enqueue(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, n)
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids
}

// TestClaimReadsWholeItems checks the claim's lean read against Item, the
// full read of a row: every field but the lease's (state, next attempt,
// attempts) is what the file holds, on both claim paths.
func TestClaimReadsWholeItems(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	now := time.Now()
	ids := enqueueN(t, db, "s", 40, now)
	now = now.Add(time.Second) // due
	// A retried and a dead-then-replayed item carry an error and a trace.
	first, err := db.Claim(ctx, "s", "o", 2, now, time.Minute)
	if err != nil || len(first) != 2 {
		t.Fatalf("Claim = %d items, %v", len(first), err)
	}
	if err := db.Complete(ctx, "o", []store.Outcome{
		{ID: first[0].ID, Kind: store.OutcomeRetry, RetryAt: now.Add(-time.Second), Reason: "HTTP 503", TraceID: "tr1"},
		{ID: first[1].ID, Kind: store.OutcomeDead, Reason: "rejected: bad", TraceID: "tr2"},
	}, now); err != nil {
		t.Fatal(err)
	}
	if err := db.Replay(ctx, first[1].ID, now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	check := func(items []store.Item) {
		t.Helper()
		for _, it := range items {
			want, err := db.Item(ctx, it.ID)
			if err != nil {
				t.Fatal(err)
			}
			if it.State != store.StateInflight || want.State != store.StateInflight || it.Attempts != want.Attempts ||
				!it.NextAttempt.Equal(want.NextAttempt) {
				t.Errorf("item %d: state %s attempts %d next %v, Item says %s %d %v", it.ID, it.State, it.Attempts,
					it.NextAttempt, want.State, want.Attempts, want.NextAttempt)
			}
			got := it
			got.State, got.Attempts, got.NextAttempt = want.State, want.Attempts, want.NextAttempt
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", *want) {
				t.Errorf("claimed item %d\n %+v\nItem\n %+v", it.ID, got, *want)
			}
		}
	}
	// Nothing leased: one read of the due items.
	a, err := db.Claim(ctx, "s", "o", 10, now, time.Minute)
	if err != nil || len(a) != 10 {
		t.Fatalf("Claim = %d items, %v", len(a), err)
	}
	if a[0].ID != ids[0] || a[0].LastError != "HTTP 503" || a[0].TraceID != "tr1" || a[0].Attempts != 2 {
		t.Errorf("retried item claimed as %+v", a[0])
	}
	if a[1].ID != ids[1] || a[1].TraceID != "tr2" || a[1].LastError != "" || a[1].Attempts != 2 {
		t.Errorf("replayed item claimed as %+v", a[1])
	}
	check(a)
	// Some leased: due ids, then the items by id.
	b, err := db.Claim(ctx, "s", "o2", 10, now, time.Minute)
	if err != nil || len(b) != 10 || b[0].ID != ids[10] {
		t.Fatalf("second Claim = %v, %v; want 10 items from %d", itemIDs(b), err, ids[10])
	}
	check(b)
}

func itemIDs(items []store.Item) []int64 {
	out := make([]int64, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

// TestClaimAndCompleteScatteredIDs claims past leases that leave the due
// ids in short and long runs, and delivers them, so both the ranged
// statements and the IN lists are used.
func TestClaimAndCompleteScatteredIDs(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	now := time.Now()
	ids := enqueueN(t, db, "s", 60, now)
	now = now.Add(time.Second) // due
	// Lease every third of the first 30 ids (runs of 2, below minRun),
	// none of the last 30 (one run).
	var leased []store.Outcome
	db.leases.mu.Lock()
	for i := 0; i < 30; i += 3 {
		db.leases.m[ids[i]] = lease{owner: "other", site: "s", until: ms(now.Add(time.Hour)), attempts: 1}
		leased = append(leased, store.Outcome{ID: ids[i], Kind: store.OutcomeDelivered})
	}
	db.leases.mu.Unlock()
	items, err := db.Claim(ctx, "s", "o", 100, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for i, id := range ids {
		if i >= 30 || i%3 != 0 {
			want = append(want, id)
		}
	}
	if got := itemIDs(items); !slices.Equal(got, want) {
		t.Fatalf("Claim = %v\nwant %v", got, want)
	}
	for i, it := range items {
		if string(it.Payload) == "" || it.SiteKey != "s" || it.EventName != "Purchase" {
			t.Fatalf("claimed item %d: %+v", i, it)
		}
	}
	// One trace for most, another for a few: two groups, each with short
	// runs and a long one. Outcomes of another owner's items are ignored.
	var outs []store.Outcome
	for i, it := range items {
		tr := "t1"
		if i%7 == 0 {
			tr = "t2"
		}
		outs = append(outs, store.Outcome{ID: it.ID, Kind: store.OutcomeDelivered, TraceID: tr})
	}
	outs = append(outs, leased...)
	if err := db.Complete(ctx, "o", outs, now); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		it, err := db.Item(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if i < 30 && i%3 == 0 {
			if it.State != store.StateInflight || it.TraceID != "" {
				t.Errorf("item %d, leased to another owner: %s %q", id, it.State, it.TraceID)
			}
			continue
		}
		if it.State != store.StateDelivered || it.Attempts != 1 || it.DeliveredAt.IsZero() || (it.TraceID != "t1" && it.TraceID != "t2") {
			t.Errorf("item %d after delivery: %+v", id, it)
		}
	}
	db.leases.mu.Lock()
	n := len(db.leases.m)
	db.leases.mu.Unlock()
	if n != 10 {
		t.Errorf("%d leases left, want the other owner's 10", n)
	}
	// A delivered item in the middle of a range is not touched again.
	again, err := db.Claim(ctx, "s", "o", 100, now.Add(2*time.Hour), time.Minute)
	if err != nil || len(again) != 10 {
		t.Fatalf("after the other leases ran out, Claim = %v, %v", itemIDs(again), err)
	}
}

func TestRuns(t *testing.T) {
	for _, c := range []struct {
		ids  []int64
		want []idRun
	}{
		{nil, nil},
		{[]int64{5}, []idRun{{5, 5}}},
		{[]int64{1, 2, 3, 7, 9, 10}, []idRun{{1, 3}, {7, 7}, {9, 10}}},
	} {
		if got := runs(c.ids); !slices.Equal(got, c.want) {
			t.Errorf("runs(%v) = %v, want %v", c.ids, got, c.want)
		}
	}
}

// The dispatch path's statements must use the primary key and the due
// index, not scan the outbox.
func TestClaimPlans(t *testing.T) {
	db := openTestDB(t)
	for q, want := range map[string]string{
		claimDueQuery:   "outbox_due",
		claimRangeQuery: "INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
		dueIDsQuery:     "outbox_due",
		`UPDATE outbox SET state='delivered' WHERE id BETWEEN ? AND ? AND state IN ('pending','inflight')`: "INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
	} {
		if p := queryPlan(t, db.w, q, 1, 2, 3); !strings.Contains(p, want) || strings.Contains(p, "SCAN o") {
			t.Errorf("%s\nplan %q does not use %s", q, p, want)
		}
	}
}

// A batch's outcomes are one transaction, written by the writer goroutine
// between ingest's groups: an invalid outcome leaves the whole batch
// leased, as it was, and the batch can be completed again.
func TestCompleteIsOneTransaction(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	now := time.Now()
	const n = 600
	enqueueN(t, db, "s", n, now)
	now = now.Add(time.Second)
	items, err := db.Claim(ctx, "s", "o", n, now, time.Minute)
	if err != nil || len(items) != n {
		t.Fatalf("Claim = %d items, %v", len(items), err)
	}
	outs := make([]store.Outcome, n)
	for i, it := range items {
		outs[i] = store.Outcome{ID: it.ID, Kind: store.OutcomeDelivered, TraceID: "t"}
	}
	outs[n-1].Kind = 99
	if err := db.Complete(ctx, "o", outs, now); err == nil || !strings.Contains(err.Error(), "unknown outcome kind") {
		t.Fatalf("Complete = %v, want the unknown kind's error", err)
	}
	states := func() map[string]int {
		m := map[string]int{}
		for _, it := range items {
			got, err := db.Item(ctx, it.ID)
			if err != nil {
				t.Fatal(err)
			}
			m[got.State]++
		}
		return m
	}
	if got := states(); got[store.StateInflight] != n {
		t.Fatalf("after a failed Complete: states %v, want all %d still in flight", got, n)
	}
	outs[n-1].Kind = store.OutcomeDelivered
	if err := db.Complete(ctx, "o", outs, now); err != nil {
		t.Fatal(err)
	}
	if got := states(); got[store.StateDelivered] != n {
		t.Fatalf("after Complete: states %v, want all %d delivered", got, n)
	}
}

// Complete after Close says the store is closed; it never waits forever
// for a writer that has exited.
func TestCompleteAfterClose(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	enqueueN(t, db, "s", 1, time.Now())
	items, err := db.Claim(ctx, "s", "o", 1, time.Now().Add(time.Second), time.Minute)
	if err != nil || len(items) != 1 {
		t.Fatalf("Claim = %d items, %v", len(items), err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	err = db.Complete(ctx, "o", []store.Outcome{{ID: items[0].ID, Kind: store.OutcomeDelivered}}, time.Now())
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Complete after Close = %v, want ErrUnavailable", err)
	}
}

// Workers that claim and complete one site's items at once, while more are
// enqueued, never get an item twice: a claim that read before an outcome's
// commit still finds the item leased, one that reads after finds it done.
func TestConcurrentClaimsNeverRepeatACompletedItem(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	const total, workers = 3000, 4
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	claimed := map[int64]int{}
	errs := make(chan error, workers+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i += 100 {
			enqueueN(t, db, "s", 100, now.Add(time.Duration(i))) // its event ids differ by time
		}
	}()
	var done atomic.Bool
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				items, err := db.Claim(ctx, "s", "o", 250, time.Now(), time.Minute)
				if err != nil {
					errs <- err
					return
				}
				outs := make([]store.Outcome, len(items))
				mu.Lock()
				for i, it := range items {
					claimed[it.ID]++
					outs[i] = store.Outcome{ID: it.ID, Kind: store.OutcomeDelivered, TraceID: "t"}
				}
				if len(claimed) == total {
					done.Store(true)
				}
				mu.Unlock()
				if err := db.Complete(ctx, "o", outs, time.Now()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		done.Store(true)
		<-finished
		t.Fatalf("only %d of %d items claimed in a minute", len(claimed), total)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("item %d claimed %d times", id, n)
		}
	}
}

// TestOutcomesGoBeforeTheNextGroup: the writer records a waiting Complete
// before it writes the next group of ingest, even a full one: a delivery
// worker waits for its outcomes before it claims again, and under full
// ingest a random choice between the two left delivery at 40 % of ingest.
func TestOutcomesGoBeforeTheNextGroup(t *testing.T) {
	for round := range 12 {
		if waiting := outcomesWaitingAtNextGroup(t, 1); waiting != 0 {
			t.Fatalf("round %d: a group of ingest began with %d Complete calls waiting", round, waiting)
		}
	}
}

// TestGroupAfterMaxOutcomes: many sites' outcomes at once do not hold up
// ingest for more than maxOutcomesFirst of them.
func TestGroupAfterMaxOutcomes(t *testing.T) {
	const queued = maxOutcomesFirst + 2
	if waiting := outcomesWaitingAtNextGroup(t, queued); waiting != queued-maxOutcomesFirst {
		t.Fatalf("a group of ingest began with %d of %d Complete calls waiting, want %d", waiting, queued, queued-maxOutcomesFirst)
	}
}

// outcomesWaitingAtNextGroup holds the writer inside a group, queues a full
// group and n Complete calls, lets it go and reports how many of the calls
// were still queued when the next group began.
func outcomesWaitingAtNextGroup(t *testing.T, n int) int64 {
	t.Helper()
	db := openTestDB(t)
	ctx := context.Background()
	var groups atomic.Int64   // insertGroup calls (each reads db.now first)
	var recording atomic.Bool // after the writer is released
	waiting := atomic.Int64{} // Complete calls still queued when the group began
	waiting.Store(-1)
	db.now = func() time.Time {
		// Only ingest's groups: the checkpointer reads the clock too.
		if pc, _, _, _ := runtime.Caller(1); !strings.HasSuffix(runtime.FuncForPC(pc).Name(), ".insertGroup") {
			return time.Now()
		}
		if recording.Load() {
			waiting.CompareAndSwap(-1, int64(len(db.completes)))
		}
		groups.Add(1)
		return time.Now()
	}
	enqueueN(t, db, "s", n, time.Now())
	items, err := db.Claim(ctx, "s", "o", n, time.Now().Add(time.Second), time.Minute)
	if err != nil || len(items) != n {
		t.Fatalf("Claim = %d items, %v", len(items), err)
	}
	// Hold the writer inside a group (insertGroup takes the dedup lock
	// after reading the clock), then queue a full group and the calls.
	db.dedup.mu.Lock()
	before := groups.Load()
	var wg sync.WaitGroup
	wg.Go(func() { enqueueN(t, db, "a", 1, time.Now()) })
	sharedtest.WaitFor(t, 10*time.Second, "the writer to begin a group", func() bool { return groups.Load() > before })
	wg.Go(func() { enqueueN(t, db, "b", minPipelined, time.Now()) })
	for _, it := range items {
		wg.Go(func() {
			if err := db.Complete(ctx, "o", []store.Outcome{{ID: it.ID, Kind: store.OutcomeDelivered}}, time.Now()); err != nil {
				t.Error(err)
			}
		})
	}
	sharedtest.WaitFor(t, 10*time.Second, "a group and the Complete calls to queue", func() bool { return len(db.reqs) == 1 && len(db.completes) == n })
	recording.Store(true)
	db.dedup.mu.Unlock()
	wg.Wait()
	return waiting.Load()
}

// TestLearningDoesNotWaitForTheWriter: identity learning writes its own
// file, so it goes on while the main file's one write connection is taken
// (by a long group commit, a forget's scan).
func TestLearningDoesNotWaitForTheWriter(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	conn, err := db.w.Conn(ctx) // the main file's only write connection
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, "ROLLBACK")
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	id := &store.Identity{SiteKey: "s", VisitorID: "v", Hashes: map[string][]string{store.KeyEmail: {strings.Repeat("ab", 32)}}, LikelyNew: true}
	if err := db.LearnIdentities(lctx, []*store.Identity{id}); err != nil {
		t.Fatalf("learning while the main writer is busy: %v", err)
	}
	got, err := db.Identity(ctx, "s", "v")
	if err != nil || !slices.Equal(got.Hashes[store.KeyEmail], id.Hashes[store.KeyEmail]) {
		t.Fatalf("Identity = %+v, %v; want what was learned", got, err)
	}
}

// TestGroupFailsWhenARowIsRefused: a row a constraint refuses fails the
// whole group. With the outbox's id sequence set back, the next group's
// ids collide with stored rows: Enqueue fails, nothing of it is stored, the
// rows it collided with keep their payloads, and the same events are taken
// once the sequence is right again (the dedup index forgot the failed
// group's keys).
func TestGroupFailsWhenARowIsRefused(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	first := enqueueN(t, db, "s", 20, time.Now())
	before, err := db.Item(ctx, first[15])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = seq - 10 WHERE name = 'outbox'`); err != nil {
		t.Fatal(err)
	}
	evs := make([]store.NewEvent, 20)
	for i := range evs {
		evs[i] = store.NewEvent{SiteKey: "s", EventName: "Lead", EventID: fmt.Sprint("second-", i), EventTime: time.Now(),
			Payload: []byte(`{"event_name":"Lead"}`), Source: "server"}
	}
	if res, err := db.Enqueue(ctx, evs); err == nil {
		t.Fatalf("Enqueue over colliding ids = %+v, want an error", res)
	}
	var n int
	if err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE event_name = 'Lead'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows of the failed group stored (%v), want none", n, err)
	}
	after, err := db.Item(ctx, first[15])
	if err != nil || !bytes.Equal(after.Payload, before.Payload) || after.EventName != before.EventName {
		t.Errorf("item %d after the failed group = %+v, %v; want it as it was", first[15], after, err)
	}
	// The sequence restored, the same events are taken.
	if _, err := db.w.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = (SELECT max(id) FROM outbox) WHERE name = 'outbox'`); err != nil {
		t.Fatal(err)
	}
	res, err := db.Enqueue(ctx, evs)
	if err != nil || res[0].Status != store.Accepted || res[19].Status != store.Accepted {
		t.Fatalf("Enqueue after the failure = %+v, %v; want all accepted", res, err)
	}
}

// TestRawBlobsAreTheRowsOwn checks what scanClaimed relies on to open
// claimed payloads in place: a blob scanned into sql.RawBytes is a new
// slice for each row, which later rows, closing the rows and writing
// into it leave alone, and the other way round.
func TestRawBlobsAreTheRowsOwn(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)`); err != nil {
		t.Fatal(err)
	}
	want := map[int64][]byte{}
	for id := int64(1); id <= 3; id++ {
		want[id] = bytes.Repeat([]byte{byte(id)}, 100)
		if _, err := db.w.ExecContext(ctx, `INSERT INTO blobs VALUES (?, ?)`, id, want[id]); err != nil {
			t.Fatal(err)
		}
	}
	read := func() map[int64]sql.RawBytes {
		rows, err := db.r.QueryContext(ctx, `SELECT id, b FROM blobs ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int64]sql.RawBytes{}
		for rows.Next() {
			var id int64
			var b sql.RawBytes
			if err := rows.Scan(&id, &b); err != nil {
				t.Fatal(err)
			}
			got[id] = b
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	got := read()
	for id, b := range got {
		if !bytes.Equal(b, want[id]) {
			t.Fatalf("row %d's blob changed after the rows went on: %x", id, b)
		}
		for other, o := range got {
			if other != id && &b[0] == &o[0] {
				t.Fatalf("rows %d and %d share a blob's memory", id, other)
			}
		}
		for i := range b {
			b[i] = 0xee // as opening in place does
		}
	}
	for id, b := range read() {
		if !bytes.Equal(b, want[id]) {
			t.Fatalf("writing into a scanned blob changed row %d: %x", id, b)
		}
	}
}

// The insert binds empty text columns as NULL (orNull) and the state as a
// flag; the rows hold empty strings and the state's name, as before.
func TestInsertedColumns(t *testing.T) {
	db := openTestDB(t)
	now := time.Now()
	evs := []store.NewEvent{
		{SiteKey: "s", EventName: "Lead", EventID: "plain", EventTime: now, Payload: []byte(`{}`), Source: "server"},
		{SiteKey: "s", EventName: "Lead", EventID: "held", EventTime: now, Payload: []byte(`{}`), Source: "browser",
			VisitorID: "v1", TestEventCode: "TEST1", Params: "partner_agent=x", Enriched: []string{"em"}, Held: true},
	}
	if _, err := db.Enqueue(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	got := column[string](t, db.r, `SELECT event_id||'|'||state||'|'||quote(visitor_id)||'|'||quote(test_event_code)||'|'||quote(params)||'|'||quote(enriched)
		FROM outbox ORDER BY id`)
	want := []string{"plain|pending|''|''|''|''", "held|held|'v1'|'TEST1'|'partner_agent=x'|'em'"}
	if !slices.Equal(got, want) {
		t.Errorf("rows = %q, want %q", got, want)
	}
}

// The writer runs a group's inserts on its driver connection directly
// (rawInserts): through database/sql every execution copied its 20
// arguments an event into a new []driver.NamedValue, 800 bytes an event.
func TestEnqueueAllocations(t *testing.T) {
	db := openTestDB(t)
	payload := bytes.Repeat([]byte("x"), 600)
	const calls, per = 8, 512
	evs := make([]store.NewEvent, per)
	enqueue := func(c int) {
		for i := range evs {
			evs[i] = store.NewEvent{SiteKey: "s", EventName: "Purchase", EventID: fmt.Sprint("e-", c, "-", i),
				EventTime: time.Now(), Payload: payload, Source: "server"}
		}
		if _, err := db.Enqueue(t.Context(), evs); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(-1) // the statements' first use
	// 2,330 bytes: the sealed payload (640), its id, the recent entry,
	// the driver's bindings; 3,148 through database/sql.
	if perEvent := sharedtest.BytesPerRun(calls, enqueue) / per; perEvent > 2700 {
		t.Errorf("Enqueue allocated %d bytes an event, want at most 2,700", perEvent)
	}
}
