package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// gatedDest holds every batch until want batches are in flight at once
// (or a deadline passes), and records each event it was sent.
type gatedDest struct {
	want int

	mu       sync.Mutex
	cond     *sync.Cond
	inflight int
	peak     int            // batches in flight at once, or want once waiting gave up
	maxSeen  int            // batches in flight at once
	seen     map[string]int // event_id → times sent
	batches  int
	timedOut bool // want batches were never in flight at once
}

func newGatedDest(want int) *gatedDest {
	g := &gatedDest{want: want, seen: map[string]int{}}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *gatedDest) Send(ctx context.Context, site *store.Site, b *Batch) (*capi.Response, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.batches++
	g.inflight++
	g.peak = max(g.peak, g.inflight)
	g.maxSeen = max(g.maxSeen, g.inflight)
	g.cond.Broadcast()
	deadline := time.AfterFunc(10*time.Second, func() {
		g.mu.Lock()
		g.timedOut = true
		g.peak = max(g.peak, g.want) // stop waiting
		g.mu.Unlock()
		g.cond.Broadcast()
	})
	for g.peak < g.want {
		g.cond.Wait()
	}
	deadline.Stop()
	// Meta's round trip: batches sent at once overlap here.
	g.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	g.mu.Lock()
	g.inflight--
	for _, ev := range b.Events {
		var e struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(ev, &e); err != nil {
			return nil, err
		}
		g.seen[e.EventID]++
	}
	return &capi.Response{EventsReceived: len(b.Events)}, nil
}

// A site whose delivery lags has Parallel batches in flight at once, and
// no event goes out twice; one that keeps up sends one batch at a time.
func TestDrainSendsParallelBatchesWhenBehind(t *testing.T) {
	for _, tc := range []struct {
		name   string
		waited time.Duration // how old the queued events look to the dispatcher
		peak   int           // batches in flight at once
	}{
		{"behind", time.Minute, 4},
		{"keeping up", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) { drainBacklog(t, tc.waited, tc.peak) })
	}
}

func drainBacklog(t *testing.T, waited time.Duration, peak int) {
	ctx := context.Background()
	db := storetest.OpenSQLite(t)
	site := &store.Site{Key: "sbacklog", Name: "backlog", Domains: []string{"shop.example.com"}, PixelID: "100001", AccessToken: "t"}
	if err := db.CreateSite(ctx, site); err != nil {
		t.Fatal(err)
	}
	const batch, parallel, total = 100, 4, 1050
	now := time.Now()
	evs := make([]store.NewEvent, total)
	for i := range evs {
		id := "e" + strconv.Itoa(i)
		evs[i] = store.NewEvent{SiteKey: site.Key, EventName: "Purchase", EventID: id, EventTime: now,
			Payload: fmt.Appendf(nil, `{"event_name":"Purchase","event_id":%q,"event_time":%d,"action_source":"website"}`, id, now.Unix())}
	}
	if _, err := db.Enqueue(ctx, evs); err != nil {
		t.Fatal(err)
	}
	dest := newGatedDest(peak)
	d := &Dispatcher{Store: db, Meta: dest, BatchSize: batch, Parallel: parallel, Owner: "test",
		Now: func() time.Time { return time.Now().Add(waited) }}
	d.defaults()
	d.drain(ctx, site.Key)

	dest.mu.Lock()
	defer dest.mu.Unlock()
	if len(dest.seen) != total {
		t.Fatalf("%d distinct events sent, want %d", len(dest.seen), total)
	}
	for id, n := range dest.seen {
		if n != 1 {
			t.Fatalf("event %s sent %d times", id, n)
		}
	}
	if want := (total + batch - 1) / batch; dest.batches != want {
		t.Errorf("%d batches, want %d", dest.batches, want)
	}
	if dest.timedOut {
		t.Errorf("never %d batches in flight at once", peak)
	}
	if dest.maxSeen != peak {
		t.Errorf("at most %d batches in flight at once, want %d", dest.maxSeen, peak)
	}
	if dest.inflight != 0 {
		t.Errorf("%d batches still in flight after drain", dest.inflight)
	}
}
