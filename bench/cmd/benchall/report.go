package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/capirelay/capirelay/bench/loadgen"
	"github.com/capirelay/capirelay/bench/machine"
)

// settled is how long the queue took to drain before a phase.
type settled struct {
	before string
	took   time.Duration
}

type report struct {
	opts              options
	machine           machine.Info
	started, finished time.Time
	loadEnd           string

	ingest, ingestHalf   *loadgen.Result
	browser, browserHalf *loadgen.Result
	browserWired         bool

	ingestHalfRelay, browserHalfRelay *relayLatency

	deliveredDuringIngest int64
	ingestWall            time.Duration
	drainBacklog          int64
	drainTime             time.Duration
	delivered, acked      int64
	peakRSS               int64
	settles               []settled

	dispatchBench    float64
	dispatchBenchErr error

	sdk    *sdkResult
	sdkErr error

	profileTop, profileTopE string
	profileErr              error
}

func (r *report) missed() bool {
	switch {
	case r.ingest == nil || r.ingest.EventsPerSec() < targetIngestEvents:
		return true
	case r.browserWired && (r.browser == nil || r.browser.RequestsPerSec() < targetBrowserReqs):
		return true
	case r.ingestHalf != nil && r.ingestHalf.Latency.Quantile(0.99) >= targetP99:
		return true
	case r.browserHalf != nil && r.browserHalf.Latency.Quantile(0.99) >= targetP99:
		return true
	}
	return r.peakRSS >= targetPeakRSS
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func msf(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

// relayLatency is the relay's own latency over a phase: upper bounds of
// the histogram buckets holding p50 and p99.
type relayLatency struct {
	p50, p99   time.Duration
	ok50, ok99 bool
}

func (l *relayLatency) String() string {
	if l == nil {
		return ""
	}
	bound := func(d time.Duration, ok bool) string {
		if !ok {
			return "over the histogram's range"
		}
		return "≤ " + msf(d)
	}
	return fmt.Sprintf("; in the relay (its capirelay_ingest_request_seconds): p50 %s, p99 %s", bound(l.p50, l.ok50), bound(l.p99, l.ok99))
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# capirelay benchmarks, %s\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	p("Produced by `make bench` (`go run ./bench/cmd/benchall -out bench/results`) in %s.\n\n", r.finished.Sub(r.started).Round(time.Second))
	p("## Machine\n\n%s- Load average at end: %s (includes this benchmark's own load)\n\n", r.machine.Markdown(), r.loadEnd)
	// The load at the end includes this benchmark's own; only the load
	// before it started says whether others competed.
	if l := load1(r.machine.LoadAvg); l > float64(r.machine.NProc)/2 {
		p("> The machine was busy before the run (1-minute load %.1f on %d CPUs): other work competed with the relay and the load generator, so these numbers are low bounds.\n\n", l, r.machine.NProc)
	}
	p("## Setup\n\n")
	p("- Relay: the real binary (`go build ./cmd/capirelay`) run as `capirelay serve` in a subprocess, SQLite in WAL mode with `synchronous=FULL` on a temporary data directory, delivering to a local Graph API sink on loopback that accepts every batch, so dispatch runs during ingest.\n")
	p("- Load: `bench/loadgen` in the benchall process on the same %d CPUs, over loopback HTTP/1.1 keep-alive; %s per measured phase after %s of warm-up; latency is request start to the complete answer.\n", r.machine.NProc, r.opts.duration, r.opts.warmup)
	p("- `/v1/events`: 64 concurrent clients, 100 fully populated website Purchase events per request (raw user_data, 15 keys), unique event ids; a 200 is sent only after the group commit is durable.\n")
	p("- `/e`: 64 concurrent clients, the tag's beacon (text/plain JSON, one PageView, consent granted, `_fbp`), a different client address per request via `X-Forwarded-For` from a trusted loopback proxy; 204 after the durable commit.\n")
	p("- Half rate: open-loop pacing at half of the targets' rates, as the issue words it (25,000 events/s, i.e. 250 requests/s of 100 events, and 7,500 /e requests/s; reports before 2026-11-29 used half of the measured maxima), on a fresh relay (same binary, new data directory, same sink) after the same warm-up: the max phases acknowledge about 1.5 million events, and more would take the dedup index past its default 2 Mi keys into its overflow table in mid-phase, which `make soak` measures instead; latency counts from each request's scheduled start, so queueing shows. The relay's own latency over the same phase (handler start to answer, from its `capirelay_ingest_request_seconds` histogram, as bucket upper bounds) is given beside it: the rest is time in the kernel, in `net/http` before the handler and in the load generator, which shares the CPUs.\n")
	p("- Between phases the relay delivers its backlog first, so each phase starts from an empty queue (dispatch still runs during every phase, delivering what that phase acknowledges):")
	for i, st := range r.settles {
		if i > 0 {
			p(";")
		}
		p(" %s before %s", st.took.Round(100*time.Millisecond), st.before)
	}
	p(".\n\n")

	p("## Results\n\n| measure | result | target | |\n|---|---|---|---|\n")
	if r.ingest != nil {
		p("| `/v1/events` events/s to durable ack (100/request) | %.0f (%.0f requests/s, p50 %s, p99 %s, failures %d) | ≥ %d | %s |\n",
			r.ingest.EventsPerSec(), r.ingest.RequestsPerSec(), msf(r.ingest.Latency.Quantile(0.5)), msf(r.ingest.Latency.Quantile(0.99)),
			r.ingest.Failures, targetIngestEvents, verdict(r.ingest.EventsPerSec() >= targetIngestEvents))
	}
	if r.browser != nil {
		p("| `/e` requests/s | %.0f (p50 %s, p99 %s, failures %d) | ≥ %d | %s |\n", r.browser.RequestsPerSec(),
			msf(r.browser.Latency.Quantile(0.5)), msf(r.browser.Latency.Quantile(0.99)), r.browser.Failures, targetBrowserReqs,
			verdict(r.browser.RequestsPerSec() >= targetBrowserReqs))
	} else {
		p("| `/e` requests/s | not measured: POST /e is not wired into the relay's routes (404) | ≥ %d | — |\n", targetBrowserReqs)
	}
	for _, h := range []struct {
		name  string
		res   *loadgen.Result
		relay *relayLatency
	}{{"`/v1/events`", r.ingestHalf, r.ingestHalfRelay}, {"`/e`", r.browserHalf, r.browserHalfRelay}} {
		if h.res == nil {
			continue
		}
		p("| %s p99 at half the target rate (%.0f requests/s paced) | p50 %s, p99 %s, p99.9 %s, max %s (achieved %.0f/s, failures %d)%s | < %s | %s |\n",
			h.name, h.res.Rate, msf(h.res.Latency.Quantile(0.5)), msf(h.res.Latency.Quantile(0.99)), msf(h.res.Latency.Quantile(0.999)),
			msf(h.res.Latency.Max()), h.res.RequestsPerSec(), h.res.Failures, h.relay, msf(targetP99), verdict(h.res.Latency.Quantile(0.99) < targetP99))
	}
	p("| Relay peak RSS (VmHWM of each `serve` process, the larger, whole run) | %.1f MB (%.1f MiB) | < 150 MB | %s |\n", float64(r.peakRSS)/1e6, float64(r.peakRSS)/(1<<20), verdict(r.peakRSS < targetPeakRSS))
	if r.dispatchBenchErr == nil {
		p("| Dispatch: `BenchmarkDispatch` (SQLite outbox → accepting destination, batches of 1000) | %.0f events/s | — | |\n", r.dispatchBench)
	} else {
		p("| Dispatch: `BenchmarkDispatch` | failed: %s | — | |\n", oneLine(r.dispatchBenchErr))
	}
	p("| Dispatch end to end (relay → Graph sink over HTTP) | %d events delivered during %s of ingest (%.0f/s); backlog of %d drained in %s; %d of %d acknowledged events delivered | — | %s |\n",
		r.deliveredDuringIngest, r.ingestWall.Round(time.Second), float64(r.deliveredDuringIngest)/r.ingestWall.Seconds(),
		max(r.drainBacklog, 0), r.drainTime.Round(100*time.Millisecond), r.delivered, r.acked, lossVerdict(r.delivered, r.acked))

	p("\n## Meta's Node SDK, same run\n\n")
	switch {
	case r.sdkErr != nil:
		p("Not measured: %s.\n", oneLine(r.sdkErr))
	case r.sdk != nil:
		p("`node bench-sdk.js --mode offline --n %d --json` (%s, node %s): normalize + hash + serialize with no network and no storage: **%.0f events/s** (`send_events_per_s`; building the events: %.0f/s).\n\n",
			r.sdk.N, r.sdk.SDK, r.sdk.Node, r.sdk.SendEventsPerS, r.sdk.BuildEventsPerS)
		if r.ingest != nil && r.sdk.SendEventsPerS > 0 {
			p("Ratio capirelay `/v1/events` (parse + validate + normalize + hash + seal + durable SQLite commit + HTTP, with dispatch running) to the SDK's offline rate: **%.2f×**.", r.ingest.EventsPerSec()/r.sdk.SendEventsPerS)
			if r.dispatchBenchErr == nil {
				p(" Dispatch alone to the SDK: %.2f×.", r.dispatchBench/r.sdk.SendEventsPerS)
			}
			p(" The SDK number excludes storage and the network, so the comparison favours the SDK.\n")
		}
	}
	if r.profileTop != "" || r.profileErr != nil {
		p("\n## Where the time goes (target missed)\n\n")
		p("CPU profile of an in-process relay (`app.New`, same code as the binary) under the `/v1/events` load above for up to 15 s; the profile covers the whole process, so the load generator's HTTP client appears too.\n\n")
		if r.profileErr != nil {
			p("Profiling failed: %s\n", oneLine(r.profileErr))
		} else {
			p("```\n%s```\n", r.profileTop)
		}
		if r.profileTopE != "" {
			p("\nSame under `/e` load:\n\n```\n%s```\n", r.profileTopE)
		}
	}
	return b.String()
}

// lossVerdict: delivered may exceed acknowledged, because requests cut
// off at the end of a phase are committed but never answered.
func load1(loadavg string) float64 {
	var l float64
	if _, err := fmt.Sscan(loadavg, &l); err != nil {
		return -1
	}
	return l
}

func lossVerdict(delivered, acked int64) string {
	if delivered >= acked {
		return "no loss (any surplus: requests cut off at the end of a phase, committed but unanswered)"
	}
	return "**not all delivered within 2 min**"
}

func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
