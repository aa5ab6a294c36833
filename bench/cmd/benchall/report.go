package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/capirelay/capirelay/bench/loadgen"
	"github.com/capirelay/capirelay/bench/machine"
	"github.com/capirelay/capirelay/bench/relay"
)

type report struct {
	opts              options
	machine           machine.Info
	started, finished time.Time
	loadEnd           string

	// realistic mix
	ingest, ingestOff, ingestHalf *phase
	identityOffErr                *relay.SiteSetError
	delivery                      *phase
	browser, browserHalf          *phase
	browserWired                  bool
	settleHalf, drainTime         time.Duration
	delivered, acked              int64 // by the half-rate relay, after its drain

	// best case
	ingestBest, browserBest *phase

	peakRSS int64

	// goEnv are the runtime's variables in this process's environment,
	// which every serve inherits, as NAME=value (goEnv).
	goEnv []string

	dispatchBench    float64
	dispatchBenchErr error

	sdk    *sdkResult
	sdkErr error

	profile    *profiled
	profileErr error
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

// maxLine is a maximum-rate phase: the rate, latencies, and what the
// relay and the load generator spent on it.
func maxLine(p *phase, perEvent bool) string {
	res := p.res
	rate := fmt.Sprintf("%.0f events/s (%.0f requests/s", res.EventsPerSec(), res.RequestsPerSec())
	if !perEvent {
		rate = fmt.Sprintf("%.0f requests/s (", res.RequestsPerSec())
	} else {
		rate += ", "
	}
	return fmt.Sprintf("%sp50 %s, p99 %s, failures %d, refused events %d%s; relay CPU %.1f µs/event, load generator and sink %.0f µs/request)",
		rate, msf(res.Latency.Quantile(0.5)), msf(res.Latency.Quantile(0.99)), res.Failures, res.Sent-res.Events,
		returningNote(res), float64(p.relayCPUPerEvent())/1e3, perRequest(p.selfCPU, res))
}

// learnNote says what share of a phase's acknowledged events identity's
// learning dropped: when ingest outruns it, its writer takes at most a
// quarter of the time and drops the rest, so its CPU share alone would
// hide how much it learned.
func learnNote(p *phase) string {
	if p == nil || !p.learnOK || p.res.Events == 0 {
		return ""
	}
	return fmt.Sprintf("; identity learning dropped the observations of %.0f %% of the events (capirelay_identity_learn_dropped_total: its writer was behind)",
		100*p.learnDropped/float64(p.res.Events))
}

func returningNote(res *loadgen.Result) string {
	if res.Mix != loadgen.MixRealistic {
		return ""
	}
	return fmt.Sprintf(", %.1f %% returning customers", 100*res.ReturningShare())
}

func perRequest(d time.Duration, res *loadgen.Result) float64 {
	if n := res.Requests + res.Failures; n > 0 {
		return float64(d) / 1e3 / float64(n)
	}
	return 0
}

func halfLine(p *phase) string {
	res := p.res
	return fmt.Sprintf("p50 %s, p99 %s, p99.9 %s, max %s (achieved %.0f/s, failures %d)%s",
		msf(res.Latency.Quantile(0.5)), msf(res.Latency.Quantile(0.99)), msf(res.Latency.Quantile(0.999)),
		msf(res.Latency.Max()), res.RequestsPerSec(), res.Failures, p.relayLat)
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# capirelay benchmarks, %s\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	p("Produced by `make bench` (`go run ./bench/cmd/benchall -out bench/results`) in %s.\n\n", r.finished.Sub(r.started).Round(time.Second))
	r.machineSection(&b)

	p("## Realistic traffic: every event a distinct customer\n\n")
	p("Each `/v1/events` event is a different person (own email, phone, external_id, first and last name, date of birth, address, public IPv4/IPv6 client address, one of %d browser user agents, fbp, a third with fbc), except a returning share (%.0f %%) whose keys repeat a customer sent earlier; event names, action sources (85 %% website, 10 %% physical_store, 5 %% system_generated), order ids, values and product ids vary per event, so no request repeats another and nothing a cache could replay. `/e` beacons are distinct visitors the same way (visitor id, fbp/fbc, user agent, client address via `X-Forwarded-For` from the trusted loopback proxy).\n\n",
		loadgen.UserAgents(), 100*max(r.opts.returning, 0))
	p("| measure | result | target | |\n|---|---|---|---|\n")
	if r.ingest != nil {
		p("| `/v1/events` events/s to durable ack (64 clients × 100 events) | %s%s | ≥ %d | %s |\n", maxLine(r.ingest, true), learnNote(r.ingest), targetIngestEvents,
			verdict(r.ingest.res.EventsPerSec() >= targetIngestEvents))
	}
	switch {
	case r.ingestOff != nil:
		p("| the same with the site's identity off (`site set --identity off`) | %s | — | |\n", maxLine(r.ingestOff, true))
	case r.identityOffErr != nil:
		p("| the same with the site's identity off | not available: this binary refuses `site set --identity off` (%s) | — | |\n", oneLine(r.identityOffErr))
	}
	if r.ingestHalf != nil {
		p("| `/v1/events` p99 at half the target rate (%.0f requests/s paced) | %s%s | < %s | %s |\n", r.ingestHalf.res.Rate, halfLine(r.ingestHalf), learnNote(r.ingestHalf),
			msf(targetP99), verdict(r.ingestHalf.res.Latency.Quantile(0.99) < targetP99))
	}
	if d := r.delivery; d != nil {
		ratio := 0.0
		if d.res.Events > 0 {
			ratio = float64(d.delivered) / float64(d.res.Events)
		}
		p("| Delivery keeps up: over %s of `/v1/events` at full load, events delivered to the Graph sink of those acknowledged | %d of %d (%.1f %%); ingest %.0f events/s, delivery %.0f events/s | ≥ %.0f %% | %s |\n",
			d.res.Elapsed.Round(time.Second), d.delivered, d.res.Events, 100*ratio, d.res.EventsPerSec(), float64(d.delivered)/d.res.Elapsed.Seconds(),
			100*targetDelivered, verdict(ratio >= targetDelivered))
	}
	if r.browser != nil {
		p("| `/e` requests/s | %s | ≥ %d | %s |\n", maxLine(r.browser, false), targetBrowserReqs, verdict(r.browser.res.RequestsPerSec() >= targetBrowserReqs))
	} else if !r.browserWired {
		p("| `/e` requests/s | not measured: POST /e is not wired into the relay's routes (404) | ≥ %d | — |\n", targetBrowserReqs)
	}
	if r.browserHalf != nil {
		p("| `/e` p99 at half the target rate (%.0f requests/s paced) | %s | < %s | %s |\n", r.browserHalf.res.Rate, halfLine(r.browserHalf),
			msf(targetP99), verdict(r.browserHalf.res.Latency.Quantile(0.99) < targetP99))
	}
	switch {
	case r.profile != nil:
		p("| Identity's share of the relay's CPU (profile below) | %.1f %% | ≤ %.0f %% | %s |\n", 100*r.profile.split.identityShare(),
			100*targetIdentity, verdict(r.profile.split.identityShare() <= targetIdentity))
	case r.profileErr != nil:
		p("| Identity's share of the relay's CPU | profiling failed: %s | ≤ %.0f %% | — |\n", oneLine(r.profileErr), 100*targetIdentity)
	}
	p("| Relay peak RSS (VmHWM, the largest of every `serve` process of the run) | %.1f MB (%.1f MiB) | < 150 MB | %s |\n",
		float64(r.peakRSS)/1e6, float64(r.peakRSS)/(1<<20), verdict(r.peakRSS < targetPeakRSS))
	if r.sdk != nil && r.ingest != nil && r.sdk.SendEventsPerS > 0 {
		ratio := r.ingest.res.EventsPerSec() / r.sdk.SendEventsPerS
		p("| `/v1/events` realistic over Meta's Node SDK offline, same run | %.2f× (%.0f vs %.0f events/s) | ≥ %.0f× | %s |\n",
			ratio, r.ingest.res.EventsPerSec(), r.sdk.SendEventsPerS, targetSDKRatio, verdict(ratio >= targetSDKRatio))
	}
	if r.acked > 0 {
		p("| End to end: the half-rate relay's events delivered after its drain | %d of %d acknowledged, drained in %s | all | %s |\n",
			r.delivered, r.acked, r.drainTime.Round(100*time.Millisecond), lossVerdict(r.delivered, r.acked))
	}
	if r.dispatchBenchErr == nil && r.dispatchBench > 0 {
		p("| Dispatch: `BenchmarkDispatch` (SQLite outbox → accepting destination, batches of 1000) | %.0f events/s | — | |\n", r.dispatchBench)
	} else if r.dispatchBenchErr != nil {
		p("| Dispatch: `BenchmarkDispatch` | failed: %s | — | |\n", oneLine(r.dispatchBenchErr))
	}

	p("\n## Best case (repeated customers)\n\n")
	p("The body of reports before 2026-12: the same 100 fully populated customers in every `/v1/events` request and one visitor per `/e` client, only event ids changing, so every cache and filter hits. Real traffic never does; these numbers are an upper bound, not capacity.\n\n")
	p("| measure | best case | realistic, above |\n|---|---|---|\n")
	if r.ingestBest != nil {
		p("| `/v1/events` events/s to durable ack | %s | %s |\n", maxLine(r.ingestBest, true), rateOf(r.ingest, true))
	}
	if r.browserBest != nil {
		p("| `/e` requests/s | %s | %s |\n", maxLine(r.browserBest, false), rateOf(r.browser, false))
	}

	p("\n## Meta's Node SDK, same run\n\n")
	switch {
	case r.sdkErr != nil:
		p("Not measured: %s.\n", oneLine(r.sdkErr))
	case r.sdk != nil:
		p("`node bench-sdk.js --mode offline --n %d --json` (%s, node %s): normalize + hash + serialize with no network and no storage: **%.0f events/s** (`send_events_per_s`; building the events: %.0f/s). Its events are distinct customers too (email, external_id, fbp, fbc and order id per event), and the SDK keeps nothing between events, so no mix can flatter it.\n\n",
			r.sdk.N, r.sdk.SDK, r.sdk.Node, r.sdk.SendEventsPerS, r.sdk.BuildEventsPerS)
		if r.ingest != nil && r.sdk.SendEventsPerS > 0 {
			p("Ratio capirelay `/v1/events` realistic (parse + validate + normalize + hash + identity + seal + durable SQLite commit + HTTP, with dispatch running) to the SDK's offline rate: **%.2f×**", r.ingest.res.EventsPerSec()/r.sdk.SendEventsPerS)
			if r.ingestBest != nil {
				p("; best case %.2f×", r.ingestBest.res.EventsPerSec()/r.sdk.SendEventsPerS)
			}
			if r.dispatchBenchErr == nil && r.dispatchBench > 0 {
				p("; dispatch alone %.2f×", r.dispatchBench/r.sdk.SendEventsPerS)
			}
			p(". The SDK number excludes storage and the network, so the comparison favours the SDK.\n")
		}
	}
	if pr := r.profile; pr != nil {
		p("\n## Where the relay's CPU goes (realistic `/v1/events`)\n\n")
		p("CPU profile of an in-process relay (`app.New`, the code of the binary) under the realistic `/v1/events` load for %s after %s of warm-up (%.0f events/s): `%s`, beside this report (`go tool pprof -tagignore 'bench=loadgen,sink' %s` shows the relay alone). The load generator's and the Graph sink's goroutines are labelled `bench=…`; of %s of samples, the relay's are %s, the load generator's %s, the sink's %s. Identity is every relay sample with a frame of `internal/identity` or a store function named for identities or known keys on its stack: **%s, %.1f %% of the relay's CPU**.\n\n",
			pr.res.Elapsed.Round(time.Second), r.opts.warmup, pr.res.EventsPerSec(), pr.file, pr.file,
			pr.split.total.Round(time.Millisecond), pr.split.relay.Round(time.Millisecond), pr.split.loadgen.Round(time.Millisecond),
			pr.split.sink.Round(time.Millisecond), pr.split.identity.Round(time.Millisecond), 100*pr.split.identityShare())
		p("Relay functions, as %% of the relay's samples:\n\n```\n%s```\n", pr.top)
	}
	r.setupSection(&b)
	return b.String()
}

func rateOf(p *phase, perEvent bool) string {
	switch {
	case p == nil:
		return "—"
	case perEvent:
		return fmt.Sprintf("%.0f events/s", p.res.EventsPerSec())
	}
	return fmt.Sprintf("%.0f requests/s", p.res.RequestsPerSec())
}

func (r *report) machineSection(b *strings.Builder) {
	fmt.Fprintf(b, "## Machine\n\n%s- Load average at end: %s (includes this benchmark's own load)\n\n", r.machine.Markdown(), r.loadEnd)
	// The load at the end includes this benchmark's own; only the load
	// before it started says whether others competed.
	if l := load1(r.machine.LoadAvg); l > float64(r.machine.NProc)/2 {
		fmt.Fprintf(b, "> The machine was busy before the run (1-minute load %.1f on %d CPUs): other work competed with the relay and the load generator, so these numbers are low bounds.\n\n", l, r.machine.NProc)
	}
}

func (r *report) setupSection(b *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("\n## Setup\n\n")
	p("- Relay: the real binary (`go build ./cmd/capirelay`) run as `capirelay serve` in a subprocess, SQLite in WAL mode with `synchronous=FULL`, delivering to a local Graph API sink on loopback that accepts every batch, so dispatch runs during ingest. Every measurement starts a fresh relay on a new data directory, so none inherits another's backlog or dedup keys. Relay CPU per event is its `/proc/PID/stat` user + system time over the phase.\n")
	goEnvLine(b, r.goEnv)
	p("- Load: `bench/loadgen` in the benchall process on the same %d CPUs, over loopback HTTP/1.1 keep-alive; %s per measured phase after %s of warm-up (the delivery run: %s, no warm-up); latency is request start to the complete answer. Bodies are written per request by a splitmix64-driven generator into reused buffers (`BenchmarkRealisticServerBody`); \"load generator and sink\" is this process's CPU per request, which includes the Graph sink receiving the relay's batches. Events acknowledged are the answers' `events_received`; refused events would show.\n",
		r.machine.NProc, r.opts.duration, r.opts.warmup, r.opts.delivery)
	p("- Half rate: open-loop pacing at half of the targets' rates (%d events/s, i.e. %d requests/s of 100 events, and %d `/e` requests/s); latency counts from each request's scheduled start, so queueing shows. The relay's own latency over the same phase (handler start to answer, from its `capirelay_ingest_request_seconds` histogram, as bucket upper bounds) is given beside it. Both run on one relay, which delivers its backlog between them (%s, at most 30 s).\n",
		targetIngestEvents/2, targetIngestEvents/200, targetBrowserReqs/2, r.settleHalf.Round(100*time.Millisecond))
}

func load1(loadavg string) float64 {
	var l float64
	if _, err := fmt.Sscan(loadavg, &l); err != nil {
		return -1
	}
	return l
}

// lossVerdict: delivered may exceed acknowledged, because requests cut
// off at the end of a phase are committed but never answered.
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

// goEnvLine writes the setup's line on the relays' Go runtime settings.
func goEnvLine(b *strings.Builder, env []string) {
	if len(env) == 0 {
		b.WriteString("- The relay's Go runtime: `serve`'s own soft heap limit and GOGC (`GOMEMLIMIT` and `GOGC` unset; `cmd/capirelay/serve.go`).\n")
		return
	}
	fmt.Fprintf(b, "- The relay's Go runtime: `%s` from the environment, in place of `serve`'s own settings (`cmd/capirelay/serve.go`); the benchall process, where the profile's relay runs, has them too.\n", strings.Join(env, "`, `"))
}

// goEnv lists the variables of getenv that tune Go's runtime in serve
// (its heap limit and GC target), as NAME=value, in a fixed order.
func goEnv(getenv func(string) string) []string {
	var out []string
	for _, k := range []string{"GOMEMLIMIT", "GOGC", "GOMAXPROCS"} {
		if v := getenv(k); v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}
