package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capitest"
	"github.com/capirelay/capirelay/internal/collect"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/sitecfg"
	"github.com/capirelay/capirelay/internal/store"
)

// relay is an in-process relay against a fake Graph API.
type relay struct {
	app   *App
	srv   *httptest.Server
	graph *capitest.Server
}

func newRelay(t *testing.T, tune func(a *App)) *relay {
	t.Helper()
	return newRelayLogging(t, slog.New(slog.DiscardHandler), tune)
}

// newRelayLogging is newRelay logging to logger.
func newRelayLogging(t *testing.T, logger *slog.Logger, tune func(a *App)) *relay {
	t.Helper()
	graph := capitest.New()
	t.Cleanup(graph.Close)
	cfg := config.Config{DataDir: t.TempDir(), GraphURL: graph.URL, BatchLinger: 20 * time.Millisecond, GraphTimeout: 2 * time.Second}
	a, err := New(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	a.Dispatcher.BackoffBase = 20 * time.Millisecond
	a.Dispatcher.BackoffMax = 200 * time.Millisecond
	if tune != nil {
		tune(a)
	}
	a.Start(context.Background())
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Shutdown(context.Background())
	})
	return &relay{app: a, srv: srv, graph: graph}
}

func (r *relay) addSite(t *testing.T, pixel, token string) (*store.Site, string) {
	t.Helper()
	s, key, err := CreateSite(context.Background(), r.app.Store, sitecfg.Update{Name: new("shop " + pixel), Domains: &[]string{"shop.example.com"}, PixelID: &pixel, AccessToken: &token})
	if err != nil {
		t.Fatal(err)
	}
	return s, key
}

func serverEvent(id string, now time.Time) map[string]any {
	return map[string]any{
		"event_name": "Purchase", "event_time": now.Unix(), "event_id": id, "action_source": "website",
		"event_source_url": "https://shop.example.com/checkout",
		"user_data": map[string]any{"em": "John_Smith@gmail.com", "ph": "+1 (650) 555-1212", "fn": "Mary",
			"client_ip_address": "2001:db8::1", "client_user_agent": "Mozilla/5.0 (X11)", "fbp": "fb.1.1596403881668.1116446470",
			"fbc": "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"},
		"custom_data": map[string]any{"value": 42.5, "currency": "USD"},
	}
}

// metrics is the relay's /metrics page.
func (r *relay) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(r.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(m)
}

func (r *relay) post(t *testing.T, key string, events ...map[string]any) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"data": events})
	return r.postRaw(t, key, "application/json", body)
}

func (r *relay) postRaw(t *testing.T, key, ctype string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", r.srv.URL+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer is not JSON: %s", b)
	}
	return resp.StatusCode, out
}

// postRetrying posts body as a well-behaved client does: a 429 or 503
// (nothing was accepted) is retried after a short pause, up to a bound.
func postRetrying(url, key string, body []byte) (int, error) {
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest("POST", url, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		retry := resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests
		if !retry || attempt == 50 {
			return resp.StatusCode, nil
		}
		// Retry-After says 5 s; a test client need not wait that long to
		// find the relay still correct.
		time.Sleep(time.Duration(20+rand.IntN(80)) * time.Millisecond)
	}
}

func TestDuplicateDeliveredOnce(t *testing.T) {
	r := newRelay(t, nil)
	_, key := r.addSite(t, "10111", "tok")
	now := time.Now()
	code, out := r.post(t, key, serverEvent("order-1", now))
	if code != 200 || status(out, 0) != "accepted" {
		t.Fatalf("first post: %d %v", code, out)
	}
	code, out = r.post(t, key, serverEvent("order-1", now))
	if code != 200 || status(out, 0) != "duplicate" {
		t.Fatalf("second post: %d %v", code, out)
	}
	// Another event name with the same id is a different event.
	other := serverEvent("order-1", now)
	other["event_name"] = "AddToCart"
	if _, out = r.post(t, key, other); status(out, 0) != "accepted" {
		t.Fatalf("other name: %v", out)
	}
	sharedtest.WaitFor(t, 5*time.Second, "delivery", func() bool { return len(r.graph.Events("10111")) == 2 })
	// Nothing else can be sent: the outbox holds exactly the two events, both
	// delivered (the repeat was refused at ingest, not queued).
	sharedtest.WaitFor(t, 5*time.Second, "both items marked delivered", func() bool {
		items, err := r.app.Store.Items(context.Background(), "", "", 10)
		return err == nil && len(items) == 2 && items[0].State == store.StateDelivered && items[1].State == store.StateDelivered
	})
	if n := len(r.graph.EventsByID("10111")["order-1"]); n != 2 {
		t.Fatalf("order-1 delivered %d times, want 2 (Purchase and AddToCart once each)", n)
	}
	m := r.metrics(t)
	for _, want := range []string{"capirelay_events_received_total{source=\"server\"} 3", "capirelay_events_duplicate_total",
		"capirelay_events_accepted_total", "capirelay_events_delivered_total", "capirelay_graph_request_seconds_bucket",
		"capirelay_dedup_keys_in_memory 2",
		// Three posts, one group commit each, the duplicate's included.
		"capirelay_store_commit_events_sum 3", "capirelay_store_commit_events_count 3",
		"capirelay_store_commit_seconds_bucket", "capirelay_store_sync_seconds_bucket",
		"capirelay_ingest_request_seconds_count{endpoint=\"events\"} 3"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(r.srv.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", path, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
}

func status(out map[string]any, i int) string {
	rs, _ := out["results"].([]any)
	if i >= len(rs) {
		return ""
	}
	m, _ := rs[i].(map[string]any)
	s, _ := m["status"].(string)
	return s
}

func TestTransientFaultsLoseNothingAndBadEventIsDeadLettered(t *testing.T) {
	r := newRelay(t, nil)
	_, key := r.addSite(t, "10222", "tok")
	r.graph.SetSeed(7)
	r.graph.SetFaultRate(0.30, capitest.Fault500, capitest.Fault503, capitest.FaultRateLimit, capitest.FaultReset, capitest.FaultThrottle613)
	r.graph.Reject(func(ev map[string]any) bool { return ev["event_id"] == "bad-4242" })
	now := time.Now()
	const total = 10000
	var wg sync.WaitGroup
	errs := make(chan error, total/100)
	for c := 0; c < total/100; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			evs := make([]map[string]any, 100)
			for i := range evs {
				id := fmt.Sprintf("e-%d", c*100+i)
				if c*100+i == 4242 {
					id = "bad-4242"
				}
				evs[i] = serverEvent(id, now)
			}
			body, _ := json.Marshal(map[string]any{"data": evs})
			// 100 clients against the 64-request in-flight limit: some are
			// told 503 "busy, retry", and retry as a client must.
			status, err := postRetrying(r.srv.URL+"/v1/events", key, body)
			if err != nil {
				errs <- err
				return
			}
			if status != 200 {
				errs <- fmt.Errorf("status %d", status)
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sharedtest.WaitFor(t, 3*time.Minute, "all good events delivered", func() bool { return len(r.graph.EventsByID("10222")) == total-1 })
	byID := r.graph.EventsByID("10222")
	for i := 0; i < total; i++ {
		id := fmt.Sprintf("e-%d", i)
		if i == 4242 {
			id = "bad-4242"
			if len(byID[id]) != 0 {
				t.Fatal("the rejected event was delivered")
			}
			continue
		}
		if len(byID[id]) == 0 {
			t.Fatalf("event %s lost", id)
		}
	}
	dead, err := r.app.Store.Items(context.Background(), "", store.StateDead, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].EventID != "bad-4242" || !strings.Contains(dead[0].LastError, "rejected") {
		t.Fatalf("dead letters = %+v", dead)
	}
	if st := r.graph.Stats(); st.Faults == 0 {
		t.Fatalf("no faults were injected: %+v", st)
	}
}

func TestTokenErrorPausesOnlyThatPixel(t *testing.T) {
	r := newRelay(t, nil)
	bad, badKey := r.addSite(t, "10333", "old-token")
	_, goodKey := r.addSite(t, "10444", "tok")
	r.graph.SetToken("10333", "new-token")
	now := time.Now()
	r.post(t, badKey, serverEvent("a-1", now), serverEvent("a-2", now))
	r.post(t, goodKey, serverEvent("b-1", now))
	sharedtest.WaitFor(t, 5*time.Second, "site paused", func() bool {
		s, _ := r.app.Store.Site(context.Background(), bad.Key)
		return s.Paused
	})
	sharedtest.WaitFor(t, 5*time.Second, "other pixel delivered", func() bool { return len(r.graph.Events("10444")) == 1 })
	// No retry storm while paused.
	before := len(r.graph.Requests())
	r.post(t, goodKey, serverEvent("b-2", now))
	r.post(t, badKey, serverEvent("a-3", now))
	sharedtest.WaitFor(t, 5*time.Second, "other pixel keeps flowing", func() bool { return len(r.graph.Events("10444")) == 2 })
	// The dispatcher's pass over the paused site, run here synchronously
	// rather than waited for, sends nothing.
	for range 3 {
		if n, err := r.app.Dispatcher.RunOnce(context.Background(), bad.Key); n != 0 || err != nil {
			t.Fatalf("RunOnce(paused site) claimed %d, %v; want nothing", n, err)
		}
	}
	calls333 := 0
	for _, rq := range r.graph.Requests()[before:] {
		if rq.Pixel == "10333" {
			calls333++
		}
	}
	if calls333 != 0 {
		t.Fatalf("paused pixel got %d more requests", calls333)
	}
	s, _ := r.app.Store.Site(context.Background(), bad.Key)
	if !strings.Contains(s.PauseReason, "set-token") {
		t.Fatalf("pause reason does not say what to do: %q", s.PauseReason)
	}
	if err := r.app.Store.SetAccessToken(context.Background(), bad.Key, "new-token"); err != nil {
		t.Fatal(err)
	}
	sharedtest.WaitFor(t, 5*time.Second, "paused pixel resumed", func() bool { return len(r.graph.EventsByID("10333")) == 3 })
}

func TestBadInputRefusedAndNothingStored(t *testing.T) {
	r := newRelay(t, nil)
	_, key := r.addSite(t, "10555", "tok")
	now := time.Now()
	ev := func(mut func(m map[string]any)) []byte {
		m := serverEvent("x", now)
		mut(m)
		b, _ := json.Marshal(map[string]any{"data": []any{m}})
		return b
	}
	many := make([]any, 1001)
	for i := range many {
		many[i] = serverEvent(fmt.Sprint(i), now)
	}
	tooMany, _ := json.Marshal(map[string]any{"data": many})
	huge := []byte(`{"data":[{"event_name":"` + strings.Repeat("a", collect.MaxServerBody) + `"}]}`)
	cases := []struct {
		name      string
		key       string
		body      []byte
		status    int
		wantField string
	}{
		{"malformed JSON", key, []byte(`{"data":[{"event_name":`), 400, ""},
		{"missing key", "", ev(func(m map[string]any) {}), 401, "Authorization"},
		{"wrong key", "crk_wrong", ev(func(m map[string]any) {}), 401, "Authorization"},
		{"body over the cap", key, huge, 413, "body"},
		{"over 1000 events", key, tooMany, 413, "data"},
		{"data not a list", key, []byte(`{"data":{"event_name":"x"}}`), 400, "data"},
		{"no data", key, []byte(`{}`), 400, "data"},
		{"event_time as a string Graph does not coerce", key, ev(func(m map[string]any) { m["event_time"] = "soon" }), 400, "data[0].event_time"},
		{"event_time in milliseconds", key, ev(func(m map[string]any) { m["event_time"] = now.UnixMilli() }), 400, "data[0].event_time"},
		{"event_name a number", key, ev(func(m map[string]any) { m["event_name"] = 7 }), 400, "data[0].event_name"},
		{"user_data a string", key, ev(func(m map[string]any) { m["user_data"] = "x" }), 400, "data[0].user_data"},
		{"em a number", key, ev(func(m map[string]any) { m["user_data"].(map[string]any)["em"] = 5 }), 400, "data[0].user_data.em"},
		{"unknown field", key, ev(func(m map[string]any) { m["evnt_name"] = "x" }), 400, "data[0].evnt_name"},
		{"too old", key, ev(func(m map[string]any) { m["event_time"] = now.Add(-8 * 24 * time.Hour).Unix() }), 422, "data[0].event_time"},
		{"no action_source", key, ev(func(m map[string]any) { delete(m, "action_source") }), 422, "data[0].action_source"},
		{"bad currency", key, ev(func(m map[string]any) { m["custom_data"] = map[string]any{"value": 1, "currency": "XXY"} }), 422, "data[0].custom_data.currency"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := r.postRaw(t, c.key, "application/json", c.body)
			if code != c.status {
				t.Fatalf("status = %d, want %d (%v)", code, c.status, out)
			}
			msg, _ := out["error"].(string)
			if msg == "" {
				t.Fatalf("no error message: %v", out)
			}
			if c.wantField != "" && out["field"] != c.wantField {
				t.Fatalf("field = %v, want %s (%s)", out["field"], c.wantField, msg)
			}
		})
	}
	items, err := r.app.Store.Items(context.Background(), "", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 0 {
		t.Fatalf("bad requests stored %d events", len(items))
	}
}

func TestGraphAliasAcceptsSDKRequests(t *testing.T) {
	r := newRelay(t, nil)
	_, key := r.addSite(t, "10666", "tok")
	body, _ := json.Marshal(map[string]any{"data": []any{serverEvent("g-1", time.Now())}, "access_token": key})
	resp, err := http.Post(r.srv.URL+"/v25.0/10666/events", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || out["events_received"] != float64(1) {
		t.Fatalf("alias: %d %v", resp.StatusCode, out)
	}
	// Form-encoded, as Meta's curl examples send it, with the key in the query.
	data, _ := json.Marshal([]any{serverEvent("g-2", time.Now())})
	resp, err = http.PostForm(r.srv.URL+"/v25.0/10666/events?access_token="+key, map[string][]string{"data": {string(data)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("form alias: %d", resp.StatusCode)
	}
	// A wrong key answers like Graph: an error object with code 190.
	resp, _ = http.Post(r.srv.URL+"/v25.0/10666/events?access_token=nope", "application/json", bytes.NewReader(body[:0]))
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if e, _ := out["error"].(map[string]any); resp.StatusCode != 400 || e["code"] != float64(190) {
		t.Fatalf("wrong key: %d %v", resp.StatusCode, out)
	}
	sharedtest.WaitFor(t, 5*time.Second, "alias events delivered", func() bool { return len(r.graph.Events("10666")) == 2 })
}

func TestVersionCheck(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC) // v24.0 expires 2028-02-18
	if err := checkVersion(config.Config{GraphVersion: "v24.0"}, logger, now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "expires soon") {
		t.Fatalf("no warning 79 days before expiry: %s", buf.String())
	}
	if err := checkVersion(config.Config{GraphVersion: "v22.0"}, logger, now); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired version accepted: %v", err)
	}
	if err := checkVersion(config.Config{GraphVersion: "v22.0", AllowExpiredVersion: true}, logger, now); err != nil {
		t.Fatalf("allowed expired version refused: %v", err)
	}
}

func TestTestEventCodeForwarded(t *testing.T) {
	r := newRelay(t, nil)
	site, key := r.addSite(t, "10888", "tok")
	site.TestEventCode = "TEST123"
	if err := r.app.Store.UpdateSite(context.Background(), site); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.post(t, key, serverEvent("site-code", now))
	body, _ := json.Marshal(map[string]any{"data": []any{serverEvent("request-code", now)}, "test_event_code": "REQ9"})
	if code, out := r.postRaw(t, key, "application/json", body); code != 200 {
		t.Fatalf("post: %d %v", code, out)
	}
	sharedtest.WaitFor(t, 5*time.Second, "both delivered", func() bool { return len(r.graph.Events("10888")) == 2 })
	codes := map[string]string{}
	for _, rq := range r.graph.Requests() {
		if rq.Pixel != "10888" || rq.Status != 200 {
			continue
		}
		for _, ev := range rq.Events {
			var e struct {
				EventID string `json:"event_id"`
			}
			json.Unmarshal(ev, &e)
			codes[e.EventID] = rq.TestEventCode
		}
	}
	if codes["site-code"] != "TEST123" || codes["request-code"] != "REQ9" {
		t.Fatalf("test_event_code per event = %v", codes)
	}
}

// CAPIRELAY_DEDUP_INDEX_KEYS reaches the SQLite store: past the bound, new
// keys go to the overflow table and the index holds no more, while repeats
// are still caught.
func TestDedupIndexKeysSetting(t *testing.T) {
	cfg := config.Config{DataDir: t.TempDir(), GraphURL: "http://127.0.0.1:1", Demo: false, DedupIndexKeys: 2}
	a, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	enqueue := func(id string) store.Status {
		t.Helper()
		res, err := a.Store.Enqueue(context.Background(), []store.NewEvent{{SiteKey: "s", EventName: "Lead", EventID: id,
			EventTime: time.Now(), Payload: []byte(`{}`)}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Status
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		if st := enqueue(id); st != store.Accepted {
			t.Fatalf("%s: %s, want accepted", id, st)
		}
	}
	for _, id := range []string{"a", "d"} {
		if st := enqueue(id); st != store.Duplicate {
			t.Fatalf("repeat of %s: %s, want duplicate", id, st)
		}
	}
	if n := a.Store.(interface{ DedupKeys() int }).DedupKeys(); n != 2 {
		t.Fatalf("the index holds %d keys, want the configured 2", n)
	}
}

// A batch's worth of events queued by several small requests is sent as
// soon as it is complete, not at the next linger tick.
func TestFullBatchSentBeforeTheLinger(t *testing.T) {
	r := newRelay(t, func(a *App) {
		a.Dispatcher.Linger = time.Hour
		a.Dispatcher.BatchSize = 10
	})
	_, key := r.addSite(t, "10222", "tok")
	now := time.Now()
	for i := range 3 {
		var evs []map[string]any
		for j := range 4 {
			evs = append(evs, serverEvent(fmt.Sprintf("batch-%d-%d", i, j), now))
		}
		if code, out := r.post(t, key, evs...); code != 200 {
			t.Fatalf("post %d: %d %v", i, code, out)
		}
	}
	// 12 queued in requests of 4: one full batch of 10 goes out now.
	sharedtest.WaitFor(t, 5*time.Second, "a full batch", func() bool { return len(r.graph.Events("10222")) >= 10 })
}
