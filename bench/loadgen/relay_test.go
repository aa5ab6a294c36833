package loadgen_test

import (
	"context"
	"testing"
	"time"

	"github.com/capirelay/capirelay/bench/loadgen"
	"github.com/capirelay/capirelay/bench/relay"
)

// TestRealisticLoadAcceptedByRelay sends the realistic mix to a real
// relay (SQLite on a temporary directory): every /v1/events event is
// acknowledged, none refused, and no /e beacon is dropped as a bot.
func TestRealisticLoadAcceptedByRelay(t *testing.T) {
	ctx := context.Background()
	sink, err := relay.NewSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	rel, err := relay.StartInProcess(ctx, relay.Options{GraphURL: sink.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer rel.Close()
	var sent int64
	for _, mode := range []string{loadgen.ModeServer, loadgen.ModeBrowser} {
		res, err := loadgen.Run(ctx, loadgen.Config{URL: rel.URL, APIKey: rel.APIKey, Site: rel.SiteKey, Mode: mode,
			Concurrency: 2, MaxRequests: 20, EventsPerRequest: 100, Duration: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if res.Failures != 0 || res.Requests != 20 || res.Events != res.Sent {
			t.Fatalf("%s: %s (first error: %s)", mode, res, res.FirstError)
		}
		sent += res.Sent
	}
	m, err := relay.Metrics(ctx, rel.URL)
	if err != nil {
		t.Fatal(err)
	}
	if m["capirelay_bot_events_dropped_total"] != 0 {
		t.Errorf("%v beacons dropped as bots", m["capirelay_bot_events_dropped_total"])
	}
	if got := m["capirelay_events_accepted_total"]; got != float64(sent) {
		t.Errorf("relay accepted %v events, want %d", got, sent)
	}
}
