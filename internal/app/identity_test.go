package app

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/sharedtest"
)

// TestEmailOnlyServerEventsEnriched is the report through /v1/events: a
// server event with em and fbp, then one with only em (spelled
// otherwise), reaches Meta with the first one's fbp.
func TestEmailOnlyServerEventsEnriched(t *testing.T) {
	r := newRelay(t, nil)
	_, key := r.addSite(t, "10555", "tok")
	now := time.Now()
	ev := func(id string, ud map[string]any) map[string]any {
		return map[string]any{"event_name": "Purchase", "event_time": now.Unix(), "event_id": id,
			"action_source": "system_generated", "user_data": ud, "custom_data": map[string]any{"value": 1, "currency": "USD"}}
	}
	const fbp = "fb.1.1596403881668.1116446470"
	if code, out := r.post(t, key, ev("first", map[string]any{"em": "Jane.Doe@Example.com", "fbp": fbp})); code != 200 || status(out, 0) != "accepted" {
		t.Fatalf("first post: %d %v", code, out)
	}
	// Learning is asynchronous: wait for it as a later request would.
	if err := r.app.Identity.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, out := r.post(t, key, ev("second", map[string]any{"em": " jane.doe@example.COM"})); code != 200 || status(out, 0) != "accepted" {
		t.Fatalf("second post: %d %v", code, out)
	}
	sharedtest.WaitFor(t, 5*time.Second, "delivery", func() bool { return len(r.graph.EventsByID("10555")["second"]) == 1 })
	var got struct {
		UserData struct {
			Fbp string `json:"fbp"`
		} `json:"user_data"`
	}
	if err := json.Unmarshal(r.graph.EventsByID("10555")["second"][0], &got); err != nil {
		t.Fatal(err)
	}
	if got.UserData.Fbp != fbp {
		t.Errorf("second event reached Meta with fbp %q, want %q", got.UserData.Fbp, fbp)
	}
}
