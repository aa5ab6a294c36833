package main

import (
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/bench/loadgen"
	"github.com/capirelay/capirelay/bench/relay"
)

func fakePhase(mix string, events, delivered int64) *phase {
	h := &loadgen.Histogram{}
	h.Record(10 * time.Millisecond)
	return &phase{res: &loadgen.Result{Mode: loadgen.ModeServer, Mix: mix, Elapsed: 10 * time.Second, Requests: events / 100,
		Events: events, Sent: events, Latency: h, Status: map[int]int64{200: events / 100}},
		relayCPU: time.Duration(events) * 20 * time.Microsecond, delivered: delivered}
}

// TestReportRealisticFirst: the realistic figures come first, the best
// case after under its own heading, and the verdicts follow the targets.
func TestReportRealisticFirst(t *testing.T) {
	rep := &report{opts: options{duration: 10 * time.Second, returning: 0.1},
		ingest:         fakePhase(loadgen.MixRealistic, 300_000, 0),
		identityOffErr: &relay.SiteSetError{Args: []string{"--identity", "off"}, Output: "usage…\ncapirelay: flag provided but not defined: -identity"},
		delivery:       fakePhase(loadgen.MixRealistic, 100_000, 95_000),
		ingestBest:     fakePhase(loadgen.MixBestCase, 500_000, 0),
		profile:        &profiled{file: "x.pprof", res: fakePhase(loadgen.MixRealistic, 1000, 0).res, split: share{total: 10 * time.Second, relay: 8 * time.Second, identity: 2 * time.Second}},
		peakRSS:        100_000_000, started: time.Now(), finished: time.Now()}
	rep.ingest.learnDropped, rep.ingest.learnOK = 279_000, true
	md := rep.markdown()
	realistic, best := strings.Index(md, "## Realistic traffic"), strings.Index(md, "## Best case (repeated customers)")
	if realistic < 0 || best < realistic {
		t.Fatalf("realistic section at %d, best case at %d:\n%s", realistic, best, md)
	}
	for _, want := range []string{
		"| `/v1/events` events/s to durable ack (64 clients × 100 events) | 30000 events/s",
		"; identity learning dropped the observations of 93 % of the events (capirelay_identity_learn_dropped_total: its writer was behind) | ≥ 40000 | **missed** |",
		"not available: this binary refuses `site set --identity off` (capirelay site set --identity off: capirelay: flag provided but not defined: -identity)",
		"95000 of 100000 (95.0 %)",
		"| ≥ 90 % | met |",
		"| 25.0 % | ≤ 15 % | **missed** |",
		"| `/v1/events` events/s to durable ack | 50000 events/s",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "50000 events/s") < best {
		t.Error("the best-case figure appears before its section")
	}
}

// TestReportNamesGoEnv: the setup says whether serve ran with its own
// heap limit and GC target or with GOMEMLIMIT/GOGC from the environment,
// which the report's figures depend on.
func TestReportNamesGoEnv(t *testing.T) {
	env := map[string]string{"GOMEMLIMIT": "104MiB", "GOGC": "200", "HOME": "/root"}
	got := goEnv(func(k string) string { return env[k] })
	if strings.Join(got, " ") != "GOMEMLIMIT=104MiB GOGC=200" {
		t.Fatalf("goEnv = %q", got)
	}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "`serve`'s own soft heap limit and GOGC (`GOMEMLIMIT` and `GOGC` unset"},
		{got, "`GOMEMLIMIT=104MiB`, `GOGC=200` from the environment, in place of `serve`'s own settings"},
	} {
		var b strings.Builder
		(&report{goEnv: tc.env}).setupSection(&b)
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("setup with %q lacks %q:\n%s", tc.env, tc.want, b.String())
		}
	}
}
