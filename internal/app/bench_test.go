package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/dispatch"
	"github.com/capirelay/capirelay/internal/sitecfg"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// benchBodies builds n request bodies of per events each, every event a
// fully populated website Purchase with raw user_data.
func benchBodies(n, per int, now time.Time) [][]byte {
	bodies := make([][]byte, n)
	for i := range bodies {
		evs := make([]map[string]any, per)
		for j := range evs {
			id := fmt.Sprintf("b%d-%d-%d", now.UnixNano(), i, j)
			evs[j] = map[string]any{
				"event_name": "Purchase", "event_time": now.Unix(), "event_id": id, "action_source": "website",
				"event_source_url": "https://shop.example.com/checkout?step=3",
				"user_data": map[string]any{"em": id + "@Example.com", "ph": fmt.Sprintf("(650) %03d-%04d", 200+i%700, j), "fn": "Mary", "ln": "Smith",
					"ct": "Menlo Park", "st": "California", "zp": "94025-1234", "country": "US", "db": "1990-02-16", "ge": "female",
					"external_id": "cust-" + id, "client_ip_address": "203.0.113.7", "client_user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)",
					"fbp": "fb.1.1596403881668.1116446470", "fbc": "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB"},
				"custom_data": map[string]any{"value": 49.9, "currency": "USD", "content_ids": []string{"sku-1", "sku-2"}, "num_items": 2},
			}
		}
		bodies[i], _ = json.Marshal(map[string]any{"data": evs})
	}
	return bodies
}

// BenchmarkIngestHTTP measures POST /v1/events to durable acknowledgement:
// 64 concurrent clients, 100 events per request, a real SQLite file
// (WAL, synchronous=FULL). One op is one request.
func BenchmarkIngestHTTP(b *testing.B) {
	for _, st := range benchStores(b) {
		b.Run(st.name, func(b *testing.B) { benchIngest(b, st.url(b)) })
	}
}

func benchIngest(b *testing.B, dbURL string) {
	cfg := config.Config{DataDir: b.TempDir(), GraphURL: "http://127.0.0.1:1", Demo: false, DatabaseURL: dbURL}
	a, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	_, key, err := CreateSite(context.Background(), a.Store, sitecfg.Update{Name: new("bench"), Domains: &[]string{"shop.example.com"}})
	if err != nil {
		b.Fatal(err)
	}
	// Identity learning runs beside ingest in serve; delivery is measured
	// apart (BenchmarkDispatch).
	ictx, stopIdentity := context.WithCancel(context.Background())
	defer stopIdentity()
	go a.Identity.Run(ictx)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	client := &http.Client{Transport: tr}
	now := time.Now()
	bodies := benchBodies(256, 100, now)
	prefix := []byte(fmt.Sprintf("b%d-", now.UnixNano()))
	var next atomic.Int64
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			body := bodies[i%int64(len(bodies))]
			if i >= int64(len(bodies)) { // new people, new ids: no duplicates
				body = bytes.ReplaceAll(body, prefix, []byte(fmt.Sprintf("r%d-", i)))
			}
			req, _ := http.NewRequest("POST", srv.URL+"/v1/events", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "events/s")
}

// countingDest accepts every batch, like a Graph API that is never slow.
type countingDest struct{ n atomic.Int64 }

func (c *countingDest) Send(ctx context.Context, site *store.Site, bt *dispatch.Batch) (*capi.Response, error) {
	c.n.Add(int64(len(bt.Events)))
	return &capi.Response{EventsReceived: len(bt.Events), FbtraceID: "t"}, nil
}

// BenchmarkDispatch measures claim → send → record outcome from a real
// SQLite outbox to a local destination, in batches of 1000. One op is one
// event.
func BenchmarkDispatch(b *testing.B) {
	for _, st := range benchStores(b) {
		b.Run(st.name, func(b *testing.B) { benchDispatch(b, st.url(b)) })
	}
}

func benchDispatch(b *testing.B, dbURL string) {
	cfg := config.Config{DataDir: b.TempDir(), GraphURL: "http://127.0.0.1:1", Demo: false, DatabaseURL: dbURL}
	a, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	site, _, err := CreateSite(context.Background(), a.Store, sitecfg.Update{Name: new("bench"), Domains: &[]string{"shop.example.com"}, PixelID: new("100001"), AccessToken: new("t")})
	if err != nil {
		b.Fatal(err)
	}
	payload := benchPayload()
	now := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < b.N; i += 1000 {
		evs := make([]store.NewEvent, min(1000, b.N-i))
		for j := range evs {
			evs[j] = store.NewEvent{SiteKey: site.Key, EventName: "Purchase", EventID: fmt.Sprintf("d%d", i+j), EventTime: now, Payload: payload}
		}
		if _, err := a.Store.Enqueue(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	dest := &countingDest{}
	d := &dispatch.Dispatcher{Store: a.Store, Meta: dest, Sandbox: dest, Owner: "bench"}
	d.Start(context.Background()) // sets defaults; its own loop also drains
	defer d.Stop()
	b.ResetTimer()
	start := time.Now()
	for dest.n.Load() < int64(b.N) {
		if _, err := d.RunOnce(context.Background(), site.Key); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

func benchPayload() []byte {
	ev := benchBodies(1, 1, time.Now())[0]
	var req struct{ Data []json.RawMessage }
	json.Unmarshal(ev, &req)
	return req.Data[0]
}

type benchStore struct {
	name string
	url  func(b *testing.B) string
}

// benchStores is SQLite, plus PostgreSQL when CAPIRELAY_TEST_DATABASE_URL
// names a server (each run gets a fresh database).
func benchStores(b *testing.B) []benchStore {
	out := []benchStore{{"sqlite", func(*testing.B) string { return "" }}}
	if os.Getenv(storetest.PostgresEnv) == "" {
		return out
	}
	return append(out, benchStore{"postgres", func(b *testing.B) string { return storetest.PostgresDatabase(b) }})
}
