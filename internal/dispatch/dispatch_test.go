package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/store"
)

func TestBackoffFullJitter(t *testing.T) {
	d := &Dispatcher{BackoffBase: time.Second, BackoffMax: time.Minute}
	cases := []struct {
		attempts   int
		r          float64
		retryAfter time.Duration
		want       time.Duration
	}{
		{1, 0, 0, 500 * time.Millisecond}, // floor is base/2
		{1, 0.999999, 0, time.Second},     // ceiling base
		{2, 0.999999, 0, 2 * time.Second},
		{4, 0.999999, 0, 8 * time.Second},
		{30, 0.999999, 0, time.Minute}, // capped
		{30, 0, 0, 500 * time.Millisecond},
		{1, 0, 30 * time.Second, 30 * time.Second}, // Retry-After wins
	}
	for _, c := range cases {
		d.Rand = func() float64 { return c.r }
		got := d.Backoff(c.attempts, c.retryAfter)
		if got.Round(time.Millisecond) != c.want {
			t.Errorf("Backoff(%d, r=%v, ra=%v) = %v, want %v", c.attempts, c.r, c.retryAfter, got, c.want)
		}
	}
}

// rejecting fails any batch holding a "bad" event with code 100, as Meta
// rejects a whole batch for one invalid event.
type rejecting struct{ calls int }

func (r *rejecting) Send(ctx context.Context, site *store.Site, b *Batch) (*capi.Response, error) {
	r.calls++
	for _, ev := range b.Events {
		if strings.Contains(string(ev), `"bad"`) {
			return nil, &capi.Error{Status: 400, Code: 100, Message: "Invalid parameter", TraceID: "tr"}
		}
	}
	return &capi.Response{EventsReceived: len(b.Events), FbtraceID: "ok"}, nil
}

func TestBisectIsolatesBadEvents(t *testing.T) {
	dest := &rejecting{}
	now := time.Now()
	d := &Dispatcher{Meta: dest, Now: func() time.Time { return now }, BackoffBase: time.Second, BackoffMax: time.Minute}
	site := &store.Site{Key: "s", PixelID: "1", AccessToken: "t"}
	var items []store.Item
	for i := 0; i < 1000; i++ {
		name := "good"
		if i == 17 || i == 800 {
			name = "bad"
		}
		items = append(items, store.Item{ID: int64(i + 1), EventTime: now, Payload: json.RawMessage(fmt.Sprintf(`{"n":%q}`, name))})
	}
	outs := d.deliver(context.Background(), site, items)
	if len(outs) != 1000 {
		t.Fatalf("%d outcomes for 1000 items", len(outs))
	}
	dead := map[int64]string{}
	for _, o := range outs {
		switch o.Kind {
		case store.OutcomeDead:
			dead[o.ID] = o.Reason
		case store.OutcomeDelivered:
		default:
			t.Fatalf("outcome %+v", o)
		}
	}
	if len(dead) != 2 || !strings.HasPrefix(dead[18], "rejected: ") || dead[801] == "" {
		t.Fatalf("dead = %v, want items 18 and 801", dead)
	}
	if dest.calls > 45 {
		t.Errorf("%d requests to isolate 2 bad events in 1000", dest.calls)
	}
}

func TestExpiredAndTransient(t *testing.T) {
	now := time.Now()
	fail := destFunc(func() error { return &capi.Error{Status: 503, Message: "down"} })
	d := &Dispatcher{Meta: fail, Now: func() time.Time { return now }, BackoffBase: time.Second, BackoffMax: time.Hour, Rand: func() float64 { return 0.5 }}
	site := &store.Site{Key: "s", PixelID: "1", AccessToken: "t"}
	items := []store.Item{
		{ID: 1, EventTime: now.Add(-8 * 24 * time.Hour), Attempts: 1},                             // already too old
		{ID: 2, EventTime: now.Add(-time.Minute), Attempts: 1},                                    // retried
		{ID: 3, EventTime: now.Add(-capi.MaxEventAge + ExpiryMargin + time.Second), Attempts: 20}, // would expire while waiting
	}
	outs := d.deliver(context.Background(), site, items)
	got := map[int64]store.Outcome{}
	for _, o := range outs {
		got[o.ID] = o
	}
	if got[1].Kind != store.OutcomeDead || !strings.HasPrefix(got[1].Reason, "expired") {
		t.Errorf("too old: %+v", got[1])
	}
	if got[2].Kind != store.OutcomeRetry || !got[2].RetryAt.After(now) {
		t.Errorf("transient: %+v", got[2])
	}
	if got[3].Kind != store.OutcomeDead || !strings.HasPrefix(got[3].Reason, "expired") {
		t.Errorf("expiring while retrying: %+v", got[3])
	}
}

type destFunc func() error

func (f destFunc) Send(ctx context.Context, site *store.Site, b *Batch) (*capi.Response, error) {
	return nil, f()
}
