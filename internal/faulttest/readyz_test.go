package faulttest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/app"
	"github.com/capirelay/capirelay/internal/store/sqlite"
)

// TestReadyWhileStoreRefusesWrites: a real SQLite file capped at its size
// refuses writes as a full disk does. Ingest answers 503, /readyz answers
// 503 until a write succeeds again, and the refusals are logged once per
// interval with their count instead of a line each.
func TestReadyWhileStoreRefusesWrites(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Now()
	)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	r := newRelay(t, options{tune: func(a *app.App) { a.Writes.Now = clock }})
	db, ok := r.app.Store.(*sqlite.DB)
	if !ok {
		t.Fatalf("store is %T, want SQLite", r.app.Store)
	}
	site, key := r.addSite(t, "75000", "tok")
	ready := func() int {
		resp, err := http.Get(r.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if !r.postUntil(t, key, "before", 200, 5) || ready() != 200 {
		t.Fatal("healthy relay not ready")
	}
	if err := db.SetMaxPages(t.Context(), 1); err != nil { // 1: the file's size now
		t.Fatal(err)
	}
	if !r.postUntil(t, key, "full", 503, 200) {
		t.Fatalf("a capped file never made ingest answer 503; statuses %v", r.acked.statuses())
	}
	// A small write may still fit in a page with room left: count the
	// refusals, each of which the old code logged.
	refused := 1
	for i := range 20 {
		if r.postUntil(t, key, fmt.Sprintf("more-%d", i), 503, 1) {
			refused++
		}
		if code := r.beacon(t, site.Key, fmt.Sprintf("beacon-%d", i)); code == 503 {
			refused++
		}
	}
	if refused < 10 {
		t.Fatalf("only %d refusals of 41 requests", refused)
	}
	if code := ready(); code != 503 {
		t.Errorf("/readyz = %d while the store refuses writes, want 503", code)
	}
	lines := func(s string) int { return strings.Count(r.logs.String(), s) }
	if n := lines("store refuses writes"); n != 1 {
		t.Errorf("%d log lines about refused writes within one interval, want 1:\n%s", n, r.logs.String())
	}
	for _, perRequest := range []string{`msg="store events"`, `msg="store browser events"`, `status=503`} {
		if n := lines(perRequest); n != 0 {
			t.Errorf("%d log lines %s: one per refusal", n, perRequest)
		}
	}
	// After the interval, the next refusal is logged with the count of
	// those in between.
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	if !r.postUntil(t, key, "after-interval", 503, 20) {
		t.Fatal("no refusal after the interval")
	}
	if n := lines("store refuses writes"); n != 2 {
		t.Fatalf("%d log lines after the interval, want 2", n)
	}
	if !strings.Contains(r.logs.String(), fmt.Sprintf("refused=%d", refused)) {
		t.Errorf("the second line does not count the %d refusals since the first:\n%s", refused, r.logs.String())
	}

	if err := db.SetMaxPages(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if !r.postUntil(t, key, "after", 200, 20) {
		t.Fatalf("ingest did not recover; statuses %v", r.acked.statuses())
	}
	// Ready again once no write was refused for the hold.
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	if !r.postUntil(t, key, "later", 200, 1) {
		t.Fatal("ingest refused after recovering")
	}
	if code := ready(); code != 200 {
		t.Errorf("/readyz = %d once writes succeed again, want 200", code)
	}
	if lines("store accepts writes again") != 1 {
		t.Errorf("recovery not logged once:\n%s", r.logs.String())
	}
	r.assertNoLoss(t, "75000", 30*time.Second)
}
