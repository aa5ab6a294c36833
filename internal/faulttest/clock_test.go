package faulttest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/app"
	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/store"
)

// TestEventTimeAheadOfTheClock: a sender whose clock runs a few minutes
// fast gets its event_time clamped to now; one far ahead is refused.
func TestEventTimeAheadOfTheClock(t *testing.T) {
	t.Parallel()
	r := newRelay(t, options{})
	_, key := r.addSite(t, "10720", "tok")
	now := time.Now()
	ahead := serverEvent("ahead-3m", now.Add(3*time.Minute))
	if code := r.post(t, key, ahead); code != 200 {
		t.Fatalf("event 3 minutes ahead: status %d, want 200 (clamped)", code)
	}
	far := serverEvent("ahead-far", now.Add(event.MaxFutureSkew+5*time.Minute))
	body, _ := json.Marshal(map[string]any{"data": []any{far}})
	code, out := r.postRaw(key, "application/json", body)
	if code/100 != 4 || !strings.Contains(string(out), "event_time") {
		t.Fatalf("event %s ahead: %d %s, want a 4xx naming event_time", event.MaxFutureSkew+5*time.Minute, code, out)
	}
	r.assertNoLoss(t, "10720", 10*time.Second)
	var got struct {
		EventTime int64 `json:"event_time"`
	}
	if err := json.Unmarshal(r.graph.EventsByID("10720")["ahead-3m"][0], &got); err != nil {
		t.Fatal(err)
	}
	if sent := time.Unix(got.EventTime, 0); sent.After(time.Now()) {
		t.Fatalf("event_time sent to Meta is %s in the future", time.Until(sent))
	}
	if _, ok := r.graph.EventsByID("10720")["ahead-far"]; ok {
		t.Fatal("the far-future event was delivered")
	}
}

// TestDispatcherClockSkew: a dispatcher whose clock is days ahead
// dead-letters, as expired, the events its clock puts past Meta's 7-day
// window, instead of sending what Meta would refuse, and still delivers
// the others.
func TestDispatcherClockSkew(t *testing.T) {
	t.Parallel()
	skew := 7*24*time.Hour - time.Hour
	r := newRelay(t, options{tune: func(a *app.App) {
		a.Dispatcher.Now = func() time.Time { return time.Now().Add(skew) }
	}})
	site, key := r.addSite(t, "10721", "tok")
	now := time.Now()
	if code := r.post(t, key, serverEvent("fresh", now)); code != 200 {
		t.Fatalf("fresh event: %d", code)
	}
	// Two hours old: by the skewed clock, 7 days and 1 hour.
	if code := r.post(t, key, serverEvent("old", now.Add(-2*time.Hour))); code != 200 {
		t.Fatalf("2-hour-old event: %d", code)
	}
	r.acked.mu.Lock()
	delete(r.acked.ids, "old") // acknowledged, but expired by the time it is due
	r.acked.mu.Unlock()
	r.assertNoLoss(t, "10721", 10*time.Second)
	var dead []store.Item
	sharedtest.WaitFor(t, 10*time.Second, "the old event dead-lettered", func() bool {
		var err error
		dead, err = r.app.Store.Items(context.Background(), site.Key, store.StateDead, 10)
		return err == nil && len(dead) == 1
	})
	if dead[0].EventID != "old" || !strings.HasPrefix(dead[0].LastError, "expired") {
		t.Fatalf("dead letter = %s %q, want old, expired", dead[0].EventID, dead[0].LastError)
	}
	if _, ok := r.graph.EventsByID("10721")["old"]; ok {
		t.Fatal("an event past the 7-day window (by the dispatcher's clock) was sent")
	}
}
