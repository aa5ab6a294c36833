package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/postgres"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// serverURL and newDatabase are storetest's: the test server's URL (a
// skip without one, except in CI) and a fresh database on it.
func serverURL(tb testing.TB) string   { return storetest.PostgresServer(tb) }
func newDatabase(tb testing.TB) string { return storetest.PostgresDatabase(tb) }

func mustOpen(tb testing.TB, dbURL string) *postgres.DB { return postgres.OpenForTest(tb, dbURL) }

func TestStore(t *testing.T) {
	serverURL(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return mustOpen(t, newDatabase(t))
	})
}

// TestSealedAtRest reads the raw columns: tokens and payloads are sealed,
// with the same additional data as the SQLite store, so a key moves data
// between the two.
func TestSealedAtRest(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	db := mustOpen(t, dbURL)
	const (
		token   = "EAAplaintext-token-4d2f9c"
		payload = `{"client_ip_address":"198.51.100.213","marker":"payload-plaintext-7e1b"}`
		sandbox = `{"marker":"sandbox-plaintext-93aa"}`
	)
	if err := db.CreateSite(ctx, &store.Site{Key: "k", Name: "n", APIKeyHash: "h", PixelID: "1", AccessToken: token}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Enqueue(ctx, []store.NewEvent{{SiteKey: "k", EventName: "Lead", EventID: "1",
		EventTime: time.Now(), Payload: []byte(payload)}}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordSandbox(ctx, "k", time.Now(), []byte(sandbox)); err != nil {
		t.Fatal(err)
	}

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	box := storetest.Box(t)
	for _, c := range []struct{ query, ad, plain string }{
		{`SELECT access_token FROM sites WHERE key = 'k'`, "site-token:k", token},
		{`SELECT payload FROM outbox_payload`, "outbox", payload},
		{`SELECT payload FROM sandbox`, "sandbox", sandbox},
	} {
		var raw []byte
		if err := conn.QueryRow(ctx, c.query).Scan(&raw); err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		if bytes.Contains(raw, []byte("plaintext")) || bytes.Contains(raw, []byte("198.51.100.213")) {
			t.Errorf("%s: stored in plaintext: %q", c.query, raw)
		}
		got, err := box.Open(raw, []byte(c.ad))
		if err != nil || string(got) != c.plain {
			t.Errorf("%s: box.Open(raw, %q) = %q, %v; want the plaintext", c.query, c.ad, got, err)
		}
	}
	// Nothing else in the database holds it either (text search over a
	// dump of every row).
	var hits int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM (
		SELECT s::text AS t FROM sites s UNION ALL SELECT o::text FROM outbox o UNION ALL SELECT x::text FROM sandbox x
		UNION ALL SELECT e::text FROM seen e UNION ALL SELECT p::text FROM outbox_payload p) r WHERE t LIKE '%plaintext%' OR t LIKE '%198.51.100.213%'`).Scan(&hits); err != nil {
		t.Fatal(err)
	}
	if hits != 0 {
		t.Errorf("%d rows hold plaintext", hits)
	}
}

// TestConcurrentOpen starts four nodes at once on an empty database: the
// migration lock lets one migrate and the others wait and find it done.
func TestConcurrentOpen(t *testing.T) {
	dbURL := newDatabase(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			db, err := postgres.Open(context.Background(), dbURL, storetest.Box(t))
			if err != nil {
				t.Errorf("Open = %v", err)
				return
			}
			db.Close()
		})
	}
	wg.Wait()
	db := mustOpen(t, dbURL)
	if err := db.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestTryLock(t *testing.T) {
	ctx := t.Context()
	dbURL := newDatabase(t)
	node1, node2 := mustOpen(t, dbURL), mustOpen(t, dbURL)

	unlock, ok, err := node1.TryLock(ctx, "sweeper")
	if err != nil || !ok {
		t.Fatalf("node1 TryLock(sweeper) = %v, %v; want the lock", ok, err)
	}
	if _, ok, err := node2.TryLock(ctx, "sweeper"); err != nil || ok {
		t.Fatalf("node2 TryLock(sweeper) while node1 holds it = %v, %v; want not ok", ok, err)
	}
	unlockRetention, ok, err := node2.TryLock(ctx, "retention")
	if err != nil || !ok {
		t.Fatalf("node2 TryLock(retention) = %v, %v; want the lock (other name)", ok, err)
	}
	defer unlockRetention()
	unlock()
	unlock() // safe twice
	unlock2, ok, err := node2.TryLock(ctx, "sweeper")
	if err != nil || !ok {
		t.Fatalf("node2 TryLock(sweeper) after unlock = %v, %v; want the lock", ok, err)
	}
	unlock2()

	// A node that dies frees its locks.
	_, ok, err = node1.TryLock(ctx, "sweeper")
	if err != nil || !ok {
		t.Fatalf("node1 TryLock again = %v, %v", ok, err)
	}
	node1.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		unlock, ok, err := node2.TryLock(ctx, "sweeper")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			unlock()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lock of a closed node was not freed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTwoNodes runs two nodes on one database: dedup holds across them
// and their dispatchers never share an item.
func TestTwoNodes(t *testing.T) {
	dbURL := newDatabase(t)
	nodes := []*postgres.DB{mustOpen(t, dbURL), mustOpen(t, dbURL)}
	const keys = 500
	accepted := make([]int, len(nodes))
	var wg sync.WaitGroup
	for n, db := range nodes {
		wg.Go(func() {
			for i := 0; i < keys; i += 50 {
				evs := make([]store.NewEvent, 50)
				for j := range evs {
					evs[j] = store.NewEvent{SiteKey: "s", EventName: "Purchase", EventID: fmt.Sprint(i + j),
						EventTime: time.Now(), Payload: []byte("{}")}
				}
				res, err := db.Enqueue(context.Background(), evs)
				if err != nil {
					t.Errorf("node %d: Enqueue = %v", n, err)
					return
				}
				for _, r := range res {
					if r.Status == store.Accepted {
						accepted[n]++
					}
				}
			}
		})
	}
	wg.Wait()
	if accepted[0]+accepted[1] != keys {
		t.Fatalf("accepted %d + %d events sent to both nodes, want %d in all", accepted[0], accepted[1], keys)
	}

	now := time.Now()
	claimed := make([]map[int64]bool, len(nodes))
	for n, db := range nodes {
		claimed[n] = map[int64]bool{}
		wg.Go(func() {
			for {
				items, err := db.Claim(context.Background(), "s", fmt.Sprint("node-", n), 25, now, time.Minute)
				if err != nil {
					t.Errorf("node %d: Claim = %v", n, err)
					return
				}
				if len(items) == 0 {
					return
				}
				for _, it := range items {
					claimed[n][it.ID] = true
				}
			}
		})
	}
	wg.Wait()
	for id := range claimed[0] {
		if claimed[1][id] {
			t.Errorf("item %d claimed by both nodes", id)
		}
	}
	if got := len(claimed[0]) + len(claimed[1]); got != keys {
		t.Errorf("claimed %d items, want %d", got, keys)
	}
}

func TestUnavailable(t *testing.T) {
	serverURL(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://nobody:x@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", storetest.Box(t))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open(closed port) = %v, want ErrUnavailable", err)
	}

	db := mustOpen(t, newDatabase(t))
	db.Close()
	done := make(chan error, 1)
	go func() {
		_, err := db.Enqueue(context.Background(), []store.NewEvent{{SiteKey: "s", EventName: "e", EventID: "1"}})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Enqueue after Close = %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Enqueue after Close did not return")
	}
	if err := db.Ping(t.Context()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping after Close = %v, want ErrUnavailable", err)
	}
}

func TestDuplicateMapped(t *testing.T) {
	db := mustOpen(t, newDatabase(t))
	site := &store.Site{Key: "a", Name: "a", APIKeyHash: "h"}
	if err := db.CreateSite(t.Context(), site); err != nil {
		t.Fatal(err)
	}
	err := db.CreateSite(t.Context(), &store.Site{Key: "a", Name: "a", APIKeyHash: "h2"})
	if !errors.Is(err, store.ErrDuplicate) || !strings.Contains(err.Error(), "sites_pkey") {
		t.Errorf("CreateSite(same key) = %v, want ErrDuplicate naming the constraint", err)
	}
}

func TestEnqueueRefusesBadText(t *testing.T) {
	db := mustOpen(t, newDatabase(t))
	_, err := db.Enqueue(t.Context(), []store.NewEvent{{SiteKey: "s", EventName: "e", EventID: "a\x00b", Payload: []byte("{}")}})
	if err == nil {
		t.Fatal("Enqueue(event id with NUL) = nil, want an error")
	}
	// The refusal touched nobody else.
	res, err := db.Enqueue(t.Context(), []store.NewEvent{{SiteKey: "s", EventName: "e", EventID: "ab", Payload: []byte("{}")}})
	if err != nil || res[0].Status != store.Accepted {
		t.Fatalf("Enqueue after refusal = %v, %v", res, err)
	}
}

func BenchmarkEnqueue(b *testing.B) {
	storetest.BenchEnqueue(b, mustOpen(b, newDatabase(b)))
}

func BenchmarkClaimComplete(b *testing.B) {
	storetest.BenchClaimComplete(b, mustOpen(b, newDatabase(b)))
}

// openWithConn opens a store on a new database, and a connection of its
// own to that database.
func openWithConn(t *testing.T) (*postgres.DB, *pgx.Conn) {
	t.Helper()
	dbURL := newDatabase(t)
	db := mustOpen(t, dbURL)
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return db, conn
}

// TestForgetLeavesNoRows searches a text dump of every row of every table
// that holds personal data: after forget, none names the person's visitor,
// email hash or event ids (dedup keys included).
func TestForgetLeavesNoRows(t *testing.T) {
	ctx := t.Context()
	db, conn := openWithConn(t)
	rowsHolding := func(mark string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM (
			SELECT o::text AS t FROM outbox o UNION ALL SELECT e::text FROM seen e UNION ALL SELECT p::text FROM outbox_payload p
			UNION ALL SELECT i::text FROM identities i UNION ALL SELECT k::text FROM identity_keys k
			UNION ALL SELECT l::text FROM leads l) r WHERE strpos(t, $1) > 0`, mark).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	m := storetest.ForgetScenario(t, db, func(m storetest.ForgetMarks) {
		for _, mark := range m.All() {
			if rowsHolding(mark) == 0 {
				t.Fatalf("before forget no row holds %q; the test proves nothing", mark)
			}
		}
	})
	for _, mark := range m.All() {
		if n := rowsHolding(mark); n > 0 {
			t.Errorf("after forget %d rows still hold %q", n, mark)
		}
	}
	if rowsHolding(m.Kept[0]) == 0 {
		t.Error("the other person's event is gone too")
	}
}

// Payloads live in outbox_payload (migration 11). Each way an outbox row
// goes takes its payload with it, and a held event's refill rewrites it.
func TestPayloadsGoWithTheirRows(t *testing.T) {
	ctx := t.Context()
	db, conn := openWithConn(t)
	for _, key := range []string{"a", "b"} {
		if err := db.CreateSite(ctx, &store.Site{Key: key, Name: key, APIKeyHash: "h" + key, PixelID: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	event := func(site, id, visitor string, held bool) store.NewEvent {
		return store.NewEvent{SiteKey: site, EventName: "Lead", EventID: id, EventTime: now, VisitorID: visitor, Held: held,
			Payload: []byte(`{"event_name":"Lead","event_id":"` + id + `","user_data":{}}`)}
	}
	res, err := db.Enqueue(ctx, []store.NewEvent{
		event("a", "1", "v1", false), event("a", "2", "v1", false),
		event("a", "3", "v2", true), event("a", "4", "v3", true),
		event("b", "5", "v4", false), event("b", "6", "v4", false),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != store.Accepted {
			t.Fatalf("event %d: %s", i, r.Status)
		}
	}
	// payloads checks that every row has its payload and every payload its
	// row, and that there are want of them.
	payloads := func(step string, want int) {
		t.Helper()
		var rows, stored, orphans, missing int
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM outbox_payload),
			(SELECT count(*) FROM outbox_payload p WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = p.id)),
			(SELECT count(*) FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM outbox_payload p WHERE p.id = o.id))`).
			Scan(&rows, &stored, &orphans, &missing); err != nil {
			t.Fatal(err)
		}
		if rows != want || stored != want || orphans != 0 || missing != 0 {
			t.Errorf("after %s: %d rows, %d payloads (%d without a row, %d rows without one); want %d of each",
				step, rows, stored, orphans, missing, want)
		}
	}
	payloads("enqueue", 6)

	// Consent denied deletes the held event; granted refills it.
	if n, err := db.ReleaseHeld(ctx, "a", "v2", false, nil); err != nil || n != 1 {
		t.Fatalf("ReleaseHeld(denied) = %d, %v", n, err)
	}
	payloads("consent denied", 5)
	fill := func(pt []byte) []byte { return bytes.Replace(pt, []byte(`{}`), []byte(`{"fbp":"fb.1.1.2"}`), 1) }
	if n, err := db.ReleaseHeld(ctx, "a", "v3", true, fill); err != nil || n != 1 {
		t.Fatalf("ReleaseHeld(granted) = %d, %v", n, err)
	}
	payloads("consent granted", 5)
	items, err := db.Claim(ctx, "a", "o", 10, now.Add(time.Second), time.Minute)
	if err != nil || len(items) != 3 {
		t.Fatalf("Claim = %d items, %v; want 3", len(items), err)
	}
	if got := string(items[2].Payload); got != `{"event_name":"Lead","event_id":"4","user_data":{"fbp":"fb.1.1.2"}}` {
		t.Errorf("the granted event's payload is %s; want the refilled one", got)
	}
	if got := string(items[0].Payload); got != `{"event_name":"Lead","event_id":"1","user_data":{}}` {
		t.Errorf("the first event's payload is %s", got)
	}

	// Pruned once delivered.
	outs := []store.Outcome{{ID: items[0].ID, Kind: store.OutcomeDelivered}, {ID: items[1].ID, Kind: store.OutcomeDelivered}}
	if err := db.Complete(ctx, "o", outs, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Prune(ctx, now.Add(time.Minute), now.Add(-time.Hour)); err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2", n, err)
	}
	payloads("prune", 3)

	// Forgotten by visitor id.
	if _, err := db.Forget(ctx, store.ForgetRequest{SiteKey: "b", VisitorIDs: []string{"v4"}}); err != nil {
		t.Fatal(err)
	}
	payloads("forget", 1)

	// Gone with the site.
	if err := db.DeleteSite(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	payloads("site deleted", 0)
}
