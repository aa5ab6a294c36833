package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/identity"
	"github.com/capirelay/capirelay/internal/identity/identitytest"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// serverBenchOutbox accepts every event at once: the store is measured on
// its own.
type serverBenchOutbox struct{ store.Outbox }

func (serverBenchOutbox) Enqueue(_ context.Context, evs []store.NewEvent) ([]store.EnqueueResult, error) {
	out := make([]store.EnqueueResult, len(evs))
	for i := range out {
		out[i] = store.EnqueueResult{Status: store.Accepted, ID: int64(i + 1)}
	}
	return out, nil
}

// serverBenchSites knows one site.
type serverBenchSites struct {
	store.Sites
	site *store.Site
}

func (s serverBenchSites) SiteByAPIKeyHash(_ context.Context, hash string) (*store.Site, error) {
	if hash != s.site.APIKeyHash {
		return nil, store.ErrNotFound
	}
	return s.site, nil
}

// serverBenchBody is what bench/cmd/load sends to /v1/events: n fully
// populated website purchases with raw user_data, ids marker-<j>.
func serverBenchBody(marker string, n int) []byte {
	now := time.Now().Unix()
	evs := make([]map[string]any, n)
	for j := range evs {
		id := fmt.Sprintf("%s-%d", marker, j)
		evs[j] = map[string]any{
			"event_name": "Purchase", "event_time": now, "event_id": id, "action_source": "website",
			"event_source_url": "https://shop.example.com/checkout?step=3",
			"user_data": map[string]any{"em": fmt.Sprintf("mary.smith%d@Example.com", j), "ph": fmt.Sprintf("(650) 555-%04d", j),
				"fn": "Mary", "ln": "Smith", "ct": "Menlo Park", "st": "California", "zp": "94025-1234", "country": "US",
				"db": "1990-02-16", "ge": "female", "external_id": fmt.Sprintf("cust-%d", j), "client_ip_address": "203.0.113.7",
				"client_user_agent": testUA, "fbp": "fb.1.1596403881668.1116446470",
				"fbc": "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB"},
			"custom_data": map[string]any{"value": 49.9, "currency": "USD", "content_ids": []string{"sku-1", "sku-2"}, "num_items": 2},
		}
	}
	b, err := json.Marshal(map[string]any{"data": evs})
	if err != nil {
		panic("BUG: encode bench body: " + err.Error())
	}
	return b
}

// BenchmarkServeEvents measures POST /v1/events in process, one request of
// 100 returning customers' raw Purchases at a time, with identity
// stitching and a store that accepts at once. One op is one event, so
// ns/op and allocs/op are per event.
func BenchmarkServeEvents(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const key = APIKeyPrefix + "bench"
	site := &store.Site{Key: "sbench", APIKeyHash: HashAPIKey(key), DefaultRegion: "US"}
	ids := identity.New(&identitytest.Mem{}, slog.New(slog.DiscardHandler))
	go ids.Run(ctx)
	p := pipeline.New(serverBenchOutbox{})
	p.Enricher, p.Observer = ids, ids
	p.Gate = pipeline.NewGate(2)
	s := &Server{Sites: serverBenchSites{site: site}, Pipeline: p, Logger: slog.New(slog.DiscardHandler)}
	const per = 100
	const marker = "bench-000-000000000000"
	body := serverBenchBody(marker, per)
	var at []int
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(marker))
		if j < 0 {
			break
		}
		at = append(at, i+j+len("bench-000-"))
		i += j + len(marker)
	}
	seq := 0
	post := func() {
		seq++
		digits := fmt.Sprintf("%012d", seq)
		for _, a := range at {
			copy(body[a:], digits)
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		s.ServeEvents(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	post() // learn the customers
	if err := ids.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += per {
		post()
	}
}
