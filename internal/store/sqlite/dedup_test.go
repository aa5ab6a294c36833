package sqlite

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
)

func dedupDB(t *testing.T, path string) *DB {
	t.Helper()
	box, _ := secret.New(bytes.Repeat([]byte{5}, secret.KeySize))
	db, err := Open(context.Background(), path, box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func statuses(t *testing.T, db *DB, ids ...string) []store.Status {
	t.Helper()
	var evs []store.NewEvent
	for _, id := range ids {
		evs = append(evs, store.NewEvent{SiteKey: "s", EventName: "Purchase", EventID: id, EventTime: time.Now(), Payload: []byte("{}")})
	}
	res, err := db.Enqueue(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Status
	for _, r := range res {
		out = append(out, r.Status)
	}
	return out
}

func wantStatuses(t *testing.T, what string, got []store.Status, want ...store.Status) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
}

const acc, dup = store.Accepted, store.Duplicate

// Every fingerprint collides: only the stored keys decide, so distinct
// events are all accepted and only true repeats are duplicates.
func TestDedupFingerprintCollisionsDropNothing(t *testing.T) {
	db := dedupDB(t, filepath.Join(t.TempDir(), FileName))
	db.dedup.mu.Lock()
	db.dedup.hash = func(dedupKey) uint32 { return 42 }
	db.dedup.mu.Unlock()
	wantStatuses(t, "first batch", statuses(t, db, "a", "b", "a", "c"), acc, acc, dup, acc)
	wantStatuses(t, "second batch", statuses(t, db, "d", "b", "c", "e", "a"), acc, dup, dup, acc, dup)
}

// A key stored by another process on the same file (capirelay import beside
// serve) is a duplicate here too, and the other way round.
func TestDedupSeesOtherProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	serve, imp := dedupDB(t, path), dedupDB(t, path)
	wantStatuses(t, "serve", statuses(t, serve, "x1", "x2"), acc, acc)
	wantStatuses(t, "import", statuses(t, imp, "x2", "x3"), dup, acc)
	wantStatuses(t, "serve again", statuses(t, serve, "x3", "x4"), dup, acc)
}

// After a restart the keys of the window are loaded again; after a failed
// transaction (reset) they are read back before the next decision.
func TestDedupSurvivesRestartAndReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db := dedupDB(t, path)
	wantStatuses(t, "before", statuses(t, db, "r1", "r2"), acc, acc)
	db.Close()
	db = dedupDB(t, path)
	wantStatuses(t, "after restart", statuses(t, db, "r1", "r3"), dup, acc)
	db.dedup.mu.Lock()
	db.dedup.reset()
	db.dedup.mu.Unlock()
	wantStatuses(t, "after reset", statuses(t, db, "r2", "r3", "r4"), dup, dup, acc)
}

// Pruned keys leave the index as well as the table, and are new again.
func TestDedupPruneForgetsOldKeys(t *testing.T) {
	db := dedupDB(t, filepath.Join(t.TempDir(), FileName))
	t0 := time.Now()
	db.now = func() time.Time { return t0 }
	wantStatuses(t, "old", statuses(t, db, "p1", "p2"), acc, acc)
	t1 := t0.Add(store.DedupWindow + time.Hour)
	db.now = func() time.Time { return t1 }
	wantStatuses(t, "new", statuses(t, db, "p3"), acc)
	if _, err := db.Prune(context.Background(), t0, t1.Add(-store.DedupWindow)); err != nil {
		t.Fatal(err)
	}
	db.dedup.mu.Lock()
	n := len(db.dedup.ids)
	db.dedup.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d fingerprints after prune, want 1 (p3)", n)
	}
	wantStatuses(t, "after prune", statuses(t, db, "p1", "p3"), acc, dup)
}

// An event is answered only after the fsync that follows its commit, and a
// failed fsync is an error, never an acknowledgement.
func TestEnqueueAnswersAfterTheWALSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	box, _ := secret.New(bytes.Repeat([]byte{5}, secret.KeySize))
	gate := make(chan error)
	db, err := Open(context.Background(), path, box)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.syncHook = func() error { return <-gate }
	answered := make(chan error, 1)
	go func() {
		_, err := db.Enqueue(context.Background(), []store.NewEvent{{SiteKey: "s", EventName: "Lead", EventID: "1", EventTime: time.Now(), Payload: []byte("{}")}})
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("Enqueue answered (%v) before the WAL was synced", err)
	case <-time.After(200 * time.Millisecond):
	}
	gate <- nil
	if err := <-answered; err != nil {
		t.Fatalf("Enqueue after the sync = %v", err)
	}
	go func() {
		_, err := db.Enqueue(context.Background(), []store.NewEvent{{SiteKey: "s", EventName: "Lead", EventID: "2", EventTime: time.Now(), Payload: []byte("{}")}})
		answered <- err
	}()
	gate <- errors.New("disk on fire")
	if err := <-answered; !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Enqueue with a failed sync = %v, want ErrUnavailable", err)
	}
	db.syncHook = nil
}

// Row ids are kept as 32-bit offsets; an id 4 billion past the base
// rebases without losing the ids still in reach.
func TestDedupRebase(t *testing.T) {
	d := newDedup()
	d.put(1, 1000)
	d.put(2, 1001)
	far := int64(1000) + 1<<32 + 5
	d.put(3, far-1)
	d.put(4, far)
	for fp, want := range map[uint32]int64{3: far - 1, 4: far} {
		if got, ok := d.id(fp); !ok || got != want {
			t.Errorf("id(%d) = %d, %v; want %d", fp, got, ok, want)
		}
	}
	if _, ok := d.id(1); ok {
		t.Errorf("an id 4 billion rows old is still held")
	}
	d.put(3, far+1) // a second id under one fingerprint
	if got, _ := d.id(3); got != far+1 || len(d.more[3]) != 1 || d.more[3][0] != far-1 {
		t.Errorf("id(3) = %d, more %v", got, d.more[3])
	}
}

// Past its bound the index takes no more keys: new keys go to the overflow
// table, repeats are caught in both, across a restart and across
// processes, and once the overflow keys leave the window new keys are
// indexed again.
func TestDedupOverflowBoundsMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db := dedupDB(t, path)
	t0 := time.Now()
	db.now = func() time.Time { return t0 }
	db.SetDedupIndexKeys(3)
	wantStatuses(t, "indexed", statuses(t, db, "o1", "o2", "o3"), acc, acc, acc)
	wantStatuses(t, "overflow", statuses(t, db, "o4", "o1", "o5", "o4"), acc, dup, acc, dup)
	wantStatuses(t, "repeats", statuses(t, db, "o2", "o5", "o6"), dup, dup, acc)
	if n := db.DedupKeys(); n != 3 {
		t.Fatalf("index holds %d keys, want its bound 3", n)
	}
	var overflowKeys int
	db.r.QueryRow(`SELECT count(*) FROM seen`).Scan(&overflowKeys)
	if overflowKeys != 3 {
		t.Fatalf("overflow table holds %d keys, want 3 (o4, o5, o6)", overflowKeys)
	}

	other := dedupDB(t, path) // a second process, bound not reached
	wantStatuses(t, "other process", statuses(t, other, "o3", "o6", "o7"), dup, dup, acc)
	db.Close()
	db = dedupDB(t, path)
	wantStatuses(t, "after restart", statuses(t, db, "o1", "o4", "o7"), dup, dup, dup)

	// Two days on, everything has left the window and is pruned: the
	// index takes new keys again.
	t1 := t0.Add(store.DedupWindow + time.Hour)
	db.now = func() time.Time { return t1 }
	if _, err := db.Prune(context.Background(), t0, t1.Add(-store.DedupWindow)); err != nil {
		t.Fatal(err)
	}
	wantStatuses(t, "new window", statuses(t, db, "o1", "o8"), acc, acc)
	db.r.QueryRow(`SELECT count(*) FROM seen`).Scan(&overflowKeys)
	if overflowKeys != 0 || db.DedupKeys() != 2 {
		t.Fatalf("after the window: %d overflow keys, %d indexed; want 0 and 2", overflowKeys, db.DedupKeys())
	}
}
