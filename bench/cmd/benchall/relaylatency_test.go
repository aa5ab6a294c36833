package main

import (
	"strings"
	"testing"
	"time"
)

func TestRelayLatencyQuantiles(t *testing.T) {
	const before = `# HELP capirelay_ingest_request_seconds x
capirelay_ingest_request_seconds_bucket{endpoint="e",le="0.001"} 10
capirelay_ingest_request_seconds_bucket{endpoint="e",le="0.002"} 10
capirelay_ingest_request_seconds_bucket{endpoint="e",le="0.004"} 10
capirelay_ingest_request_seconds_bucket{endpoint="e",le="+Inf"} 10
capirelay_ingest_request_seconds_bucket{endpoint="events",le="0.001"} 5
capirelay_ingest_request_seconds_bucket{endpoint="events",le="+Inf"} 5
`
	const after = `capirelay_ingest_request_seconds_bucket{endpoint="e",le="0.001"} 60
capirelay_ingest_request_seconds_bucket{endpoint="e",le="0.002"} 108
capirelay_ingest_request_seconds_bucket{endpoint="e",le="0.004"} 109
capirelay_ingest_request_seconds_bucket{endpoint="e",le="+Inf"} 110
capirelay_ingest_request_seconds_sum{endpoint="e"} 1
capirelay_ingest_request_seconds_bucket{endpoint="events",le="0.001"} 5
capirelay_ingest_request_seconds_bucket{endpoint="events",le="+Inf"} 5
`
	b0, err := parseLatency(strings.NewReader(before), "e")
	if err != nil {
		t.Fatal(err)
	}
	b1, err := parseLatency(strings.NewReader(after), "e")
	if err != nil {
		t.Fatal(err)
	}
	// 100 requests between the snapshots: 50 under 1 ms, 48 more under
	// 2 ms, one under 4 ms, one above.
	for _, c := range []struct {
		q    float64
		want time.Duration
		ok   bool
	}{{0.5, time.Millisecond, true}, {0.98, 2 * time.Millisecond, true}, {0.99, 4 * time.Millisecond, true}, {0.999, 0, false}} {
		got, ok := b1.quantileSince(b0, c.q)
		if got != c.want || ok != c.ok {
			t.Errorf("q%.3f = %v %v, want %v %v", c.q, got, ok, c.want, c.ok)
		}
	}
	ev, _ := parseLatency(strings.NewReader(after), "events")
	if _, ok := ev.quantileSince(ev, 0.5); ok {
		t.Error("no requests between equal snapshots, yet a quantile")
	}
	if _, err := parseLatency(strings.NewReader(after), "graph"); err == nil {
		t.Error("no buckets for graph, yet no error")
	}
}
