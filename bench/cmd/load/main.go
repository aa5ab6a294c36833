// Command load drives a capirelay relay on this machine with concurrent
// clients and reports events/s, requests/s and latency percentiles.
//
//	go run ./bench/cmd/load -inprocess -mode v1 -duration 10s
//	go run ./bench/cmd/load -inprocess -mode v1 -mix best-case     (the same customers in every request)
//	go run ./bench/cmd/load -url http://127.0.0.1:8080 -mode e -site sKEY
//	go run ./bench/cmd/load -url http://127.0.0.1:8080 -mode v1 -api-key crk_… -rate 250
//
// Only loopback URLs are accepted; a run is bounded by -duration and
// -max-requests.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/capirelay/capirelay/bench/loadgen"
	"github.com/capirelay/capirelay/bench/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadgen.Config
	fs.StringVar(&cfg.URL, "url", "", "relay base URL (loopback only); empty with -inprocess")
	fs.StringVar(&cfg.Mode, "mode", "v1", "v1 (POST /v1/events) or e (POST /e)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "concurrent clients")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to run")
	fs.Int64Var(&cfg.MaxRequests, "max-requests", 0, "stop after this many requests (0: no limit within -duration)")
	fs.IntVar(&cfg.EventsPerRequest, "events-per-request", 100, "events per /v1/events request (at most 1000)")
	fs.StringVar(&cfg.APIKey, "api-key", "", "site api key for /v1/events")
	fs.StringVar(&cfg.Site, "site", "", "site key for /e")
	fs.Float64Var(&cfg.Rate, "rate", 0, "requests per second in total (0: as fast as possible)")
	fs.StringVar(&cfg.Mix, "mix", loadgen.MixRealistic, "realistic (every event a distinct customer, a -returning share repeating earlier ones) or best-case (the same customers in every request: caches always hit)")
	fs.Float64Var(&cfg.Returning, "returning", loadgen.DefaultReturning, "realistic mix: share of events whose customer came before (0 for none)")
	fs.Uint64Var(&cfg.FirstCustomer, "first-customer", uint64(time.Now().Unix()%100)*50_000_000,
		"realistic mix: number of the first new customer; the default differs between runs a few seconds apart, so repeated runs against one relay bring new customers")
	noXFF := fs.Bool("no-forwarded-for", false, "/e: leave out X-Forwarded-For (send it only to a relay whose CAPIRELAY_TRUSTED_PROXIES includes 127.0.0.0/8, as -inprocess's does)")
	inproc := fs.Bool("inprocess", false, "start a relay in this process on a temporary data directory, delivering to a local sink")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of this process (relay included with -inprocess)")
	traceOut := fs.String("trace", "", "write a Go execution trace of this process (relay included with -inprocess): go tool trace -pprof=sched FILE shows where goroutines waited")
	memprofile := fs.String("memprofile", "", "write a heap profile of this process at the end (relay included with -inprocess)")
	identity := fs.String("identity", "", "with -inprocess: the site's identity mode (full, visitor or off; default full)")
	metricsOut := fs.String("metrics", "", "with -inprocess: write the relay's /metrics to this file at the end (commit, fsync and request latency histograms)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.NoForwardedFor = *noXFF
	if cfg.Returning == 0 {
		cfg.Returning = -1 // loadgen.Config: negative means none
	}
	if *inproc {
		sink, err := relay.NewSink()
		if err != nil {
			return err
		}
		defer sink.Close()
		r, err := relay.StartInProcess(ctx, relay.Options{GraphURL: sink.URL, Identity: *identity})
		if err != nil {
			return fmt.Errorf("start relay: %w", err)
		}
		defer r.Close()
		cfg.URL, cfg.APIKey, cfg.Site = r.URL, r.APIKey, r.SiteKey
		fmt.Fprintf(stderr, "in-process relay at %s (site %s)\n", r.URL, r.SiteKey)
		defer func() { fmt.Fprintf(stderr, "delivered to the sink: %d events\n", sink.Events.Load()) }()
		if *metricsOut != "" {
			defer func() {
				if err := saveMetrics(context.WithoutCancel(ctx), r.URL, *metricsOut); err != nil {
					fmt.Fprintln(stderr, "load: save metrics:", err)
				}
			}()
		}
		defer func() {
			// What learning kept up with: under overload it drops by design.
			if m, err := relay.Metrics(context.WithoutCancel(ctx), r.URL); err == nil {
				fmt.Fprintf(stderr, "identity: %.0f observations dropped, %.0f cache entries, filter %.1f %% full\n",
					m["capirelay_identity_learn_dropped_total"], m["capirelay_identity_cache_entries"], 100*m["capirelay_identity_filter_fill_ratio"])
			}
		}()
	} else if cfg.URL == "" {
		return errors.New("-url or -inprocess is required")
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *traceOut != "" {
		f, err := os.Create(*traceOut)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return err
		}
		defer trace.Stop()
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *memprofile != "" {
		if err := writeHeap(*memprofile); err != nil {
			return err
		}
	}
	if _, peak, err := relay.ProcMemory(os.Getpid()); err == nil {
		fmt.Fprintf(stderr, "peak RSS of this process: %.1f MiB\n", float64(peak)/(1<<20))
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"mode": res.Mode, "mix": loadgen.Label(res.Mix), "returning_share": res.ReturningShare(), "next_customer": res.NextCustomer,
			"refused": res.Sent - res.Events, "concurrency": res.Concurrency, "rate": res.Rate, "elapsed_s": res.Elapsed.Seconds(),
			"requests": res.Requests, "events": res.Events, "failures": res.Failures, "status": res.Status,
			"requests_per_s": res.RequestsPerSec(), "events_per_s": res.EventsPerSec(),
			"p50_ms": ms(res.Latency.Quantile(0.5)), "p99_ms": ms(res.Latency.Quantile(0.99)),
			"p999_ms": ms(res.Latency.Quantile(0.999)), "max_ms": ms(res.Latency.Max()), "first_error": res.FirstError,
		})
	}
	fmt.Fprintln(stdout, res)
	if res.FirstError != "" {
		fmt.Fprintln(stdout, "first error:", res.FirstError)
	}
	return nil
}

// saveMetrics writes the relay's /metrics at base to path.
func saveMetrics(ctx context.Context, base, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = relay.ReadMetrics(ctx, base, func(r io.Reader) error {
		_, err := io.Copy(f, r)
		return err
	})
	return errors.Join(err, f.Close())
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
