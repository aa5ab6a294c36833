// Command soak runs a capirelay relay (the real binary, `capirelay serve`
// in a subprocess) at half its measured maximum /v1/events rate for a long
// time, samples the relay's resident memory every 10 s, and fails if the
// memory keeps growing or a request fails:
//
//	go run ./bench/cmd/soak -duration 10m      (make soak)
//
// Growth means: after the first fifth of the run (caches filling), the mean
// RSS of each third of the remaining samples is above the previous third's,
// and the last third's exceeds the first's by more than -max-growth.
//
// The load is bench/loadgen's realistic mix (every event a distinct
// customer, 10 % returning), so identity's cache and filter keep meeting
// new people. At every sample the soak also reads the relay's
// capirelay_identity_* metrics and fails if identity's cache ever holds
// more entries (capirelay_identity_cache_entries) than its documented
// bound (-identity-cache-entries), or, where the relay exports its size in
// bytes (capirelay_identity_memory_bytes, else the sum of its *_bytes
// gauges), that exceeds -identity-bound or the relay's
// capirelay_identity_memory_limit_bytes; without such metrics it says so.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"

	"github.com/capirelay/capirelay/bench/loadgen"
	"github.com/capirelay/capirelay/bench/machine"
	"github.com/capirelay/capirelay/bench/relay"
	"github.com/capirelay/capirelay/internal/identity"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 10*time.Minute, "how long to hold the load")
	rate := fs.Float64("rate", 0, "requests per second (100 events each); 0: half the maximum measured for -probe first")
	probe := fs.Duration("probe", 15*time.Second, "length of the maximum-rate measurement")
	every := fs.Duration("sample", 10*time.Second, "RSS sampling interval")
	maxGrowth := fs.Float64("max-growth", 0.10, "allowed growth of mean RSS from the first to the last third")
	mix := fs.String("mix", loadgen.MixRealistic, "realistic or best-case (see bench/cmd/load)")
	identityBound := fs.Float64("identity-bound", 0, "bytes identity's memory must stay under; 0: the relay's capirelay_identity_memory_limit_bytes, if it exports one")
	identityEntries := fs.Float64("identity-cache-entries", DefaultIdentityCacheEntries, "entries capirelay_identity_cache_entries must stay under (the documented bound)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := relay.StartBinary(ctx, "capirelay-soak-")
	if err != nil {
		return err
	}
	defer b.Close()
	sink, rel := b.Sink, b.Relay
	fmt.Fprintf(stdout, "machine: %+v\nrelay pid %d at %s\n", machine.Describe(), rel.Pid, rel.URL)

	cfg := loadgen.Config{URL: rel.URL, Mode: loadgen.ModeServer, Mix: *mix, APIKey: rel.APIKey, Concurrency: 64, EventsPerRequest: 100}
	if *rate <= 0 {
		p := cfg
		p.Duration = *probe
		res, err := loadgen.Run(ctx, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "probe: %s\n", res)
		if res.Requests == 0 {
			return fmt.Errorf("probe: no request succeeded: %s", res.FirstError)
		}
		*rate = res.RequestsPerSec() / 2
		// The soak's new customers are new to the relay; its returning
		// ones may be the probe's.
		cfg.FirstCustomer, cfg.Known = res.NextCustomer, res.NextCustomer
	}
	cfg.Rate, cfg.Duration = *rate, *duration
	fmt.Fprintf(stdout, "soak: %.1f requests/s (%.0f events/s) for %s, sampling RSS every %s\n", *rate, *rate*100, *duration, *every)

	done := make(chan *loadgen.Result, 1)
	errc := make(chan error, 1)
	go func() {
		res, err := loadgen.Run(ctx, cfg)
		if err != nil {
			errc <- err
			return
		}
		done <- res
	}()
	var samples []int64
	var ident identityMemory
	tick := time.NewTicker(*every)
	defer tick.Stop()
	start := time.Now()
	var res *loadgen.Result
	var scrapes, missed int // metrics samples taken, and not read
	for res == nil {
		select {
		case res = <-done:
		case err := <-errc:
			return err
		case <-tick.C:
			rss, _, err := rel.Memory()
			if err != nil {
				return fmt.Errorf("relay gone? %w", err)
			}
			samples = append(samples, rss)
			// A relay busy at the soak's rate may not answer /metrics
			// within its timeout: that sample's identity figures are
			// skipped, and the soak fails only if most are.
			scrapes++
			m, err := relay.Metrics(ctx, rel.URL)
			if err != nil {
				missed++
				fmt.Fprintf(stdout, "%8s rss %6.1f MiB  delivered %d  metrics not read: %v\n", time.Since(start).Round(time.Second),
					float64(rss)/(1<<20), sink.Events.Load(), err)
				continue
			}
			fmt.Fprintf(stdout, "%8s rss %6.1f MiB  delivered %d  %s\n", time.Since(start).Round(time.Second), float64(rss)/(1<<20),
				sink.Events.Load(), ident.sample(m, *identityBound, *identityEntries))
		}
	}
	_, peak, _ := rel.Memory()
	fmt.Fprintf(stdout, "result: %s\npeak RSS %.1f MiB\n", res, float64(peak)/(1<<20))
	var problems []string
	if missed*2 > scrapes {
		problems = append(problems, fmt.Sprintf("the relay's /metrics could not be read in %d of %d samples", missed, scrapes))
	}
	if res.Failures > 0 {
		problems = append(problems, fmt.Sprintf("%d requests failed (first: %s)", res.Failures, res.FirstError))
	}
	verdict, ok := ident.verdict()
	if !ok {
		problems = append(problems, verdict)
	} else {
		fmt.Fprintf(stdout, "identity memory: %s\n", verdict)
	}
	if growing, why := Growing(samples, *maxGrowth); growing {
		problems = append(problems, "relay memory keeps growing: "+why)
	} else {
		fmt.Fprintf(stdout, "memory: %s\n", why)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Fprintln(stdout, "soak passed")
	return nil
}

// Growing reports whether RSS samples keep growing (see the package
// comment) and explains the verdict.
func Growing(samples []int64, maxGrowth float64) (bool, string) {
	rest := samples[len(samples)/5:]
	if len(rest) < 3 {
		return false, fmt.Sprintf("only %d samples after warm-up; too few to judge", len(rest))
	}
	n := len(rest) / 3
	mean := func(s []int64) float64 {
		var sum float64
		for _, v := range s {
			sum += float64(v)
		}
		return sum / float64(len(s))
	}
	m1, m2, m3 := mean(rest[:n]), mean(rest[n:2*n]), mean(rest[2*n:])
	why := fmt.Sprintf("mean RSS by thirds after warm-up %.1f, %.1f, %.1f MiB", m1/(1<<20), m2/(1<<20), m3/(1<<20))
	return m1 < m2 && m2 < m3 && (m3-m1)/m1 > maxGrowth, why
}

// identityMemory follows identity's memory through the soak's samples:
// its size in bytes, if the relay exports it, and its cache's entries.
type identityMemory struct {
	seen    bool // the relay exports capirelay_identity_* metrics
	samples int
	bytes   bounded
	entries bounded
}

// bounded is one measure of identity's memory against its bound.
type bounded struct {
	what        string  // how the measure was read
	found       bool    // the relay exports it
	peak, limit float64 // limit 0: unknown
	over        int     // samples above the limit
}

func (b *bounded) take(v, limit float64, what string) {
	b.found, b.what, b.limit = true, what, limit
	b.peak = max(b.peak, v)
	if limit > 0 && v > limit {
		b.over++
	}
}

const (
	identityPrefix  = "capirelay_identity_"
	identityUsage   = "capirelay_identity_memory_bytes"
	identityLimit   = "capirelay_identity_memory_limit_bytes"
	identityEntries = "capirelay_identity_cache_entries"
	// DefaultIdentityCacheEntries is the cache's documented bound
	// (docs/scaling.md): its person records and key owners.
	DefaultIdentityCacheEntries = identity.CacheRecords + identity.CacheOwners
)

// sample takes one scrape (summed by metric name over labels) and
// returns the identity gauges as a short line. byteBound, if positive,
// overrides the relay's own capirelay_identity_memory_limit_bytes;
// entryBound bounds capirelay_identity_cache_entries.
func (im *identityMemory) sample(m map[string]float64, byteBound, entryBound float64) string {
	var names []string
	for name := range m {
		if strings.HasPrefix(name, identityPrefix) && !strings.HasSuffix(name, "_total") {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "identity: no metrics"
	}
	im.seen = true
	im.samples++
	sort.Strings(names)
	if byteBound <= 0 {
		byteBound = m[identityLimit]
	}
	if usage, ok := m[identityUsage]; ok {
		im.bytes.take(usage, byteBound, identityUsage)
	} else {
		var sum float64
		var parts bool
		for _, name := range names {
			if strings.HasSuffix(name, "_bytes") && !strings.HasSuffix(name, "_limit_bytes") {
				sum, parts = sum+m[name], true
			}
		}
		if parts {
			im.bytes.take(sum, byteBound, "the sum of "+identityPrefix+"*_bytes")
		}
	}
	if n, ok := m[identityEntries]; ok {
		im.entries.take(n, entryBound, identityEntries)
	}
	var b strings.Builder
	b.WriteString("identity:")
	for _, name := range names {
		fmt.Fprintf(&b, " %s=%g", strings.TrimPrefix(name, identityPrefix), m[name])
	}
	return b.String()
}

// verdict says how identity's memory went; ok is false if a measure
// went over its bound.
func (im *identityMemory) verdict() (string, bool) {
	if !im.seen {
		return "not measured: the relay exports no " + identityPrefix + "* metrics", true
	}
	var parts []string
	ok := true
	for _, b := range []struct {
		*bounded
		unit  string
		scale float64
		flag  string
	}{{&im.bytes, "MiB", 1 << 20, "-identity-bound or the relay's " + identityLimit}, {&im.entries, "entries", 1, "-identity-cache-entries"}} {
		switch {
		case !b.found:
		case b.limit <= 0:
			parts = append(parts, fmt.Sprintf("peak %.1f %s (%s), no bound to check it against (%s)", b.peak/b.scale, b.unit, b.what, b.flag))
		case b.over > 0:
			ok = false
			parts = append(parts, fmt.Sprintf("identity memory over its bound: %s peaked at %.1f %s, above %.1f in %d of %d samples", b.what, b.peak/b.scale, b.unit, b.limit/b.scale, b.over, im.samples))
		default:
			parts = append(parts, fmt.Sprintf("%s peaked at %.1f %s, under its bound of %.1f in all %d samples", b.what, b.peak/b.scale, b.unit, b.limit/b.scale, im.samples))
		}
	}
	if len(parts) == 0 {
		return "not measured: the relay's " + identityPrefix + "* metrics give neither its bytes nor its cache entries", true
	}
	return strings.Join(parts, "; "), ok
}
