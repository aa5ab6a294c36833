package sqlite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/capirelay/capirelay/internal/store"
)

// setPayload overwrites an item's payload in the file, behind the store's
// back.
func setPayload(t *testing.T, db *DB, id int64, payload string) {
	t.Helper()
	sealed := db.box.Seal([]byte(payload), []byte(store.PayloadAD))
	if _, err := db.w.Exec(`UPDATE outbox_payload SET payload=? WHERE id=?`, sealed, id); err != nil {
		t.Fatal(err)
	}
}

// A claim of items just enqueued takes them from memory, not from the
// file; an item due again (here a retry) has changed and is read from the
// file.
func TestClaimTakesNewItemsFromMemory(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	now := time.Now()
	ids := enqueueN(t, db, "s", 5, now)
	for _, id := range ids {
		setPayload(t, db, id, `{"from":"file"}`)
	}
	now = now.Add(time.Second)
	items, err := db.Claim(ctx, "s", "o", 10, now, time.Minute)
	if err != nil || len(items) != 5 {
		t.Fatalf("Claim = %d items, %v", len(items), err)
	}
	for i, it := range items {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(it.Payload) != want {
			t.Errorf("item %d payload %s, want %s (the enqueued one, from memory)", it.ID, it.Payload, want)
		}
		if it.Attempts != 1 || it.State != store.StateInflight {
			t.Errorf("item %d: attempts %d state %s", it.ID, it.Attempts, it.State)
		}
	}
	if db.recent.has("s") {
		t.Error("claimed items are still in memory")
	}
	if err := db.Complete(ctx, "o", []store.Outcome{{ID: ids[0], Kind: store.OutcomeRetry, RetryAt: now, Reason: "HTTP 503", TraceID: "t1"}}, now); err != nil {
		t.Fatal(err)
	}
	again, err := db.Claim(ctx, "s", "o", 10, now, time.Minute)
	if err != nil || len(again) != 1 {
		t.Fatalf("second Claim = %d items, %v", len(again), err)
	}
	if it := again[0]; string(it.Payload) != `{"from":"file"}` || it.Attempts != 2 || it.LastError != "HTTP 503" {
		t.Errorf("retried item claimed as payload %s attempts %d error %q; want the file's", it.Payload, it.Attempts, it.LastError)
	}
	// Nothing kept (after a restart, or past the budget): the file.
	ids = enqueueN(t, db, "f", 3, now)
	setPayload(t, db, ids[1], `{"from":"file"}`)
	db.recent.clear()
	items, err = db.Claim(ctx, "f", "o", 10, now.Add(time.Second), time.Minute)
	if err != nil || len(items) != 3 || string(items[1].Payload) != `{"from":"file"}` || string(items[2].Payload) != `{"n":2}` {
		t.Fatalf("Claim with nothing kept = %d items, %v", len(items), err)
	}
}

// Held items wait for consent: they are never kept for a claim, and one
// released later is read from the file.
func TestHeldItemsAreNotKept(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	now := time.Now()
	res, err := db.Enqueue(ctx, []store.NewEvent{{SiteKey: "s", EventName: "Lead", EventID: "h1", EventTime: now,
		Payload: []byte(`{"held":1}`), VisitorID: "v1", Held: true, Source: "browser"}})
	if err != nil {
		t.Fatal(err)
	}
	if db.recent.has("s") {
		t.Fatal("a held item is kept in memory")
	}
	if n, err := db.ReleaseHeld(ctx, "s", "v1", true, nil); err != nil || n != 1 {
		t.Fatalf("ReleaseHeld = %d, %v", n, err)
	}
	items, err := db.Claim(ctx, "s", "o", 10, now.Add(time.Second), time.Minute)
	if err != nil || len(items) != 1 || items[0].ID != res[0].ID || string(items[0].Payload) != `{"held":1}` {
		t.Fatalf("Claim = %+v, %v", items, err)
	}
}

// Erasure drops every kept payload: none of an erased person's data stays
// in memory either.
func TestForgetDropsKeptItems(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	enqueueN(t, db, "s", 3, time.Now())
	if !db.recent.has("s") {
		t.Fatal("new items are not kept")
	}
	if _, err := db.Forget(ctx, store.ForgetRequest{SiteKey: "s", VisitorIDs: []string{"v1"}}); err != nil {
		t.Fatal(err)
	}
	if db.recent.has("s") || db.recent.bytes.Load() != 0 {
		t.Errorf("after Forget: %d entries, %d bytes kept", len(db.recent.m), db.recent.bytes.Load())
	}
}

func recentEvent(site string, n int) *store.NewEvent {
	return &store.NewEvent{SiteKey: site, EventName: "PageView", EventID: fmt.Sprint(n), EventTime: time.UnixMilli(1700000000000),
		Payload: []byte(strings.Repeat("x", 100)), Source: "browser"}
}

func addRecent(rc *recent, created int64, site string, ids ...int64) {
	items := make([]*recentItem, len(ids))
	for i, id := range ids {
		items[i] = rc.newItem(recentEvent(site, int(id)))
	}
	rc.add(ids, items, created)
}

func TestRecentBudgetAgeAndRemove(t *testing.T) {
	rc := newRecent(100 * 64) // 64 payloads of 100 bytes
	for id := int64(1); id <= 80; id++ {
		addRecent(rc, 1000, "a", id)
	}
	if len(rc.m) != 64 || rc.bytes.Load() != 6400 {
		t.Fatalf("over budget: %d entries, %d bytes", len(rc.m), rc.bytes.Load())
	}
	if rc.m[1] == nil || rc.m[64] == nil || rc.m[65] != nil {
		t.Error("full, it kept newer items instead of the older ones (claimed first)")
	}
	if rc.newItem(recentEvent("a", 81)) != nil {
		t.Error("full, it still copies new payloads")
	}
	// A payload over a 64th of the budget is not kept at all.
	if rc.newItem(&store.NewEvent{SiteKey: "a", Payload: make([]byte, 101)}) != nil {
		t.Error("a payload over a 64th of the budget is kept")
	}
	items, missing := rc.take("a", []int64{3, 17, 18, 99})
	if len(items) != 3 || items[0].ID != 3 || items[1].ID != 17 || fmt.Sprint(missing) != "[99]" {
		t.Errorf("take = %v, missing %v", itemIDs(items), missing)
	}
	if it := items[1]; it.State != store.StatePending || it.EventID != "17" || it.CreatedAt.UnixMilli() != 1000 || len(it.Payload) != 100 {
		t.Errorf("taken item %+v", it)
	}
	if items, _ := rc.take("b", []int64{19}); len(items) != 0 {
		t.Error("take returned another site's entry")
	}
	addRecent(rc, 40000, "b", 81, 82) // room again, after the take
	rc.remove([]int64{82})
	rc.expire(1000 + recentAge.Milliseconds() + 1)
	if len(rc.m) != 1 || rc.m[81] == nil || rc.has("a") || !rc.has("b") || rc.bytes.Load() != 100 {
		t.Errorf("after remove and expire: %d entries (%v), %d bytes", len(rc.m), rc.sites, rc.bytes.Load())
	}
	rc.clear()
	if len(rc.m) != 0 || rc.has("b") || rc.bytes.Load() != 0 {
		t.Error("clear kept entries")
	}
}

// A kept item copies its strings: cut from a request's body, they would
// keep the whole body in memory for as long as the entry waits.
func TestRecentItemDoesNotHoldTheBody(t *testing.T) {
	body := "PurchaseE-1v-7TEST9"
	ev := &store.NewEvent{SiteKey: "s", EventName: body[:8], EventID: body[8:11], VisitorID: body[11:14],
		TestEventCode: body[14:], Payload: []byte("sealed")}
	it := newRecent(recentBudget).newItem(ev)
	if it.name != "Purchase" || it.eventID != "E-1" || it.visitor != "v-7" || it.testCode != "TEST9" {
		t.Fatalf("item %+v", it)
	}
	for _, s := range []string{it.name, it.eventID, it.visitor, it.testCode} {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); p >= uintptr(unsafe.Pointer(unsafe.StringData(body))) &&
			p < uintptr(unsafe.Pointer(unsafe.StringData(body)))+uintptr(len(body)) {
			t.Errorf("%q points into the caller's body", s)
		}
	}
}
