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
	"github.com/capirelay/capirelay/internal/metarules"
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
// rejects a whole batch for one invalid event; with fail set, a request
// fails transiently (a 503) when fail says so, before it is looked at.
type rejecting struct {
	calls int
	fail  func(call int) bool
}

func (r *rejecting) Send(ctx context.Context, site *store.Site, b *Batch) (*capi.Response, error) {
	r.calls++
	if r.fail != nil && r.fail(r.calls) {
		return nil, &capi.Error{Status: 503, Message: "down"}
	}
	for _, ev := range b.Events {
		if strings.Contains(string(ev), `"bad"`) {
			return nil, &capi.Error{Status: 400, Code: 100, Message: "Invalid parameter", TraceID: "tr"}
		}
	}
	return &capi.Response{EventsReceived: len(b.Events), FbtraceID: "ok"}, nil
}

// TestBisectIsolatesBadEvents claims a batch of 1000 with some bad events
// again and again, as the store would (items retried or given back come
// back in the next claim): each bad event is dead-lettered once, every
// good one delivered once, no claim costs more than 2·log2(n) + 4 Graph
// requests, and a good event given back carries no added attempt.
func TestBisectIsolatesBadEvents(t *testing.T) {
	for _, c := range []struct {
		name string
		bad  []int
		fail func(call int) bool
	}{
		{"one bad", []int{417}, nil},
		{"two bad", []int{17, 800}, nil},
		{"five bad", []int{3, 250, 251, 640, 999}, nil},
		{"one bad, 30% transient faults", []int{417}, func(call int) bool { return call*7919%10 < 3 }},
		{"two bad, 30% transient faults", []int{17, 800}, func(call int) bool { return call*7919%10 < 3 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dest := &rejecting{fail: c.fail}
			now := time.Now()
			d := &Dispatcher{Meta: dest, Now: func() time.Time { return now }, BackoffBase: time.Second, BackoffMax: time.Minute}
			site := &store.Site{Key: "s", PixelID: "1", AccessToken: "t"}
			var items []store.Item
			for i := range 1000 {
				name := "good"
				if slices.Contains(c.bad, i) {
					name = "bad"
				}
				items = append(items, store.Item{ID: int64(i + 1), EventTime: now, Attempts: 1,
					Payload: json.RawMessage(fmt.Sprintf(`{"n":%q}`, name))})
			}
			dead, done := map[int64]int{}, map[int64]int{}
			for claim := 1; len(items) > 0; claim++ {
				if claim > 50 {
					t.Fatalf("%d items left after 50 claims", len(items))
				}
				before := dest.calls
				outs := d.deliver(context.Background(), site, items)
				if calls, max := dest.calls-before, 2*10+4; calls > max {
					t.Errorf("claim %d of %d items: %d Graph requests, want at most %d", claim, len(items), calls, max)
				}
				if len(outs) != len(items) {
					t.Fatalf("%d outcomes for %d items", len(outs), len(items))
				}
				byID := map[int64]store.Item{}
				for _, it := range items {
					byID[it.ID] = it
				}
				var next []store.Item
				for _, o := range outs {
					it := byID[o.ID]
					switch o.Kind {
					case store.OutcomeDead:
						if o.Class != store.DeadRejected || !strings.HasPrefix(o.Reason, "rejected: ") {
							t.Errorf("dead item %d: %q %q", o.ID, o.Class, o.Reason)
						}
						dead[o.ID]++
					case store.OutcomeDelivered:
						done[o.ID]++
					case store.OutcomeRelease: // claimed again as it was
						next = append(next, it)
					case store.OutcomeRetry: // claimed again, one attempt more
						it.Attempts++
						next = append(next, it)
					default:
						t.Fatalf("outcome %+v", o)
					}
				}
				items = next
			}
			for _, b := range c.bad {
				if dead[int64(b+1)] != 1 {
					t.Errorf("bad item %d dead-lettered %d times", b+1, dead[int64(b+1)])
				}
			}
			if len(dead) != len(c.bad) || len(done) != 1000-len(c.bad) {
				t.Errorf("%d dead, %d delivered", len(dead), len(done))
			}
			for id, n := range done {
				if n != 1 {
					t.Errorf("item %d delivered %d times", id, n)
				}
			}
			t.Logf("%d Graph requests in all", dest.calls)
		})
	}
}

// TestBisectGivesUpOnAnOutage: when no request of a bisection gets
// through, the events are retried with backoff, not given back at once
// (which would send them again at once, into the same outage).
func TestBisectGivesUpOnAnOutage(t *testing.T) {
	dest := &rejecting{fail: func(call int) bool { return call > 1 }} // the first refuses, the rest fail
	now := time.Now()
	d := &Dispatcher{Meta: dest, Now: func() time.Time { return now }, BackoffBase: time.Second, BackoffMax: time.Minute,
		Rand: func() float64 { return 0.5 }}
	items := []store.Item{{ID: 1, EventTime: now, Attempts: 1, Payload: json.RawMessage(`{"n":"bad"}`)},
		{ID: 2, EventTime: now, Attempts: 1, Payload: json.RawMessage(`{"n":"good"}`)}}
	outs := d.deliver(context.Background(), &store.Site{Key: "s", PixelID: "1", AccessToken: "t"}, items)
	if dest.calls != 1+maxBisectCalls(2) {
		t.Errorf("%d requests, want %d", dest.calls, 1+maxBisectCalls(2))
	}
	for _, o := range outs {
		if o.Kind != store.OutcomeRetry || !o.RetryAt.After(now) {
			t.Errorf("outcome %+v, want a retry with backoff", o)
		}
	}
}

func TestExpiredAndTransient(t *testing.T) {
	now := time.Now()
	fail := destFunc(func() error { return &capi.Error{Status: 503, Message: "down"} })
	d := &Dispatcher{Meta: fail, Now: func() time.Time { return now }, BackoffBase: time.Second, BackoffMax: time.Hour, Rand: func() float64 { return 0.5 }}
	site := &store.Site{Key: "s", PixelID: "1", AccessToken: "t"}
	items := []store.Item{
		{ID: 1, EventTime: now.Add(-8 * 24 * time.Hour), Attempts: 1},                                    // already too old
		{ID: 2, EventTime: now.Add(-time.Minute), Attempts: 1},                                           // retried
		{ID: 3, EventTime: now.Add(-metarules.DefaultWindow + ExpiryMargin + time.Second), Attempts: 20}, // would expire while waiting
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
