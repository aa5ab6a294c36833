package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// BenchEnqueue measures ingest: 64 goroutines each enqueue distinct events,
// 100 per call as the collector does under load, and one per call as the
// tag's beacons arrive, and reports events/s.
func BenchEnqueue(b *testing.B, s store.Store) {
	var seq atomic.Int64 // the store outlives each sub-benchmark's rounds
	b.Run("100", func(b *testing.B) { benchEnqueue(b, s, &seq, 100) })
	// The tag's shape: one event per request.
	b.Run("1", func(b *testing.B) { benchEnqueue(b, s, &seq, 1) })
}

func benchEnqueue(b *testing.B, s store.Store, seq *atomic.Int64, perCall int) {
	const goroutines = 64
	payload := benchPayload()
	b.SetParallelism((goroutines + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		evs := make([]store.NewEvent, perCall)
		for pb.Next() {
			base := seq.Add(int64(perCall)) - int64(perCall) // ids base+0 … base+perCall-1 are ours
			for i := range evs {
				evs[i] = store.NewEvent{SiteKey: "bench", EventName: "PageView", EventID: fmt.Sprint("e", base+int64(i)),
					EventTime: start, Payload: payload, VisitorID: "v", Source: "browser"}
			}
			res, err := s.Enqueue(context.Background(), evs)
			if err != nil {
				b.Error(err)
				return
			}
			if res[0].Status != store.Accepted {
				b.Errorf("status %q", res[0].Status)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*perCall)/time.Since(start).Seconds(), "events/s")
}

// BenchClaimComplete measures dispatch bookkeeping: claim a batch of 1000
// and mark it delivered. Filling the queue is not timed.
func BenchClaimComplete(b *testing.B, s store.Store) { benchClaimComplete(b, s, nil) }

// BenchClaimCompleteReopened is BenchClaimComplete with the store reopened
// between filling the queue and claiming, outside the timer: reopen closes
// s and returns the store opened again. The batch is then only in the
// store's files, as when a dispatcher lags behind ingest.
func BenchClaimCompleteReopened(b *testing.B, s store.Store, reopen func(store.Store) store.Store) {
	benchClaimComplete(b, s, reopen)
}

func benchClaimComplete(b *testing.B, s store.Store, reopen func(store.Store) store.Store) {
	const batch = 1000
	ctx := context.Background()
	payload := benchPayload()
	var seq int
	evs := make([]store.NewEvent, 100)
	outs := make([]store.Outcome, 0, batch)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for range batch / len(evs) {
			for i := range evs {
				seq++
				evs[i] = store.NewEvent{SiteKey: "bench", EventName: "Purchase", EventID: fmt.Sprint("e", seq),
					EventTime: time.Now(), Payload: payload, Source: "server"}
			}
			if _, err := s.Enqueue(ctx, evs); err != nil {
				b.Fatal(err)
			}
		}
		if reopen != nil {
			s = reopen(s)
		}
		b.StartTimer()
		now := time.Now()
		items, err := s.Claim(ctx, "bench", "bench-owner", batch, now, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		if len(items) != batch || !bytes.Equal(items[0].Payload, payload) {
			b.Fatalf("claimed %d items, the first with payload %.40q", len(items), items[0].Payload)
		}
		outs = outs[:0]
		for _, it := range items {
			outs = append(outs, store.Outcome{ID: it.ID, Kind: store.OutcomeDelivered, TraceID: "AbCdEf"})
		}
		if err := s.Complete(ctx, "bench-owner", outs, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// benchPayload is a typical browser PageView as sent to Meta (~600 bytes).
func benchPayload() []byte {
	return []byte(`{"event_name":"PageView","event_time":1767225600,"event_id":"2b7c1d0e-4c1f-4d6e-9a55-0f3c8e1a9b21",` +
		`"action_source":"website","event_source_url":"https://shop.example.com/products/blue-widget?utm_source=news",` +
		`"user_data":{"client_ip_address":"203.0.113.77","client_user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) ` +
		`AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15","fbp":"fb.1.1767225600000.1234567890",` +
		`"fbc":"fb.1.1767225600000.IwAR2xyz","external_id":["5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"],` +
		`"em":["b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"]},"custom_data":{"currency":"EUR","value":19.9}}`)
}

// BenchLearnIdentities measures identity learning on unique-customer
// traffic: batches of 1000 new people (every identity key a SHA-256 hash,
// in no order; a browser's fbp, fbc, IP and user agent), learned into a
// store that already holds prefill others, as the identity writer does
// under load. It reports µs of store time and, where the system counts
// them, bytes written per identity learned.
func BenchLearnIdentities(b *testing.B, s store.Store, prefill int) {
	const batch = 1000
	ctx := context.Background()
	var seq int
	next := func() []*store.Identity {
		ids := make([]*store.Identity, batch)
		for i := range ids {
			seq++
			// Keys as real traffic has them: SHA-256 hashes, in no order,
			// so each new person lands on its own pages of every keyed
			// tree (increasing keys would only ever append).
			h := func(k int) string {
				sum := sha256.Sum256(fmt.Appendf(nil, "%d/%d", seq, k))
				return hex.EncodeToString(sum[:])
			}
			id := &store.Identity{SiteKey: "bench", VisitorID: "x:" + h(-1), Hashes: map[string][]string{},
				Fbp: fmt.Sprintf("fb.1.1733500000000.%d", 1000000000+seq), Fbc: fmt.Sprintf("fb.1.1733500000000.IwAR%016x", seq),
				IP:        fmt.Sprintf("203.%d.%d.%d", seq>>16&255, seq>>8&255, seq&255),
				UA:        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
				LikelyNew: true}
			for k, key := range store.IdentityKeys {
				id.Hashes[key] = []string{h(k)}
			}
			ids[i] = id
		}
		return ids
	}
	for seq < prefill {
		if err := s.LearnIdentities(ctx, next()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var spent time.Duration
	w0, wOK := written()
	for range b.N {
		ids := next()
		start := time.Now()
		if err := s.LearnIdentities(ctx, ids); err != nil {
			b.Fatal(err)
		}
		spent += time.Since(start)
	}
	b.ReportMetric(float64(spent.Microseconds())/float64(b.N*batch), "µs/identity")
	if w1, ok := written(); wOK && ok {
		// What the store handed the OS to write (WAL frames, checkpoints):
		// random-keyed inserts cost whole pages, and the disk pays for them.
		b.ReportMetric(float64(w1-w0)/float64(b.N*batch), "B-written/identity")
	}
}

// written is the bytes this process has passed to write system calls
// (wchar of /proc/self/io), where the system has it.
func written() (int64, bool) {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
