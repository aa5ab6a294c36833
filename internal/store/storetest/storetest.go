// Package storetest is the one contract suite every store.Store
// implementation runs: call Run from the implementation's tests with a
// function that opens a fresh, empty store. The suite is the definition of
// the store's semantics; change it when they change.
//
// Times: Enqueue stamps items with the store's own clock, so tests pass
// time.Now() (or later) to Claim, Complete and DueSites. Stored times are
// compared at millisecond precision, the coarsest an implementation keeps.
//
// Only test code may import this package.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// Run runs the contract suite. open must return a fresh, empty store for
// each call and arrange for it to be closed (t.Cleanup); the suite may
// also close it itself, so Close must be idempotent. Subtests run in
// parallel, each with its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},
		{"CloseIdempotent", testCloseIdempotent},
		{"SiteRoundTrip", testSiteRoundTrip},
		{"SiteDefaults", testSiteDefaults},
		{"SiteDuplicate", testSiteDuplicate},
		{"SiteNotFound", testSiteNotFound},
		{"SiteByAPIKeyHash", testSiteByAPIKeyHash},
		{"ListSites", testListSites},
		{"UpdateSite", testUpdateSite},
		{"SetAccessToken", testSetAccessToken},
		{"SetAPIKeyHash", testSetAPIKeyHash},
		{"SetPaused", testSetPaused},
		{"DeleteSite", testDeleteSite},
		{"EnqueueStoresItems", testEnqueueStoresItems},
		{"EnqueueEmpty", testEnqueueEmpty},
		{"EnqueueDedup", testEnqueueDedup},
		{"EnqueueDedupWithinCall", testEnqueueDedupWithinCall},
		{"EnqueueConcurrent", testEnqueueConcurrent},
		{"PayloadRoundTrip", testPayloadRoundTrip},
		{"ClaimLimitAndOrder", testClaimLimitAndOrder},
		{"ClaimSiteIsolation", testClaimSiteIsolation},
		{"ClaimSkipsNotDue", testClaimSkipsNotDue},
		{"ClaimLease", testClaimLease},
		{"ClaimConcurrentOwners", testClaimConcurrentOwners},
		{"CompleteDelivered", testCompleteDelivered},
		{"CompleteRetry", testCompleteRetry},
		{"CompleteDead", testCompleteDead},
		{"CompleteRelease", testCompleteRelease},
		{"CompleteWrongOwner", testCompleteWrongOwner},
		{"CompleteLostLease", testCompleteLostLease},
		{"CompleteNotInflight", testCompleteNotInflight},
		{"CompleteUnknownKind", testCompleteUnknownKind},
		{"CompleteMany", testCompleteMany},
		{"CompleteManyOwnValues", testCompleteManyOwnValues},
		{"Release", testRelease},
		{"DueSites", testDueSites},
		{"Depth", testDepth},
		{"ReleaseHeldGranted", testReleaseHeldGranted},
		{"ReleaseHeldDenied", testReleaseHeldDenied},
		{"Replay", testReplay},
		{"ItemNotFound", testItemNotFound},
		{"Items", testItems},
		{"PruneDelivered", testPruneDelivered},
		{"PruneSeen", testPruneSeen},
		{"Sandbox", testSandbox},
		{"LeadUpsert", testLeadUpsert},
		{"LeadPartialLifecycle", testLeadPartialLifecycle},
		{"WebhookSecret", testWebhookSecret},
		{"Identities", testIdentities},
		{"Forget", testForget},
		{"ForgetByPhone", testForgetByPhone},
		{"AdminAccess", testAdminAccess},
		{"AdminAggregates", testAdminAggregates},
		{"ActivityMinutes", testActivityMinutes},
		{"ForgetEverywhere", testForgetEverywhere},
		{"AdminTokens", testAdminTokens},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping() = %v, want nil", err)
	}
}

func testCloseIdempotent(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close() = %v, want nil", err)
	}
}

// ev returns a pending event with a payload that names it.
func ev(site, name, id string) store.NewEvent {
	return store.NewEvent{
		SiteKey:   site,
		EventName: name,
		EventID:   id,
		EventTime: time.Now().Add(-time.Minute).Truncate(time.Second),
		Payload:   fmt.Appendf(nil, `{"event_name":%q,"event_id":%q}`, name, id),
		Source:    "server",
	}
}

// events returns n distinct pending events of site.
func events(site string, n int) []store.NewEvent {
	evs := make([]store.NewEvent, n)
	for i := range evs {
		evs[i] = ev(site, "Purchase", fmt.Sprintf("%s-%d", site, i))
	}
	return evs
}

// mustEnqueue enqueues evs and returns the ids of accepted ones, failing if
// any was not accepted.
func mustEnqueue(t testing.TB, s store.Store, evs ...store.NewEvent) []int64 {
	t.Helper()
	res, err := s.Enqueue(context.Background(), evs)
	if err != nil {
		t.Fatalf("Enqueue(%d events) = %v", len(evs), err)
	}
	if len(res) != len(evs) {
		t.Fatalf("Enqueue(%d events) returned %d results", len(evs), len(res))
	}
	ids := make([]int64, len(res))
	for i, r := range res {
		if r.Status != store.Accepted || r.ID <= 0 {
			t.Fatalf("Enqueue result %d = %+v, want accepted with an id", i, r)
		}
		ids[i] = r.ID
	}
	return ids
}

func mustClaim(t testing.TB, s store.Store, site, owner string, limit int, now time.Time, lease time.Duration) []store.Item {
	t.Helper()
	items, err := s.Claim(context.Background(), site, owner, limit, now, lease)
	if err != nil {
		t.Fatalf("Claim(%s, %s, %d) = %v", site, owner, limit, err)
	}
	for i := 1; i < len(items); i++ {
		if items[i-1].ID >= items[i].ID {
			t.Fatalf("Claim(%s) ids not ascending: %d then %d", site, items[i-1].ID, items[i].ID)
		}
	}
	return items
}

func mustComplete(t testing.TB, s store.Store, owner string, now time.Time, outs ...store.Outcome) {
	t.Helper()
	if err := s.Complete(context.Background(), owner, outs, now); err != nil {
		t.Fatalf("Complete(%s, %d outcomes) = %v", owner, len(outs), err)
	}
}

func mustItem(t testing.TB, s store.Store, id int64) *store.Item {
	t.Helper()
	it, err := s.Item(context.Background(), id)
	if err != nil {
		t.Fatalf("Item(%d) = %v", id, err)
	}
	return it
}

func wantState(t testing.TB, s store.Store, id int64, state string) *store.Item {
	t.Helper()
	it := mustItem(t, s, id)
	if it.State != state {
		t.Fatalf("Item(%d).State = %q, want %q", id, it.State, state)
	}
	return it
}

func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s = %v, want %v", what, err, target)
	}
}

func itemIDs(items []store.Item) []int64 {
	ids := make([]int64, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return ids
}

// sameTime reports whether a and b are the same instant at the precision
// every store keeps (milliseconds; PostgreSQL rounds microseconds).
func sameTime(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	d := a.Sub(b)
	return d > -time.Millisecond && d < time.Millisecond
}

func wantTime(t testing.TB, what string, got, want time.Time) {
	t.Helper()
	if !sameTime(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func wantBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}
