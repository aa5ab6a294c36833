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
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/capirelay/capirelay/bench/loadgen"
	"github.com/capirelay/capirelay/bench/machine"
	"github.com/capirelay/capirelay/bench/relay"
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

	cfg := loadgen.Config{URL: rel.URL, Mode: loadgen.ModeServer, APIKey: rel.APIKey, Concurrency: 64, EventsPerRequest: 100}
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
	tick := time.NewTicker(*every)
	defer tick.Stop()
	start := time.Now()
	var res *loadgen.Result
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
			fmt.Fprintf(stdout, "%8s rss %6.1f MiB  delivered %d\n", time.Since(start).Round(time.Second), float64(rss)/(1<<20), sink.Events.Load())
		}
	}
	_, peak, _ := rel.Memory()
	fmt.Fprintf(stdout, "result: %s\npeak RSS %.1f MiB\n", res, float64(peak)/(1<<20))
	var problems []string
	if res.Failures > 0 {
		problems = append(problems, fmt.Sprintf("%d requests failed (first: %s)", res.Failures, res.FirstError))
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
