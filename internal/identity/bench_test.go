package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/identity/identitytest"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// memOutbox accepts everything.
type memOutbox struct{ store.Outbox }

func (memOutbox) Enqueue(ctx context.Context, evs []store.NewEvent) ([]store.EnqueueResult, error) {
	out := make([]store.EnqueueResult, len(evs))
	for i := range out {
		out[i] = store.EnqueueResult{Status: store.Accepted, ID: int64(i + 1)}
	}
	return out, nil
}

// BenchmarkSubmitReturning runs the pipeline with identity stitching over
// 100 returning customers' fully populated raw Purchase events (as
// bench/cmd/load sends them), stores in memory. One op is one event.
func BenchmarkSubmitReturning(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := New(&identitytest.Mem{}, slog.New(slog.DiscardHandler))
	go s.Run(ctx)
	p := pipeline.New(memOutbox{})
	p.Enricher, p.Observer = s, s
	site := &store.Site{Key: "s", DefaultRegion: "US"}
	now := time.Now()
	tmpl := make([]event.Event, 100)
	for j := range tmpl {
		tmpl[j] = event.Event{EventName: "Purchase", EventTime: event.Time(now.Unix()), EventID: fmt.Sprint("e-", j), ActionSource: "website",
			EventSourceURL: "https://shop.example.com/checkout?step=3",
			UserData: event.UserData{Em: event.List{fmt.Sprintf("mary.smith%d@Example.com", j)}, Ph: event.List{fmt.Sprintf("(650) 555-%04d", j)},
				Fn: event.List{"Mary"}, Ln: event.List{"Smith"}, Ct: event.List{"Menlo Park"}, St: event.List{"California"}, Zp: event.List{"94025-1234"},
				Country: event.List{"US"}, Db: event.List{"1990-02-16"}, Ge: event.List{"female"}, ExternalID: event.List{fmt.Sprint("cust-", j)},
				ClientIPAddress: "203.0.113.7", ClientUserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)",
				Fbp: "fb.1.1596403881668.1116446470", Fbc: "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB"},
			CustomData: json.RawMessage(`{"value":49.9,"currency":"USD","content_ids":["sku-1","sku-2"],"num_items":2}`)}
	}
	evs := make([]event.Event, len(tmpl))
	ins := make([]pipeline.Input, len(tmpl))
	submit := func() {
		copy(evs, tmpl)
		for j := range ins {
			ins[j] = pipeline.Input{Site: site, Event: &evs[j], Source: pipeline.SourceServer}
		}
		res, err := p.Submit(ctx, ins)
		if err != nil || res[0].Status != pipeline.Accepted {
			b.Fatal(err, res[0])
		}
	}
	submit() // learn them
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(tmpl) {
		submit()
	}
}

// BenchmarkSubmitUnique runs the pipeline with identity stitching over
// unique customers (every event its own em, ph, external_id and name, as
// real shop traffic is), the identities in a real SQLite file, the outbox
// in memory so that only the pipeline and identity are measured. Learning
// is included: the timer stops after Flush. One op is one event.
func BenchmarkSubmitUnique(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := benchSQLite(b)
	s := New(db, slog.New(slog.DiscardHandler))
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	p := pipeline.New(memOutbox{})
	p.Enricher, p.Observer = s, s
	site := &store.Site{Key: "s", DefaultRegion: "US"}
	now := time.Now()
	const per = 100
	evs := make([]event.Event, per)
	ins := make([]pipeline.Input, per)
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += per {
		for j := range evs {
			c := n
			if n%10 == 9 { // a returning share: an earlier customer
				c = n / 2
			}
			n++
			evs[j] = event.Event{EventName: "Purchase", EventTime: event.Time(now.Unix()), EventID: fmt.Sprint("e-", n), ActionSource: "website",
				EventSourceURL: "https://shop.example.com/checkout?step=3",
				UserData: event.UserData{Em: event.List{fmt.Sprintf("customer%d@example.com", c)}, Ph: event.List{fmt.Sprintf("+1 650 %03d %04d", 200+c/10000%800, c%10000)},
					Fn: event.List{fmt.Sprint("fn", c)}, Ln: event.List{fmt.Sprint("ln", c)}, Ct: event.List{"Menlo Park"}, St: event.List{"California"}, Zp: event.List{"94025"},
					Country: event.List{"US"}, ExternalID: event.List{fmt.Sprint("cust-", c)},
					ClientIPAddress: fmt.Sprintf("10.%d.%d.%d", c>>16&255, c>>8&255, c&255), ClientUserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)",
					Fbp: fmt.Sprint("fb.1.1596403881668.", c)},
				CustomData: json.RawMessage(`{"value":49.9,"currency":"USD"}`)}
			ins[j] = pipeline.Input{Site: site, Event: &evs[j], Source: pipeline.SourceServer}
		}
		res, err := p.Submit(ctx, ins)
		if err != nil || res[0].Status != pipeline.Accepted {
			b.Fatal(err, res[0])
		}
	}
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
