package collect

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/capirelay/capirelay/bench/loadgen"
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

// benchKey is the API key of benchServer's site.
const benchKey = APIKeyPrefix + "bench"

// benchServer is a server of one site (benchKey) with identity stitching
// (running until ctx ends) and a store that accepts at once.
func benchServer(ctx context.Context) (*Server, *identity.Service) {
	site := &store.Site{Key: "sbench", APIKeyHash: HashAPIKey(benchKey), DefaultRegion: "US"}
	ids := identity.New(&identitytest.Mem{}, slog.New(slog.DiscardHandler))
	go ids.Run(ctx)
	p := pipeline.New(serverBenchOutbox{})
	p.Enricher, p.Observer = ids, ids
	p.Gate = pipeline.NewGate(2)
	return &Server{Sites: serverBenchSites{site: site}, Pipeline: p, Logger: slog.New(slog.DiscardHandler)}, ids
}

// BenchmarkServeEvents measures POST /v1/events in process, one request of
// 100 returning customers' raw Purchases at a time, with identity
// stitching and a store that accepts at once. One op is one event, so
// ns/op and allocs/op are per event.
func BenchmarkServeEvents(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, ids := benchServer(ctx)
	const per = 100
	const marker = "bench-000-000000000000"
	body := loadgen.ServerBody(marker, per)
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
		r.Header.Set("Authorization", "Bearer "+benchKey)
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

// BenchmarkServeEventsRealistic is BenchmarkServeEvents with make bench's
// realistic body: every request 100 new customers (none returning), written
// outside the timer, so neither identity's cache nor the hash memo can
// replay an earlier request. One op is one event.
func BenchmarkServeEventsRealistic(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := benchServer(ctx)
	const per = 100
	b.ReportAllocs()
	for i := 0; i < b.N; i += per {
		b.StopTimer()
		body := loadgen.RealisticServerBody(fmt.Sprintf("r%d", i), uint64(i), per)
		r := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+benchKey)
		w := httptest.NewRecorder()
		b.StartTimer()
		s.ServeEvents(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
