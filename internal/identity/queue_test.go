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
		{20 * time.Millisecond, queueSize / 2, 60 * time.Millisecond},
		{20 * time.Millisecond, queueSize, 60 * time.Millisecond},
		{time.Second, queueSize, 500 * time.Millisecond},
	} {
		if got := restAfter(c.d, c.queued); got != c.want {
			t.Errorf("restAfter(%v, %d) = %v, want %v", c.d, c.queued, got, c.want)
		}
	}
}
