package faulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/app"
	"github.com/capirelay/capirelay/internal/capitest"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/sitecfg"
	"github.com/capirelay/capirelay/internal/store"
)

// relay is an in-process relay served on a loopback port (a real
// http.Server, so header limits and its error log are the production ones)
// in front of a fake Graph API.
type relay struct {
	app   *app.App
	url   string
	graph *capitest.Server
	logs  *syncBuffer // every log line, at debug level
	acked *ackLog
}

type options struct {
	dataDir      string
	graphTimeout time.Duration
	tune         func(a *app.App) // before Start
}

func newRelay(t *testing.T, o options) *relay {
	t.Helper()
	graph := capitest.New()
	t.Cleanup(graph.Close)
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	if o.graphTimeout == 0 {
		o.graphTimeout = 2 * time.Second
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := config.Config{DataDir: o.dataDir, GraphURL: graph.URL, BatchLinger: 20 * time.Millisecond,
		GraphTimeout: o.graphTimeout, Demo: false, Addr: "127.0.0.1:0"}
	a, err := app.New(t.Context(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	a.Dispatcher.BackoffBase = 20 * time.Millisecond
	a.Dispatcher.BackoffMax = 200 * time.Millisecond
	if o.tune != nil {
		o.tune(a)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	go a.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return &relay{app: a, url: "http://" + ln.Addr().String(), graph: graph, logs: logs, acked: newAckLog()}
}

func (r *relay) addSite(t *testing.T, pixel, token string) (*store.Site, string) {
	t.Helper()
	s, key, err := app.CreateSite(context.Background(), r.app.Store, sitecfg.Update{
		Name: new("shop " + pixel), Domains: &[]string{"shop.example.com"}, PixelID: &pixel, AccessToken: &token})
	if err != nil {
		t.Fatal(err)
	}
	return s, key
}

// serverEvent is a valid website purchase with raw user_data.
func serverEvent(id string, now time.Time) map[string]any {
	return map[string]any{
		"event_name": "Purchase", "event_time": now.Unix(), "event_id": id, "action_source": "website",
		"event_source_url": "https://shop.example.com/checkout",
		"user_data": map[string]any{"em": "john_smith@gmail.com", "ph": "+1 (650) 555-1212", "fn": "Mary",
			"client_ip_address": "2001:db8::1", "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
			"fbp": "fb.1.1596403881668.1116446470"},
		"custom_data": map[string]any{"value": 42.5, "currency": "USD"},
	}
}

// ackLog remembers which event ids a 2xx acknowledged.
type ackLog struct {
	mu    sync.Mutex
	ids   map[string]bool
	codes map[int]int
}

func newAckLog() *ackLog { return &ackLog{ids: map[string]bool{}, codes: map[int]int{}} }

func (l *ackLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.ids))
	for id := range l.ids {
		out = append(out, id)
	}
	return out
}

func (l *ackLog) statuses() map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int]int{}
	for k, v := range l.codes {
		out[k] = v
	}
	return out
}

// post sends events to /v1/events and records the acknowledged ids. It
// returns the status; a transport error is status 0.
func (r *relay) post(t *testing.T, key string, events ...map[string]any) int {
	t.Helper()
	body, err := json.Marshal(map[string]any{"data": events})
	if err != nil {
		t.Fatal(err)
	}
	code, out := r.postRaw(key, "application/json", body)
	r.acked.mu.Lock()
	defer r.acked.mu.Unlock()
	r.acked.codes[code]++
	if code/100 != 2 {
		return code
	}
	var resp struct {
		Results []struct {
			EventID string       `json:"event_id"`
			Status  store.Status `json:"status"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Errorf("2xx answer is not JSON: %s", out)
		return code
	}
	for _, res := range resp.Results {
		if res.Status == store.Accepted || res.Status == store.Duplicate {
			r.acked.ids[res.EventID] = true
		}
	}
	return code
}

func (r *relay) postRaw(key, ctype string, body []byte) (int, []byte) {
	req, _ := http.NewRequest("POST", r.url+"/v1/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// load posts batches of perReq events from clients goroutines until stop
// is closed or each client sent maxReq requests. Ids are prefix-c-i-j.
func (r *relay) load(t *testing.T, key, prefix string, clients, perReq, maxReq int, stop <-chan struct{}) {
	t.Helper()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range maxReq {
				select {
				case <-stop:
					return
				default:
				}
				evs := make([]map[string]any, perReq)
				now := time.Now()
				for j := range evs {
					evs[j] = serverEvent(fmt.Sprintf("%s-%d-%d-%d", prefix, c, i, j), now)
				}
				code := r.post(t, key, evs...)
				if code != 200 && code != 503 {
					t.Errorf("POST /v1/events = %d, want 200 (or 503 when storage fails)", code)
				}
			}
		}()
	}
	wg.Wait()
}

// assertNoLoss waits until every acknowledged event has reached the fake
// Graph API for pixel.
func (r *relay) assertNoLoss(t *testing.T, pixel string, within time.Duration) {
	t.Helper()
	ids := r.acked.list()
	if len(ids) == 0 {
		t.Fatal("no event was acknowledged; the test proves nothing")
	}
	deadline := time.Now().Add(within)
	for {
		got := r.graph.EventsByID(pixel)
		var missing []string
		for _, id := range ids {
			if len(got[id]) == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			t.Logf("%d acknowledged events all delivered; statuses %v; graph %+v", len(ids), r.acked.statuses(), r.graph.Stats())
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events never reached the Graph API (first: %s); graph %+v",
				len(missing), len(ids), missing[0], r.graph.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a log sink the relay's goroutines may share.
type syncBuffer = sharedtest.Buffer

// serve starts a, serves it on a loopback port until cleanup and returns
// its base URL.
func serve(t *testing.T, a *app.App) string {
	t.Helper()
	a.Dispatcher.BackoffBase = 20 * time.Millisecond
	a.Dispatcher.BackoffMax = 200 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	go a.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

// beacon posts one browser PageView to /e as the tag does and returns the
// status (0 for a transport error). A 2xx records the event as
// acknowledged.
func (r *relay) beacon(t *testing.T, siteKey, id string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"v": 1, "vid": "0123456789abcdef0123", "consent": "granted",
		"events": []any{map[string]any{"type": "event", "name": "PageView", "id": id, "url": "https://shop.example.com/p"}}})
	req, _ := http.NewRequest("POST", r.url+"/e?site="+siteKey, bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("Origin", "https://shop.example.com")
	req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r.acked.mu.Lock()
	defer r.acked.mu.Unlock()
	r.acked.codes[resp.StatusCode]++
	if resp.StatusCode/100 == 2 {
		r.acked.ids[id] = true
	}
	return resp.StatusCode
}
