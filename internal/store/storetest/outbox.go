package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

const lease = time.Minute

func testEnqueueStoresItems(t *testing.T, s store.Store) {
	before := time.Now().Add(-time.Second)
	e1 := ev("a", "Purchase", "1")
	e1.VisitorID, e1.Source = "v1", "browser"
	e1.TestEventCode, e1.Params = "TEST42", "namespace_id=ns-1&partner_agent=shopify-1.2"
	e2 := ev("a", "Lead", "2")
	e2.VisitorID, e2.Held, e2.Source = "v2", true, "lead"
	ids := mustEnqueue(t, s, e1, e2)
	if ids[0] >= ids[1] {
		t.Errorf("Enqueue ids = %v, want ascending in call order", ids)
	}
	after := time.Now().Add(time.Second)

	it := wantState(t, s, ids[0], store.StatePending)
	if it.ID != ids[0] || it.SiteKey != "a" || it.EventName != "Purchase" || it.EventID != "1" ||
		it.Source != "browser" || it.VisitorID != "v1" || it.Attempts != 0 || it.LastError != "" || it.TraceID != "" ||
		it.TestEventCode != e1.TestEventCode || it.Params != e1.Params {
		t.Errorf("Item(%d) = %+v, want the enqueued event with no attempts", ids[0], it)
	}
	// The request's parameters come back with the claim, to be sent.
	claimed := mustClaim(t, s, "a", "o", 1, time.Now(), lease)
	if len(claimed) != 1 || claimed[0].TestEventCode != e1.TestEventCode || claimed[0].Params != e1.Params {
		t.Errorf("Claim = %+v, want the item with test_event_code %q and params %q", claimed, e1.TestEventCode, e1.Params)
	}
	if err := s.Release(t.Context(), "o"); err != nil {
		t.Fatal(err)
	}
	wantTime(t, "EventTime", it.EventTime, e1.EventTime)
	wantBytes(t, "Payload", it.Payload, e1.Payload)
	if it.CreatedAt.Before(before) || it.CreatedAt.After(after) {
		t.Errorf("CreatedAt = %v, want between %v and %v", it.CreatedAt, before, after)
	}
	if it.NextAttempt.After(after) {
		t.Errorf("NextAttempt = %v, want due now", it.NextAttempt)
	}
	if !it.DeliveredAt.IsZero() {
		t.Errorf("DeliveredAt = %v, want zero", it.DeliveredAt)
	}

	held := wantState(t, s, ids[1], store.StateHeld)
	if held.Source != "lead" || held.VisitorID != "v2" {
		t.Errorf("held Item = %+v", held)
	}

	more := mustEnqueue(t, s, ev("a", "Purchase", "3"))
	if more[0] <= ids[1] {
		t.Errorf("later Enqueue id %d, want > %d", more[0], ids[1])
	}
}

func testEnqueueEmpty(t *testing.T, s store.Store) {
	res, err := s.Enqueue(t.Context(), nil)
	if err != nil || len(res) != 0 {
		t.Fatalf("Enqueue(nil) = %v, %v; want no results, nil", res, err)
	}
}

func wantStatuses(t testing.TB, res []store.EnqueueResult, want ...store.Status) {
	t.Helper()
	if len(res) != len(want) {
		t.Fatalf("Enqueue returned %d results, want %d", len(res), len(want))
	}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("result %d status = %q, want %q", i, r.Status, want[i])
		}
		if r.Status == store.Accepted && r.ID <= 0 {
			t.Errorf("result %d accepted with id %d", i, r.ID)
		}
		if r.Status == store.Duplicate && r.ID != 0 {
			t.Errorf("result %d duplicate with id %d, want 0", i, r.ID)
		}
	}
}

func testEnqueueDedup(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := mustEnqueue(t, s, ev("a", "Purchase", "1"))

	again := ev("a", "Purchase", "1")
	again.Payload = []byte(`{"different":"payload"}`)
	res, err := s.Enqueue(ctx, []store.NewEvent{
		again,                     // same site, name, id
		ev("a", "Lead", "1"),      // other name
		ev("b", "Purchase", "1"),  // other site
		ev("a", "Purchase", "2"),  // other id
		ev("a", "Purchase", "1 "), // ids are compared exactly
		ev("a", "purchase", "1"),  // and so are names
		ev("a", "Purchase", "1"),  // still a duplicate
		ev("a2", "Purchase", "1"), // a site key that extends another
		ev("", "aPurchase", "1"),  // keys are not concatenated
		ev("aPurchase", "", "1"),  // (either way)
		ev("a", "Purchase", "01"), // nor as numbers
	})
	if err != nil {
		t.Fatalf("Enqueue = %v", err)
	}
	wantStatuses(t, res, store.Duplicate, store.Accepted, store.Accepted, store.Accepted, store.Accepted,
		store.Accepted, store.Duplicate, store.Accepted, store.Accepted, store.Accepted, store.Accepted)

	// The first copy is untouched by the duplicate.
	wantBytes(t, "first payload", mustItem(t, s, first[0]).Payload, ev("a", "Purchase", "1").Payload)

	// Still a duplicate after delivery: dedup is about what was accepted.
	now := time.Now()
	items := mustClaim(t, s, "a", "o", 100, now, lease)
	var outs []store.Outcome
	for _, it := range items {
		outs = append(outs, store.Outcome{ID: it.ID, Kind: store.OutcomeDelivered})
	}
	mustComplete(t, s, "o", now, outs...)
	res, err = s.Enqueue(ctx, []store.NewEvent{ev("a", "Purchase", "1"), ev("a", "Lead", "1")})
	if err != nil {
		t.Fatalf("Enqueue after delivery = %v", err)
	}
	wantStatuses(t, res, store.Duplicate, store.Duplicate)

	// Held events are remembered too.
	h := ev("c", "Lead", "h")
	h.Held = true
	mustEnqueue(t, s, h)
	res, err = s.Enqueue(ctx, []store.NewEvent{ev("c", "Lead", "h")})
	if err != nil {
		t.Fatalf("Enqueue after held = %v", err)
	}
	wantStatuses(t, res, store.Duplicate)
}

func testEnqueueDedupWithinCall(t *testing.T, s store.Store) {
	x, y := ev("a", "Purchase", "x"), ev("a", "Purchase", "y")
	res, err := s.Enqueue(t.Context(), []store.NewEvent{x, x, y, x, y})
	if err != nil {
		t.Fatalf("Enqueue = %v", err)
	}
	wantStatuses(t, res, store.Accepted, store.Duplicate, store.Accepted, store.Duplicate, store.Duplicate)
	items, err := s.Items(t.Context(), "a", "", 100)
	if err != nil || len(items) != 2 {
		t.Fatalf("Items(a) = %d items, %v; want 2", len(items), err)
	}
}

// testEnqueueConcurrent has 32 goroutines enqueue overlapping batches at
// once: every unique event is accepted, every shared one exactly once, and
// each result's id points at the event it answers.
func testEnqueueConcurrent(t *testing.T, s store.Store) {
	const workers, rounds, shared, unique = 32, 3, 10, 10
	type answer struct {
		ev  store.NewEvent
		res store.EnqueueResult
	}
	var (
		mu      sync.Mutex
		answers []answer
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				var evs []store.NewEvent
				for i := range shared {
					evs = append(evs, ev("a", "Purchase", fmt.Sprintf("shared-%d", i)))
				}
				for i := range unique {
					site := []string{"a", "b"}[i%2]
					evs = append(evs, ev(site, "Purchase", fmt.Sprintf("w%d-r%d-%d", w, r, i)))
				}
				// Different orders in different transactions: a store that
				// locks dedup keys in arrival order would deadlock here.
				mrand.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
				res, err := s.Enqueue(context.Background(), evs)
				if err != nil {
					t.Errorf("worker %d: Enqueue = %v", w, err)
					return
				}
				if len(res) != len(evs) {
					t.Errorf("worker %d: %d results for %d events", w, len(res), len(evs))
					return
				}
				mu.Lock()
				for i := range evs {
					answers = append(answers, answer{evs[i], res[i]})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	stored := map[int64]store.Item{}
	for _, site := range []string{"a", "b"} {
		items, err := s.Items(t.Context(), site, "", 10000)
		if err != nil {
			t.Fatalf("Items(%s) = %v", site, err)
		}
		for _, it := range items {
			stored[it.ID] = it
		}
	}
	if want := workers*rounds*unique + shared; len(stored) != want {
		t.Errorf("stored %d items, want %d", len(stored), want)
	}
	acceptedShared := map[string]int{}
	seenIDs := map[int64]bool{}
	for _, a := range answers {
		switch a.res.Status {
		case store.Accepted:
			if seenIDs[a.res.ID] {
				t.Errorf("id %d returned twice", a.res.ID)
			}
			seenIDs[a.res.ID] = true
			it, ok := stored[a.res.ID]
			if !ok || it.SiteKey != a.ev.SiteKey || it.EventID != a.ev.EventID || string(it.Payload) != string(a.ev.Payload) {
				t.Errorf("accepted %s/%s as id %d, but that id holds %s/%s", a.ev.SiteKey, a.ev.EventID, a.res.ID, it.SiteKey, it.EventID)
			}
			if strings.HasPrefix(a.ev.EventID, "shared-") {
				acceptedShared[a.ev.EventID]++
			}
		case store.Duplicate:
			if !strings.HasPrefix(a.ev.EventID, "shared-") {
				t.Errorf("unique event %s reported duplicate", a.ev.EventID)
			}
		default:
			t.Errorf("event %s: status %q", a.ev.EventID, a.res.Status)
		}
	}
	for i := range shared {
		if n := acceptedShared[fmt.Sprintf("shared-%d", i)]; n != 1 {
			t.Errorf("shared-%d accepted %d times, want once", i, n)
		}
	}
}

func testPayloadRoundTrip(t *testing.T, s store.Store) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	big := make([]byte, 256<<10)
	rand.Read(big)
	payloads := [][]byte{
		[]byte(`{}`),
		[]byte(`{"user_data":{"client_user_agent":"Mozilla/5.0 (Ünïcødé; 日本語)","client_ip_address":"2001:db8::1"}}`),
		allBytes,
		[]byte("\x00\x00trailing nul\x00"),
		big,
	}
	// The odd ones come sealed by the caller (the pipeline's way), the
	// others are sealed by Enqueue.
	var evs []store.NewEvent
	for i, p := range payloads {
		e := ev("a", "Purchase", fmt.Sprint(i))
		e.Payload = p
		if i%2 == 1 {
			e.Payload, e.Sealed = s.SealPayload(p), true
			if bytes.Contains(e.Payload, p) {
				t.Fatalf("SealPayload(%.20q) holds the plaintext", p)
			}
		}
		if i == 1 {
			e.Enriched = []string{"em", "fbc", "client_ip_address"}
		}
		evs = append(evs, e)
	}
	ids := mustEnqueue(t, s, evs...)
	for i, id := range ids {
		it := mustItem(t, s, id)
		wantBytes(t, fmt.Sprintf("Item(%d).Payload", id), it.Payload, payloads[i])
		if !slices.Equal(it.Enriched, evs[i].Enriched) {
			t.Errorf("Item(%d).Enriched = %q, want %q", id, it.Enriched, evs[i].Enriched)
		}
	}
	items := mustClaim(t, s, "a", "o", 10, time.Now(), lease)
	if len(items) != len(payloads) {
		t.Fatalf("Claim = %d items, want %d", len(items), len(payloads))
	}
	for i, it := range items {
		wantBytes(t, fmt.Sprintf("claimed item %d payload", i), it.Payload, payloads[i])
	}
	listed, err := s.Items(t.Context(), "a", "", 10)
	if err != nil {
		t.Fatalf("Items = %v", err)
	}
	for i, it := range listed {
		wantBytes(t, fmt.Sprintf("listed item %d payload", i), it.Payload, payloads[len(payloads)-1-i])
	}
}

func testClaimLimitAndOrder(t *testing.T, s store.Store) {
	ids := mustEnqueue(t, s, events("a", 5)...)
	now := time.Now()
	got := mustClaim(t, s, "a", "o", 3, now, lease)
	if !slices.Equal(itemIDs(got), ids[:3]) {
		t.Fatalf("Claim(limit 3) = %v, want %v", itemIDs(got), ids[:3])
	}
	for _, it := range got {
		if it.State != store.StateInflight || it.Attempts != 1 || it.SiteKey != "a" {
			t.Errorf("claimed item %d: state %q, attempts %d, site %q; want inflight, 1, a", it.ID, it.State, it.Attempts, it.SiteKey)
		}
		wantTime(t, "claimed NextAttempt (lease expiry)", it.NextAttempt, now.Add(lease))
	}
	wantState(t, s, ids[0], store.StateInflight)
	if got := mustClaim(t, s, "a", "o", 3, now, lease); !slices.Equal(itemIDs(got), ids[3:]) {
		t.Fatalf("second Claim = %v, want %v", itemIDs(got), ids[3:])
	}
	if got := mustClaim(t, s, "a", "o", 3, now, lease); len(got) != 0 {
		t.Fatalf("third Claim = %v, want nothing", itemIDs(got))
	}
}

func testClaimSiteIsolation(t *testing.T, s store.Store) {
	var evs []store.NewEvent
	for i := range 6 {
		evs = append(evs, ev([]string{"a", "b"}[i%2], "Purchase", fmt.Sprint(i)))
	}
	ids := mustEnqueue(t, s, evs...)
	now := time.Now()
	got := mustClaim(t, s, "b", "o", 10, now, lease)
	if want := []int64{ids[1], ids[3], ids[5]}; !slices.Equal(itemIDs(got), want) {
		t.Fatalf("Claim(b) = %v, want %v", itemIDs(got), want)
	}
	if got := mustClaim(t, s, "c", "o", 10, now, lease); len(got) != 0 {
		t.Fatalf("Claim(c) = %v, want nothing", itemIDs(got))
	}
	if got := mustClaim(t, s, "a", "o", 10, now, lease); len(got) != 3 {
		t.Fatalf("Claim(a) = %v, want 3 items", itemIDs(got))
	}
}

func testClaimSkipsNotDue(t *testing.T, s store.Store) {
	held := ev("a", "Lead", "held")
	held.Held, held.VisitorID = true, "v"
	ids := mustEnqueue(t, s, ev("a", "Purchase", "retry"), ev("a", "Purchase", "dead"),
		ev("a", "Purchase", "delivered"), held)
	now := time.Now()
	mustClaim(t, s, "a", "o", 3, now, lease)
	retryAt := now.Add(time.Hour)
	mustComplete(t, s, "o", now,
		store.Outcome{ID: ids[0], Kind: store.OutcomeRetry, RetryAt: retryAt},
		store.Outcome{ID: ids[1], Kind: store.OutcomeDead, Reason: "invalid"},
		store.Outcome{ID: ids[2], Kind: store.OutcomeDelivered})
	if got := mustClaim(t, s, "a", "o", 10, now.Add(time.Hour-time.Second), lease); len(got) != 0 {
		t.Fatalf("Claim before retry time = %v, want nothing (held, dead, delivered never; retry not yet)", itemIDs(got))
	}
	got := mustClaim(t, s, "a", "o", 10, retryAt, lease)
	if !slices.Equal(itemIDs(got), ids[:1]) {
		t.Fatalf("Claim at retry time = %v, want %v", itemIDs(got), ids[:1])
	}
	if got[0].Attempts != 2 {
		t.Errorf("Attempts on second claim = %d, want 2", got[0].Attempts)
	}
}

func testClaimLease(t *testing.T, s store.Store) {
	ids := mustEnqueue(t, s, events("a", 2)...)
	t0 := time.Now()
	if got := mustClaim(t, s, "a", "o1", 10, t0, lease); len(got) != 2 {
		t.Fatalf("Claim(o1) = %v, want 2 items", itemIDs(got))
	}
	if got := mustClaim(t, s, "a", "o2", 10, t0.Add(lease/2), lease); len(got) != 0 {
		t.Fatalf("Claim(o2) during the lease = %v, want nothing", itemIDs(got))
	}
	if got := mustClaim(t, s, "a", "o1", 10, t0.Add(lease-time.Millisecond), lease); len(got) != 0 {
		t.Fatalf("Claim(o1) just before expiry = %v, want nothing", itemIDs(got))
	}
	t1 := t0.Add(lease + time.Millisecond)
	got := mustClaim(t, s, "a", "o2", 10, t1, lease)
	if !slices.Equal(itemIDs(got), ids) {
		t.Fatalf("Claim(o2) after expiry = %v, want %v", itemIDs(got), ids)
	}
	for _, it := range got {
		if it.Attempts != 2 {
			t.Errorf("item %d attempts after re-claim = %d, want 2", it.ID, it.Attempts)
		}
		wantTime(t, "NextAttempt after re-claim", it.NextAttempt, t1.Add(lease))
	}
}

// testClaimConcurrentOwners has 8 owners claim the same site at once: no
// item is handed to two of them and none is lost.
func testClaimConcurrentOwners(t *testing.T, s store.Store) {
	const total, owners, batch = 2000, 8, 37
	evs := events("a", total)
	for i := 0; i < total; i += 250 {
		mustEnqueue(t, s, evs[i:i+250]...)
	}
	now := time.Now()
	claimed := make([][]int64, owners)
	var wg sync.WaitGroup
	for o := range owners {
		wg.Go(func() {
			owner := fmt.Sprintf("node-%d", o)
			for {
				items, err := s.Claim(context.Background(), "a", owner, batch, now, time.Hour)
				if err != nil {
					t.Errorf("Claim(%s) = %v", owner, err)
					return
				}
				if len(items) == 0 {
					return
				}
				claimed[o] = append(claimed[o], itemIDs(items)...)
			}
		})
	}
	wg.Wait()
	owner := map[int64]int{}
	for o, ids := range claimed {
		for _, id := range ids {
			if prev, dup := owner[id]; dup {
				t.Errorf("item %d claimed by node-%d and node-%d", id, prev, o)
			}
			owner[id] = o
		}
	}
	if len(owner) != total {
		t.Errorf("%d items claimed, want %d", len(owner), total)
	}
	for o, ids := range claimed {
		var outs []store.Outcome
		for _, id := range ids {
			outs = append(outs, store.Outcome{ID: id, Kind: store.OutcomeDelivered})
		}
		mustComplete(t, s, fmt.Sprintf("node-%d", o), now, outs...)
	}
	depth, err := s.Depth(t.Context())
	if err != nil || len(depth) != 0 {
		t.Errorf("Depth after all delivered = %v, %v; want empty", depth, err)
	}
}

func testCompleteDelivered(t *testing.T, s store.Store) {
	ids := mustEnqueue(t, s, events("a", 3)...)
	t0 := time.Now()
	mustClaim(t, s, "a", "o", 10, t0, lease)
	// The first one failed once before, so it carries an error to clear.
	mustComplete(t, s, "o", t0, store.Outcome{ID: ids[0], Kind: store.OutcomeRetry, RetryAt: t0, Reason: "HTTP 503"})
	mustClaim(t, s, "a", "o", 10, t0, lease)

	done := t0.Add(time.Second)
	mustComplete(t, s, "o", done,
		store.Outcome{ID: ids[0], Kind: store.OutcomeDelivered, TraceID: "trace-1"},
		store.Outcome{ID: ids[1], Kind: store.OutcomeDelivered, TraceID: "trace-1"},
		store.Outcome{ID: ids[2], Kind: store.OutcomeDelivered, TraceID: "trace-2"})
	for i, id := range ids {
		it := wantState(t, s, id, store.StateDelivered)
		if want := []string{"trace-1", "trace-1", "trace-2"}[i]; it.TraceID != want {
			t.Errorf("item %d TraceID = %q, want %q", id, it.TraceID, want)
		}
		if it.LastError != "" {
			t.Errorf("item %d LastError = %q, want cleared", id, it.LastError)
		}
		wantTime(t, "DeliveredAt", it.DeliveredAt, done)
	}
	if got := mustClaim(t, s, "a", "o", 10, done.Add(24*time.Hour), lease); len(got) != 0 {
		t.Errorf("Claim after delivery = %v, want nothing", itemIDs(got))
	}
}

func testCompleteRetry(t *testing.T, s store.Store) {
	ids := mustEnqueue(t, s, events("a", 1)...)
	now := time.Now()
	mustClaim(t, s, "a", "o", 10, now, lease)
	retryAt := now.Add(10 * time.Minute)
	mustComplete(t, s, "o", now, store.Outcome{ID: ids[0], Kind: store.OutcomeRetry, RetryAt: retryAt,
		Reason: "HTTP 500: try again", TraceID: "tr"})
	it := wantState(t, s, ids[0], store.StatePending)
	if it.LastError != "HTTP 500: try again" || it.TraceID != "tr" || it.Attempts != 1 {
		t.Errorf("after retry: LastError %q, TraceID %q, Attempts %d", it.LastError, it.TraceID, it.Attempts)
	}
	wantTime(t, "NextAttempt", it.NextAttempt, retryAt)
	// The owner gave the claim back: someone else can take it when due.
	if got := mustClaim(t, s, "a", "other", 10, retryAt, lease); len(got) != 1 || got[0].LastError != "HTTP 500: try again" {
		t.Errorf("Claim at retry time = %+v, want the item with its last error", got)
	}
}

func testCompleteDead(t *testing.T, s store.Store) {
	ids := mustEnqueue(t, s, events("a", 1)...)
	now := time.Now()
	mustClaim(t, s, "a", "o", 10, now, lease)
	mustComplete(t, s, "o", now, store.Outcome{ID: ids[0], Kind: store.OutcomeDead, Reason: "event_time too old", TraceID: "tr"})
	it := wantState(t, s, ids[0], store.StateDead)
	if it.LastError != "event_time too old" || it.TraceID != "tr" {
		t.Errorf("dead item: LastError %q, TraceID %q", it.LastError, it.TraceID)
	}
	if got := mustClaim(t, s, "a", "o", 10, now.Add(1000*time.Hour), lease); len(got) != 0 {
		t.Errorf("Claim of a dead item = %v, want nothing", itemIDs(got))
	}
}

func testCompleteRelease(t *testing.T, s store.Store) {
	ids := mustEnqueue(t, s, events("a", 1)...)
	now := time.Now()
	mustClaim(t, s, "a", "o", 10, now, lease)
	mustComplete(t, s, "o", now, store.Outcome{ID: ids[0], Kind: store.OutcomeRelease})
	it := wantState(t, s, ids[0], store.StatePending)
	if it.Attempts != 0 {
		t.Errorf("Attempts after release = %d, want 0 (a release is not an attempt)", it.Attempts)
	}
	if got := mustClaim(t, s, "a", "other", 10, now, lease); len(got) != 1 || got[0].Attempts != 1 {
		t.Errorf("Claim right after release = %+v, want the item on its first attempt", got)
	}
}

func testCompleteWrongOwner(t *testing.T, s store.Store) {
	ids := mustEnqueue(t, s, events("a", 4)...)
	now := time.Now()
	mustClaim(t, s, "a", "o1", 10, now, lease)
	mustComplete(t, s, "o2", now,
		store.Outcome{ID: ids[0], Kind: store.OutcomeDelivered},
		store.Outcome{ID: ids[1], Kind: store.OutcomeRetry, RetryAt: now},
		store.Outcome{ID: ids[2], Kind: store.OutcomeDead, Reason: "x"},
		store.Outcome{ID: ids[3], Kind: store.OutcomeRelease})
	for _, id := range ids {
		if it := wantState(t, s, id, store.StateInflight); it.Attempts != 1 || it.LastError != "" {
			t.Errorf("item %d changed by another owner: %+v", id, it)
		}
	}
}

func testCompleteLostLease(t *testing.T, s store.Store) {
	ids := mustEnqueue(t, s, events("a", 1)...)
	t0 := time.Now()
	mustClaim(t, s, "a", "slow", 10, t0, lease)
	t1 := t0.Add(lease + time.Second)
	mustClaim(t, s, "a", "fast", 10, t1, lease)
	// The slow owner comes back after its lease went to fast.
	mustComplete(t, s, "slow", t1, store.Outcome{ID: ids[0], Kind: store.OutcomeDead, Reason: "late"})
	if it := wantState(t, s, ids[0], store.StateInflight); it.LastError != "" {
		t.Fatalf("the owner that lost its lease changed the item: %+v", it)
	}
	mustComplete(t, s, "slow", t1, store.Outcome{ID: ids[0], Kind: store.OutcomeRelease})
	wantState(t, s, ids[0], store.StateInflight)
	mustComplete(t, s, "fast", t1, store.Outcome{ID: ids[0], Kind: store.OutcomeDelivered, TraceID: "f"})
	wantState(t, s, ids[0], store.StateDelivered)
}

func testCompleteNotInflight(t *testing.T, s store.Store) {
	ids := mustEnqueue(t, s, events("a", 2)...)
	now := time.Now()
	mustClaim(t, s, "a", "o", 10, now, lease)
	mustComplete(t, s, "o", now,
		store.Outcome{ID: ids[0], Kind: store.OutcomeDelivered, TraceID: "t"},
		store.Outcome{ID: ids[1], Kind: store.OutcomeRelease})
	// A repeated outcome for an item no longer claimed changes nothing.
	mustComplete(t, s, "o", now,
		store.Outcome{ID: ids[0], Kind: store.OutcomeDead, Reason: "again"},
		store.Outcome{ID: ids[1], Kind: store.OutcomeDelivered})
	if it := wantState(t, s, ids[0], store.StateDelivered); it.LastError != "" {
		t.Errorf("delivered item got error %q", it.LastError)
	}
	wantState(t, s, ids[1], store.StatePending)
	// Outcomes for unknown ids are ignored.
	mustComplete(t, s, "o", now, store.Outcome{ID: ids[1] + 1000, Kind: store.OutcomeDelivered})
	if err := s.Complete(t.Context(), "o", nil, now); err != nil {
		t.Errorf("Complete(no outcomes) = %v", err)
	}
}

func testCompleteUnknownKind(t *testing.T, s store.Store) {
	ids := mustEnqueue(t, s, events("a", 1)...)
	now := time.Now()
	mustClaim(t, s, "a", "o", 10, now, lease)
	for _, kind := range []store.OutcomeKind{0, 99} {
		if err := s.Complete(t.Context(), "o", []store.Outcome{{ID: ids[0], Kind: kind}}, now); err == nil {
			t.Errorf("Complete(kind %d) = nil, want an error", kind)
		}
	}
	wantState(t, s, ids[0], store.StateInflight)
}

// testCompleteMany completes a full dispatch batch (1000) in one call.
func testCompleteMany(t *testing.T, s store.Store) {
	evs := events("a", 1000)
	for i := 0; i < len(evs); i += 500 {
		mustEnqueue(t, s, evs[i:i+500]...)
	}
	now := time.Now()
	items := mustClaim(t, s, "a", "o", 1000, now, lease)
	if len(items) != 1000 {
		t.Fatalf("Claim(1000) = %d items", len(items))
	}
	outs := make([]store.Outcome, len(items))
	for i, it := range items {
		outs[i] = store.Outcome{ID: it.ID, Kind: store.OutcomeDelivered, TraceID: fmt.Sprint("t", i%3)}
	}
	mustComplete(t, s, "o", now, outs...)
	got, err := s.Items(t.Context(), "a", store.StateDelivered, 2000)
	if err != nil || len(got) != 1000 {
		t.Fatalf("Items(delivered) = %d, %v; want 1000", len(got), err)
	}
	for _, it := range got {
		if want := fmt.Sprint("t", slices.Index(itemIDs(items), it.ID)%3); it.TraceID != want {
			t.Fatalf("item %d TraceID = %q, want %q", it.ID, it.TraceID, want)
		}
	}
}

// testCompleteManyOwnValues retries a batch whose items each have their own
// retry time (the dispatcher's backoff has jitter), sharing the error, and
// dead-letters another whose items each have their own reason.
func testCompleteManyOwnValues(t *testing.T, s store.Store) {
	mustEnqueue(t, s, events("a", 500)...)
	now := time.Now()
	items := mustClaim(t, s, "a", "o", 500, now, lease)
	outs := make([]store.Outcome, len(items))
	at := func(i int) time.Time { return now.Add(time.Hour + time.Duration(i)*time.Second) }
	for i, it := range items {
		outs[i] = store.Outcome{ID: it.ID, Kind: store.OutcomeRetry, RetryAt: at(i), Reason: "HTTP 503", TraceID: "t"}
	}
	mustComplete(t, s, "o", now, outs...)
	for i, it := range items {
		if i%97 != 0 && i != len(items)-1 {
			continue
		}
		got := wantState(t, s, it.ID, store.StatePending)
		wantTime(t, fmt.Sprintf("item %d NextAttempt", i), got.NextAttempt, at(i))
		if got.LastError != "HTTP 503" || got.TraceID != "t" {
			t.Errorf("item %d: LastError %q, TraceID %q", i, got.LastError, got.TraceID)
		}
	}

	mustEnqueue(t, s, events("b", 300)...)
	items = mustClaim(t, s, "b", "o", 300, now, lease)
	outs = make([]store.Outcome, len(items))
	for i, it := range items {
		outs[i] = store.Outcome{ID: it.ID, Kind: store.OutcomeDead, Reason: fmt.Sprintf("event %d: \"bad\" value", i), TraceID: "t2"}
	}
	mustComplete(t, s, "o", now, outs...)
	for i, it := range items {
		got := wantState(t, s, it.ID, store.StateDead)
		if want := fmt.Sprintf("event %d: \"bad\" value", i); got.LastError != want || got.TraceID != "t2" {
			t.Errorf("dead item %d: LastError %q, TraceID %q; want %q, t2", i, got.LastError, got.TraceID, want)
		}
	}
}

func testRelease(t *testing.T, s store.Store) {
	ids := mustEnqueue(t, s, ev("a", "P", "1"), ev("a", "P", "2"), ev("b", "P", "1"))
	now := time.Now()
	mustClaim(t, s, "a", "o1", 10, now, lease)
	mustClaim(t, s, "b", "o2", 10, now, lease)
	if err := s.Release(t.Context(), "o1"); err != nil {
		t.Fatalf("Release(o1) = %v", err)
	}
	for _, id := range ids[:2] {
		if it := wantState(t, s, id, store.StatePending); it.Attempts != 0 {
			t.Errorf("released item %d Attempts = %d, want 0", id, it.Attempts)
		}
	}
	wantState(t, s, ids[2], store.StateInflight)
	if got := mustClaim(t, s, "a", "o3", 10, time.Now(), lease); len(got) != 2 {
		t.Errorf("Claim after Release = %v, want both items", itemIDs(got))
	}
	if err := s.Release(t.Context(), "nobody"); err != nil {
		t.Errorf("Release(nobody) = %v, want nil", err)
	}
}

func testDueSites(t *testing.T, s store.Store) {
	ctx := t.Context()
	due, next, err := s.DueSites(ctx, time.Now())
	if err != nil || len(due) != 0 || !next.IsZero() {
		t.Fatalf("DueSites on empty store = %v, %v, %v; want nothing", due, next, err)
	}

	held := ev("c", "Lead", "h")
	held.Held = true
	ids := mustEnqueue(t, s, ev("a", "P", "1"), ev("b", "P", "1"), held, ev("d", "P", "1"), ev("e", "P", "1"))
	now := time.Now()
	mustClaim(t, s, "b", "o", 10, now, lease)
	mustClaim(t, s, "d", "o", 10, now, lease)
	mustClaim(t, s, "e", "o", 10, now, lease)
	mustComplete(t, s, "o", now,
		store.Outcome{ID: ids[1], Kind: store.OutcomeRetry, RetryAt: now.Add(time.Hour)},
		store.Outcome{ID: ids[3], Kind: store.OutcomeDelivered},
		store.Outcome{ID: ids[4], Kind: store.OutcomeDead, Reason: "x"})

	check := func(at time.Time, wantDue []string, wantNext time.Time) {
		t.Helper()
		due, next, err := s.DueSites(ctx, at)
		if err != nil {
			t.Fatalf("DueSites = %v", err)
		}
		slices.Sort(due)
		if !slices.Equal(due, wantDue) {
			t.Errorf("DueSites(now+%v) due = %q, want %q", at.Sub(now), due, wantDue)
		}
		wantTime(t, fmt.Sprintf("DueSites(now+%v) next", at.Sub(now)), next, wantNext)
	}
	check(now, []string{"a"}, now.Add(time.Hour))
	check(now.Add(2*time.Hour), []string{"a", "b"}, time.Time{})

	// A claimed item is due again when its lease runs out.
	mustClaim(t, s, "a", "o", 10, now, lease)
	check(now, nil, now.Add(lease))
	check(now.Add(lease), []string{"a"}, now.Add(time.Hour))
}

func testDepth(t *testing.T, s store.Store) {
	depth, err := s.Depth(t.Context())
	if err != nil || len(depth) != 0 {
		t.Fatalf("Depth on empty store = %v, %v; want empty", depth, err)
	}
	held := ev("b", "Lead", "h")
	held.Held = true
	ids := mustEnqueue(t, s, ev("a", "P", "1"), ev("a", "P", "2"), ev("a", "P", "3"), held,
		ev("b", "P", "1"), ev("c", "P", "1"), ev("c", "P", "2"))
	now := time.Now()
	mustClaim(t, s, "a", "o", 1, now, lease) // inflight counts
	mustClaim(t, s, "b", "o", 10, now, lease)
	mustClaim(t, s, "c", "o", 10, now, lease)
	mustComplete(t, s, "o", now,
		store.Outcome{ID: ids[4], Kind: store.OutcomeRetry, RetryAt: now.Add(time.Hour)}, // pending later counts
		store.Outcome{ID: ids[5], Kind: store.OutcomeDelivered},
		store.Outcome{ID: ids[6], Kind: store.OutcomeDead})
	depth, err = s.Depth(t.Context())
	if err != nil {
		t.Fatalf("Depth = %v", err)
	}
	if want := map[string]int{"a": 3, "b": 1}; len(depth) != len(want) || depth["a"] != 3 || depth["b"] != 1 {
		t.Errorf("Depth = %v, want %v", depth, want)
	}
}

// heldSetup enqueues held and pending events of two visitors on two sites
// and returns ids: [a/v1 held, a/v1 held, a/v2 held, b/v1 held, a/v1 pending].
func heldSetup(t *testing.T, s store.Store) []int64 {
	h := func(site, visitor, id string, held bool) store.NewEvent {
		e := ev(site, "Lead", id)
		e.VisitorID, e.Held, e.Source = visitor, held, "browser"
		return e
	}
	return mustEnqueue(t, s, h("a", "v1", "1", true), h("a", "v1", "2", true), h("a", "v2", "3", true),
		h("b", "v1", "4", true), h("a", "v1", "5", false))
}

func testReleaseHeldGranted(t *testing.T, s store.Store) {
	ids := heldSetup(t, s)
	// The grant's fill rewrites the released payloads (the grant's
	// fbp/fbc), and only theirs.
	filled := []byte(`{"filled":true}`)
	fill := func(p []byte) []byte { return filled }
	n, err := s.ReleaseHeld(t.Context(), "a", "v1", true, fill)
	if err != nil || n != 2 {
		t.Fatalf("ReleaseHeld(a, v1, granted) = %d, %v; want 2", n, err)
	}
	for i, id := range ids {
		it, err := s.Item(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Equal(it.Payload, filled); got != (i < 2) {
			t.Errorf("item %d payload %s: filled %v, want %v", i, it.Payload, got, i < 2)
		}
	}
	wantState(t, s, ids[0], store.StatePending)
	wantState(t, s, ids[1], store.StatePending)
	wantState(t, s, ids[2], store.StateHeld)
	wantState(t, s, ids[3], store.StateHeld)
	got := mustClaim(t, s, "a", "o", 10, time.Now(), lease)
	if want := []int64{ids[0], ids[1], ids[4]}; !slices.Equal(itemIDs(got), want) {
		t.Errorf("Claim after consent = %v, want %v", itemIDs(got), want)
	}
	if n, err := s.ReleaseHeld(t.Context(), "a", "v1", true, nil); err != nil || n != 0 {
		t.Errorf("ReleaseHeld again = %d, %v; want 0", n, err)
	}
}

func testReleaseHeldDenied(t *testing.T, s store.Store) {
	ids := heldSetup(t, s)
	fill0 := func(p []byte) []byte { t.Error("a denial filled a payload"); return p }
	n, err := s.ReleaseHeld(t.Context(), "a", "v1", false, fill0)
	if err != nil || n != 2 {
		t.Fatalf("ReleaseHeld(a, v1, denied) = %d, %v; want 2", n, err)
	}
	for _, id := range ids[:2] {
		_, err := s.Item(t.Context(), id)
		wantErr(t, fmt.Sprintf("Item(%d) after denial", id), err, store.ErrNotFound)
	}
	wantState(t, s, ids[2], store.StateHeld)
	wantState(t, s, ids[3], store.StateHeld)
	wantState(t, s, ids[4], store.StatePending) // not held: denial does not reach it
	if n, err := s.ReleaseHeld(t.Context(), "a", "nobody", false, nil); err != nil || n != 0 {
		t.Errorf("ReleaseHeld(unknown visitor) = %d, %v; want 0", n, err)
	}
}

func testReplay(t *testing.T, s store.Store) {
	ctx := t.Context()
	ids := mustEnqueue(t, s, events("a", 3)...)
	now := time.Now()
	mustClaim(t, s, "a", "o", 2, now, lease)
	mustComplete(t, s, "o", now,
		store.Outcome{ID: ids[0], Kind: store.OutcomeDead, Reason: "bad pixel"},
		store.Outcome{ID: ids[1], Kind: store.OutcomeDelivered})

	later := now.Add(time.Hour)
	if err := s.Replay(ctx, ids[0], later); err != nil {
		t.Fatalf("Replay(dead) = %v", err)
	}
	it := wantState(t, s, ids[0], store.StatePending)
	if it.LastError != "" || !it.DeliveredAt.IsZero() {
		t.Errorf("replayed item: LastError %q, DeliveredAt %v; want cleared", it.LastError, it.DeliveredAt)
	}
	wantTime(t, "replayed NextAttempt", it.NextAttempt, later)
	if got := mustClaim(t, s, "a", "o", 10, later, lease); !slices.Equal(itemIDs(got), []int64{ids[0], ids[2]}) {
		t.Errorf("Claim after replay = %v, want %v", itemIDs(got), []int64{ids[0], ids[2]})
	}

	wantErr(t, "Replay(delivered)", s.Replay(ctx, ids[1], later), store.ErrNotFound)
	wantErr(t, "Replay(inflight)", s.Replay(ctx, ids[2], later), store.ErrNotFound)
	wantErr(t, "Replay(missing)", s.Replay(ctx, ids[2]+100, later), store.ErrNotFound)
	wantState(t, s, ids[1], store.StateDelivered)
}

func testItemNotFound(t *testing.T, s store.Store) {
	_, err := s.Item(t.Context(), 12345)
	wantErr(t, "Item(12345)", err, store.ErrNotFound)
}

func testItems(t *testing.T, s store.Store) {
	ctx := t.Context()
	ids := mustEnqueue(t, s, ev("a", "P", "1"), ev("b", "P", "1"), ev("a", "P", "2"), ev("b", "P", "2"), ev("a", "P", "3"))
	now := time.Now()
	mustClaim(t, s, "a", "o", 1, now, lease)
	mustComplete(t, s, "o", now, store.Outcome{ID: ids[0], Kind: store.OutcomeDelivered})

	for _, tc := range []struct {
		site, state string
		limit       int
		want        []int64
	}{
		{"", "", 100, []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{"", "", 2, []int64{ids[4], ids[3]}},
		{"a", "", 100, []int64{ids[4], ids[2], ids[0]}},
		{"b", "", 1, []int64{ids[3]}},
		{"a", store.StateDelivered, 100, []int64{ids[0]}},
		{"", store.StatePending, 100, []int64{ids[4], ids[3], ids[2], ids[1]}},
		{"b", store.StateDead, 100, nil},
		{"nope", "", 100, nil},
	} {
		got, err := s.Items(ctx, tc.site, tc.state, tc.limit)
		if err != nil {
			t.Fatalf("Items(%q, %q, %d) = %v", tc.site, tc.state, tc.limit, err)
		}
		if !slices.Equal(itemIDs(got), tc.want) {
			t.Errorf("Items(%q, %q, %d) = %v, want %v", tc.site, tc.state, tc.limit, itemIDs(got), tc.want)
		}
	}
	got, _ := s.Items(ctx, "a", store.StateDelivered, 1)
	if len(got) == 1 && (got[0].SiteKey != "a" || got[0].EventID != "1" || got[0].State != store.StateDelivered) {
		t.Errorf("Items(a, delivered)[0] = %+v", got[0])
	}
}

func testPruneDelivered(t *testing.T, s store.Store) {
	ctx := t.Context()
	ids := mustEnqueue(t, s, events("a", 5)...)
	now := time.Now()
	mustClaim(t, s, "a", "o", 4, now, lease)
	for i, at := range []time.Time{now.Add(-2 * time.Hour), now.Add(-time.Hour), now} {
		mustComplete(t, s, "o", at, store.Outcome{ID: ids[i], Kind: store.OutcomeDelivered})
	}
	mustComplete(t, s, "o", now.Add(-3*time.Hour), store.Outcome{ID: ids[3], Kind: store.OutcomeDead})

	n, err := s.Prune(ctx, now.Add(-30*time.Minute), time.Time{})
	if err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2", n, err)
	}
	for _, id := range ids[:2] {
		_, err := s.Item(ctx, id)
		wantErr(t, fmt.Sprintf("Item(%d) after prune", id), err, store.ErrNotFound)
	}
	wantState(t, s, ids[2], store.StateDelivered)
	wantState(t, s, ids[3], store.StateDead)
	wantState(t, s, ids[4], store.StatePending)
	// Their dedup keys were kept.
	res, err := s.Enqueue(ctx, events("a", 1))
	if err != nil {
		t.Fatalf("Enqueue = %v", err)
	}
	wantStatuses(t, res, store.Duplicate)
}

func testPruneSeen(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustEnqueue(t, s, ev("a", "P", "1"))
	if _, err := s.Prune(ctx, time.Time{}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("Prune = %v", err)
	}
	res, err := s.Enqueue(ctx, []store.NewEvent{ev("a", "P", "1")})
	if err != nil {
		t.Fatalf("Enqueue = %v", err)
	}
	wantStatuses(t, res, store.Duplicate)

	n, err := s.Prune(ctx, time.Time{}, time.Now().Add(time.Second))
	if err != nil || n != 0 {
		t.Fatalf("Prune(seen) = %d, %v; want 0 items", n, err)
	}
	// The key expired: the event is new again.
	res, err = s.Enqueue(ctx, []store.NewEvent{ev("a", "P", "1")})
	if err != nil {
		t.Fatalf("Enqueue after prune = %v", err)
	}
	wantStatuses(t, res, store.Accepted)
	if items, _ := s.Items(ctx, "a", store.StatePending, 10); len(items) != 2 {
		t.Errorf("pending items = %d, want 2 (pruning keys keeps queued events)", len(items))
	}
}

func testSandbox(t *testing.T, s store.Store) {
	ctx := t.Context()
	t0 := time.Now().Add(-time.Minute)
	payloads := [][]byte{[]byte(`{"data":[1]}`), []byte("\x00\xffbinary"), []byte(`{"data":[3]}`)}
	for i, p := range payloads {
		if err := s.RecordSandbox(ctx, "a", t0.Add(time.Duration(i)*time.Second), p); err != nil {
			t.Fatalf("RecordSandbox = %v", err)
		}
		if err := s.RecordSandbox(ctx, "b", t0, []byte("other")); err != nil {
			t.Fatalf("RecordSandbox = %v", err)
		}
	}
	recs, err := s.SandboxRecords(ctx, "a", 0, 10)
	if err != nil || len(recs) != 3 {
		t.Fatalf("SandboxRecords(a) = %d, %v; want 3", len(recs), err)
	}
	for i, r := range recs {
		if r.SiteKey != "a" || (i > 0 && r.ID <= recs[i-1].ID) {
			t.Errorf("record %d = %+v, want site a, ids ascending", i, r)
		}
		wantBytes(t, "sandbox payload", r.Payload, payloads[i])
		wantTime(t, "sandbox At", r.At, t0.Add(time.Duration(i)*time.Second))
	}
	after, err := s.SandboxRecords(ctx, "a", recs[0].ID, 1)
	if err != nil || len(after) != 1 || after[0].ID != recs[1].ID {
		t.Errorf("SandboxRecords(a, after %d, 1) = %+v, %v; want record %d", recs[0].ID, after, err, recs[1].ID)
	}
	if rest, _ := s.SandboxRecords(ctx, "a", recs[2].ID, 10); len(rest) != 0 {
		t.Errorf("SandboxRecords after the last = %d records", len(rest))
	}
	if b, _ := s.SandboxRecords(ctx, "b", 0, 10); len(b) != 3 {
		t.Errorf("SandboxRecords(b) = %d records, want 3", len(b))
	}
}
