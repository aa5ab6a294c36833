package identity

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// TestLearnDropsPastTheQueue: while the writer is behind (here: not
// running), Learn's funcs queue at most queueSize observations and count
// the rest as dropped, without writing or waiting in the request.
func TestLearnDropsPastTheQueue(t *testing.T) {
	t.Parallel()
	s := New(nil, slog.New(slog.DiscardHandler)) // a store call would panic
	site := &store.Site{Key: "s"}
	const extra = 100
	start := time.Now()
	for i := range queueSize + extra {
		ev := &event.Event{EventName: "Purchase", ActionSource: "website"}
		ev.UserData.Em = event.List{fmt.Sprintf("%064x", i+1)}
		learn := s.Learn(&pipeline.Input{Site: site, VisitorID: fmt.Sprintf("v%d", i), Event: ev})
		if learn == nil {
			t.Fatalf("event %d: nothing to learn", i)
		}
		learn(context.Background())
	}
	if got := len(s.queue); got != queueSize {
		t.Errorf("queued %d observations, want the bound %d", got, queueSize)
	}
	if got := testutil.ToFloat64(s.dropped); got != extra {
		t.Errorf("identity_learn_dropped_total = %v, want %d", got, extra)
	}
	t.Logf("%d observations in %v", queueSize+extra, time.Since(start))
}

func TestRestAfter(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		d      time.Duration
		queued int
		want   time.Duration
	}{
		{20 * time.Millisecond, 0, 0},
		{20 * time.Millisecond, queueSize/2 - 1, 0},
		{20 * time.Millisecond, queueSize / 2, 200 * time.Millisecond},
		{20 * time.Millisecond, queueSize, 200 * time.Millisecond},
		{time.Second, queueSize, 500 * time.Millisecond},
	} {
		if got := restAfter(c.d, c.queued); got != c.want {
			t.Errorf("restAfter(%v, %d) = %v, want %v", c.d, c.queued, got, c.want)
		}
	}
}

// TestLearnPacksNothingWhenFull: with the queue full, Learn does not pack
// an observation that would be dropped (no allocation), and its func
// counts the drop only when called, that is, once the event is accepted.
// An event that teaches nothing is not counted.
func TestLearnPacksNothingWhenFull(t *testing.T) {
	s := New(nil, slog.New(slog.DiscardHandler))
	site := &store.Site{Key: "s"}
	for range queueSize {
		s.queue <- "x"
	}
	ev := &event.Event{EventName: "Purchase", ActionSource: "website"}
	ev.UserData.Em = event.List{fmt.Sprintf("%064x", 1)}
	in := &pipeline.Input{Site: site, VisitorID: "v1", Event: ev}
	var learn func(context.Context)
	if allocs := testing.AllocsPerRun(100, func() { learn = s.Learn(in) }); allocs != 0 {
		t.Errorf("Learn with a full queue: %v allocations, want 0 (nothing packed)", allocs)
	}
	if learn == nil {
		t.Fatal("Learn returned nil for an event with a visitor and an email")
	}
	if got := testutil.ToFloat64(s.dropped); got != 0 {
		t.Errorf("dropped = %v before the event was accepted, want 0", got)
	}
	learn(context.Background())
	if got := testutil.ToFloat64(s.dropped); got != 1 {
		t.Errorf("dropped = %v after the event was accepted, want 1", got)
	}
	empty := &pipeline.Input{Site: site, Event: &event.Event{EventName: "PageView", ActionSource: "website"}}
	if learn := s.Learn(empty); learn != nil {
		t.Error("Learn returned a func for an event without visitor or keys")
	}
}
