package relay

import (
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	const text = `# HELP capirelay_identity_cache_entries x
# TYPE capirelay_identity_cache_entries gauge
capirelay_identity_cache_entries 1234
capirelay_events_accepted_total{site="a"} 10
capirelay_events_accepted_total{site="b"} 5
capirelay_ingest_request_seconds_bucket{endpoint="e",le="+Inf"} 7 1700000000000
go_goroutines 42
`
	m, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"capirelay_identity_cache_entries": 1234, "capirelay_events_accepted_total": 15,
		"capirelay_ingest_request_seconds_bucket": 7, "go_goroutines": 42} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if _, err := ParseMetrics(strings.NewReader("broken{x=\"1\" 3\n")); err == nil {
		t.Error("a broken line parsed")
	}
}
