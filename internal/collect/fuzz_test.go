package collect_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/capirelay/capirelay/internal/collect"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

const fuzzAPIKey = "crk_fuzz-api-key-0123456789abcdefghijklmnopq"

// fuzzBundle is a real SQLite store with one site, shared by every input
// of a fuzz run (opening a database per input would be the whole cost).
type fuzzBundle struct {
	st   *sqlite.DB
	site *store.Site
}

func newFuzzBundle(f *testing.F) *fuzzBundle {
	f.Helper()
	st := storetest.OpenSQLite(f)
	site := &store.Site{Key: "sfuzzsite", Name: "fuzz", Domains: []string{"shop.example.com"},
		APIKeyHash: collect.HashAPIKey(fuzzAPIKey), PartialLeads: true}
	if err := st.CreateSite(context.Background(), site); err != nil {
		f.Fatal(err)
	}
	return &fuzzBundle{st: st, site: site}
}

func (b *fuzzBundle) depth(t *testing.T) int {
	d, err := b.st.Depth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d[b.site.Key]
}

// within runs serve and fails the input if it takes more than 10 s: the
// fuzzer has no hang detection of its own.
func within(t *testing.T, body []byte, serve func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("request hung for 10 s on %q\n%s", body, buf)
	}
}

func seedEvent(id string) map[string]any {
	return map[string]any{
		"event_name": "Purchase", "event_time": time.Now().Unix(), "event_id": id, "action_source": "website",
		"event_source_url": "https://shop.example.com/checkout",
		"user_data": map[string]any{"em": "John_Smith@gmail.com", "ph": "+1 (650) 555-1212", "fn": "Mary",
			"client_ip_address": "2001:db8::1", "client_user_agent": "Mozilla/5.0 (X11)", "fbp": "fb.1.1596403881668.1116446470"},
		"custom_data": map[string]any{"value": 42.5, "currency": "USD", "contents": []any{map[string]any{"id": "a", "quantity": 1}}},
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzServerEvents posts arbitrary bodies to /v1/events with a valid api
// key. Invariants: no panic; no 5xx other than 503; a 2xx stores exactly
// the events it calls accepted, and anything else stores nothing.
func FuzzServerEvents(f *testing.F) {
	b := newFuzzBundle(f)
	srv := &collect.Server{Sites: b.st, Pipeline: pipeline.New(b.st)}
	f.Add([]byte(mustJSON(map[string]any{"data": []any{seedEvent("s1")}})), "application/json")
	f.Add([]byte(mustJSON(map[string]any{"data": []any{seedEvent("s2"), seedEvent("s2"), map[string]any{"event_name": "x"}}, "test_event_code": "TEST1"})), "application/json")
	f.Add([]byte(`data=`+string(mustJSON([]any{seedEvent("s3")}))+`&test_event_code=T`), "application/x-www-form-urlencoded")
	f.Add([]byte(`{"data":[{"event_name":`), "application/json")
	f.Add([]byte(`{"data":{"event_name":"x"}}`), "application/json")
	f.Add([]byte(`{"data":[{"event_name":"Lead","event_time":1e3,"user_data":{"em":["a@b.c",7]}}]}`), "")
	f.Add([]byte(`{"data":[{"event_name":"Lead","event_time":"1","action_source":"email","user_data":{"external_id":"x"}}]} trailing`), "text/plain")
	f.Add([]byte("--X\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n[]\r\n--X--\r\n"), "multipart/form-data; boundary=X")
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		before := b.depth(t)
		req := httptest.NewRequest("POST", "/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+fuzzAPIKey)
		req.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		within(t, body, func() { srv.ServeEvents(w, req) })
		after := b.depth(t)
		code := w.Code
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %q: %s", code, body, w.Body.Bytes())
		}
		if code/100 != 2 {
			if after != before {
				t.Fatalf("status %d but %d events were stored: %s", code, after-before, w.Body.Bytes())
			}
			return
		}
		var resp collect.Response
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("2xx answer is not a Response: %v: %s", err, w.Body.Bytes())
		}
		accepted := 0
		for _, r := range resp.Results {
			if r.Status == pipeline.Accepted {
				accepted++
			}
		}
		if after-before != accepted {
			t.Fatalf("answered %d accepted but stored %d: %s", accepted, after-before, w.Body.Bytes())
		}
	})
}

// FuzzBrowserEvents posts arbitrary bodies to /e from an allowed origin.
// Invariants: no panic; no 5xx other than 503; a refusal stores nothing.
func FuzzBrowserEvents(f *testing.F) {
	b := newFuzzBundle(f)
	h := &collect.Browser{Sites: b.st, Pipeline: pipeline.New(b.st), PerIPRate: rate.Inf}
	page := map[string]any{"v": 1, "vid": "0123456789abcdef0123", "fbp": "fb.1.1596403881668.1116446470", "fbc": "", "consent": "granted",
		"lang": "en-US", "events": []any{map[string]any{"type": "event", "name": "PageView", "id": "p1", "url": "https://shop.example.com/?fbclid=IwAR2F4", "ref": ""}}}
	f.Add(mustJSON(page), "text/plain;charset=UTF-8")
	f.Add(mustJSON(map[string]any{"v": 1, "vid": "vvvvvvvvvvvvvvvvvvvv", "events": []any{
		map[string]any{"type": "capture", "form": "f1", "fields": map[string]any{"em": "a@b.co", "ph": "650 555 1212"}, "url": "https://shop.example.com/"},
		map[string]any{"type": "event", "name": "Lead", "id": "l1", "form": "f1", "submit": true, "user": map[string]any{"em": "a@b.co"}, "data": map[string]any{"value": 1, "currency": "EUR"}},
		map[string]any{"type": "consent", "state": "denied", "prev": "x"},
	}}), "application/json")
	f.Add([]byte(`{"v":1,"events":[{"name":"Purchase","data":{"value":"x"}}]}`), "text/plain")
	f.Add([]byte(`{"events":[`), "text/plain")
	f.Add([]byte(``), "")
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		before := b.depth(t)
		req := httptest.NewRequest("POST", "/e?site="+b.site.Key, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Origin", "https://shop.example.com")
		req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15")
		req.RemoteAddr = "203.0.113.9:1234"
		w := httptest.NewRecorder()
		within(t, body, func() { h.ServeHTTP(w, req) })
		code := w.Code
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %q: %s", code, body, w.Body.Bytes())
		}
		if code/100 != 2 && b.depth(t) != before {
			t.Fatalf("status %d but events were stored: %s", code, w.Body.Bytes())
		}
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" && got != "https://shop.example.com" {
			t.Fatalf("Access-Control-Allow-Origin = %q, want the page origin exactly", got)
		}
	})
}
