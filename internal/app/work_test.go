package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// TestServerWorkOnSQLiteOnly: on SQLite, server requests work serverWork()
// at once (the pipeline's Work); on PostgreSQL, whose writers commit
// several groups at once, only the route's limit bounds them.
func TestServerWorkOnSQLiteOnly(t *testing.T) {
	r := newRelay(t, nil)
	work := r.app.Pipeline.Work
	if work == nil {
		t.Fatal("SQLite: the pipeline has no Work bound")
	}
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	for i := range serverWork() {
		if err := work.Enter(ended, ""); err != nil {
			t.Fatalf("SQLite: place %d of %d not free: %v", i+1, serverWork(), err)
		}
	}
	if err := work.Enter(ended, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("SQLite: more than %d places (%v)", serverWork(), err)
	}
	for range serverWork() {
		work.Leave()
	}

	cfg := config.Config{DataDir: t.TempDir(), GraphURL: "http://127.0.0.1:1", DatabaseURL: storetest.PostgresDatabase(t)}
	a, err := New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	if a.Pipeline.Work != nil {
		t.Error("PostgreSQL: the pipeline has a Work bound")
	}
}

// TestIngestWaitingGauge: /metrics shows the server requests waiting for a
// place to work, and none waiting for a CPU slot.
func TestIngestWaitingGauge(t *testing.T) {
	r := newRelay(t, nil)
	_, key := r.addSite(t, "10931", "EAAB-wait")
	gauges := func() string {
		var lines []string
		for l := range strings.Lines(r.metrics(t)) {
			if strings.HasPrefix(l, "capirelay_ingest_waiting{") {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		return strings.Join(lines, "; ")
	}
	const idle = `capirelay_ingest_waiting{gate="cpu"} 0; capirelay_ingest_waiting{gate="work"} 0`
	if g := gauges(); g != idle {
		t.Fatalf("idle: %s", g)
	}
	work := r.app.Pipeline.Work
	for range serverWork() {
		if err := work.Enter(t.Context(), ""); err != nil {
			t.Fatal(err)
		}
	}
	body, _ := json.Marshal(map[string]any{"data": []map[string]any{{"event_name": "Purchase", "event_time": time.Now().Unix(),
		"event_id": "wait-1", "action_source": "system_generated", "user_data": map[string]any{"external_id": "c-1"},
		"custom_data": map[string]any{"value": 5, "currency": "EUR"}}}})
	status := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", r.srv.URL+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	const waiting = `capirelay_ingest_waiting{gate="cpu"} 0; capirelay_ingest_waiting{gate="work"} 1`
	sharedtest.WaitFor(t, 5*time.Second, "the request waiting for a place", func() bool { return gauges() == waiting })
	for range serverWork() {
		work.Leave()
	}
	if s := <-status; s != http.StatusOK {
		t.Fatalf("status %d", s)
	}
	if g := gauges(); g != idle {
		t.Errorf("after: %s", g)
	}
}

// postScrubbed posts a server event, changed by change, and a clean one to
// a new relay, checks that metric counted the first, and returns what
// reached the Graph fake once both were delivered.
func postScrubbed(t *testing.T, metric string, change func(ev map[string]any)) []json.RawMessage {
	t.Helper()
	r := newRelay(t, nil)
	_, key := r.addSite(t, "10932", "EAAB-scrub")
	ev := serverEvent("scrubbed", time.Now())
	change(ev)
	if code, out := r.post(t, key, ev, serverEvent("clean", time.Now())); code != 200 {
		t.Fatalf("post: %d %v", code, out)
	}
	if !strings.Contains(r.metrics(t), "\n"+metric+" 1\n") {
		t.Errorf("/metrics lacks %s 1", metric)
	}
	sharedtest.WaitFor(t, 5*time.Second, "delivery", func() bool { return len(r.graph.Events("10932")) == 2 })
	return r.graph.Events("10932")
}

// TestURLsScrubbedMetric: a server event whose page held an email is
// counted in capirelay_urls_scrubbed_total, and delivered without it.
func TestURLsScrubbedMetric(t *testing.T) {
	for _, raw := range postScrubbed(t, "capirelay_urls_scrubbed_total", func(ev map[string]any) {
		ev["event_source_url"] = "https://shop.example.com/thanks?email=john%40example.com&plan=pro"
	}) {
		if strings.Contains(string(raw), "email=") || !strings.Contains(string(raw), "/thanks?plan=pro") && strings.Contains(string(raw), "/thanks") {
			t.Errorf("delivered %s", raw)
		}
	}
}

// TestCustomDataScrubbedMetric: a server event whose custom_data held an
// email address, a phone number and a card number is counted in
// capirelay_custom_data_scrubbed_total and delivered without them, the
// rest of its custom_data as sent.
func TestCustomDataScrubbedMetric(t *testing.T) {
	for _, raw := range postScrubbed(t, "capirelay_custom_data_scrubbed_total", func(ev map[string]any) {
		ev["custom_data"] = map[string]any{"value": 49.9, "currency": "USD", "customer_email": "john@example.com",
			"note": "gift wrap", "contact": "+1 650 555 1212", "paid_with": "4111 1111 1111 1111",
			"contents": []any{map[string]any{"id": "4111111111111111", "quantity": 1}}}
	}) {
		s := string(raw)
		if strings.Contains(s, "john@") || strings.Contains(s, "4111 1111") || strings.Contains(s, `"contact"`) {
			t.Errorf("delivered %s", raw)
		}
		if strings.Contains(s, `"scrubbed"`) && (!strings.Contains(s, `"note":"gift wrap"`) || !strings.Contains(s, `"id":"4111111111111111"`)) {
			t.Errorf("delivered %s: lost what was no personal data", raw)
		}
	}
}
