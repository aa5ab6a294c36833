package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/store"
)

func TestBackoffFullJitter(t *testing.T) {
	b := Backoff{Base: time.Second, Max: time.Minute}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		attempts   int
		r          float64
		retryAfter time.Duration
		want       time.Duration
	}{
		{1, 0, 0, 0}, // full jitter: the window starts at zero
		{1, 0.5, 0, 500 * time.Millisecond},
		{1, 0.999999, 0, time.Second}, // ceiling base
		{0, 0.999999, 0, time.Second}, // attempts below 1 count as 1
		{2, 0.999999, 0, 2 * time.Second},
		{4, 0.5, 0, 4 * time.Second},
		{4, 0.999999, 0, 8 * time.Second},
		{30, 0.999999, 0, time.Minute}, // capped
		{30, 0, 0, 0},
		{1, 0, 30 * time.Second, 30 * time.Second},    // Retry-After wins
		{30, 0.999999, 30 * time.Second, time.Minute}, // unless the jitter is longer
	}
	for _, c := range cases {
		got := b.Next(c.attempts, now, c.retryAfter, c.r).Sub(now)
		if got.Round(time.Millisecond) != c.want {
			t.Errorf("Next(%d, r=%v, ra=%v) = now+%v, want now+%v", c.attempts, c.r, c.retryAfter, got, c.want)
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
			if o.Class != store.DeadRejected {
				t.Errorf("dead item %d has class %q, want %q", o.ID, o.Class, store.DeadRejected)
			}
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
	if got[1].Kind != store.OutcomeDead || got[1].Class != store.DeadExpired || !strings.HasPrefix(got[1].Reason, "expired: ") {
		t.Errorf("too old: %+v", got[1])
	}
	// Attempt 1 with base 1s and r 0.5: half of the 1s window.
	if got[2].Kind != store.OutcomeRetry || got[2].RetryAt != now.Add(500*time.Millisecond) {
		t.Errorf("transient: %+v", got[2])
	}
	if got[3].Kind != store.OutcomeDead || got[3].Class != store.DeadExpired || !strings.HasPrefix(got[3].Reason, "expired: ") {
		t.Errorf("expiring while retrying: %+v", got[3])
	}
}

type destFunc func() error

func (f destFunc) Send(ctx context.Context, site *store.Site, b *Batch) (*capi.Response, error) {
	return nil, f()
}

// recording accepts every batch and keeps each request's code and events.
type recording struct{ reqs []Batch }

func (r *recording) Send(ctx context.Context, site *store.Site, b *Batch) (*capi.Response, error) {
	r.reqs = append(r.reqs, Batch{Events: slices.Clone(b.Events), TestEventCode: b.TestEventCode})
	return &capi.Response{EventsReceived: len(b.Events), FbtraceID: "tr"}, nil
}

func TestDeliverGroupsByTestEventCode(t *testing.T) {
	now := time.Now()
	site := &store.Site{Key: "s", PixelID: "1", AccessToken: "t", TestEventCode: "SITE"}
	item := func(id int64, code string, age time.Duration) store.Item {
		return store.Item{ID: id, EventTime: now.Add(-age), TestEventCode: code, Payload: json.RawMessage(fmt.Sprintf(`{"id":%d}`, id))}
	}
	for _, c := range []struct {
		name  string
		items []store.Item
		reqs  []string // each request: code and event ids
		dead  []int64
	}{
		{"one code", []store.Item{item(1, "", 0), item(2, "", 0)}, []string{`SITE [1 2]`}, nil},
		{"two codes", []store.Item{item(1, "", 0), item(2, "T2", 0), item(3, "", 0), item(4, "T2", 0)},
			[]string{`SITE [1 3]`, `T2 [2 4]`}, nil},
		{"expired in the middle", []store.Item{item(1, "", 0), item(2, "", 8*24*time.Hour), item(3, "", 0)},
			[]string{`SITE [1 3]`}, []int64{2}},
		{"all expired", []store.Item{item(1, "", 8*24*time.Hour)}, nil, []int64{1}},
	} {
		dest := &recording{}
		d := &Dispatcher{Meta: dest, Now: func() time.Time { return now }}
		outs := d.deliver(context.Background(), site, c.items)
		var reqs []string
		for _, b := range dest.reqs {
			var ids []int
			for _, ev := range b.Events {
				var v struct{ ID int }
				json.Unmarshal(ev, &v)
				ids = append(ids, v.ID)
			}
			reqs = append(reqs, fmt.Sprint(b.TestEventCode, " ", ids))
		}
		if !slices.Equal(reqs, c.reqs) {
			t.Errorf("%s: requests %q, want %q", c.name, reqs, c.reqs)
		}
		var dead []int64
		delivered := 0
		for _, o := range outs {
			switch o.Kind {
			case store.OutcomeDead:
				dead = append(dead, o.ID)
			case store.OutcomeDelivered:
				delivered++
			}
		}
		if len(outs) != len(c.items) || !slices.Equal(dead, c.dead) || delivered != len(c.items)-len(c.dead) {
			t.Errorf("%s: outcomes %+v", c.name, outs)
		}
	}
}

// TestDeadLetterMetricUsesTheClass: the metric's reason label is the
// outcome's Class, not a prefix parsed back out of the reason text.
func TestDeadLetterMetricUsesTheClass(t *testing.T) {
	d := &Dispatcher{Metrics: metrics.New()}
	d.count("s", []store.Outcome{
		{ID: 1, Kind: store.OutcomeDead, Class: store.DeadExpired, Reason: "anything: at all"},
		{ID: 2, Kind: store.OutcomeDead, Class: store.DeadRejected, Reason: "no colon here"},
		{ID: 3, Kind: store.OutcomeDead, Class: store.DeadRejected, Reason: "expired: misleading words"},
	})
	if n := testutil.ToFloat64(d.Metrics.DeadLettered.WithLabelValues("s", "expired")); n != 1 {
		t.Errorf("expired dead letters = %v, want 1", n)
	}
	if n := testutil.ToFloat64(d.Metrics.DeadLettered.WithLabelValues("s", "rejected")); n != 2 {
		t.Errorf("rejected dead letters = %v, want 2", n)
	}
}
