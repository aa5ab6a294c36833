// Command spray is the login-spray attack load: many loopback addresses
// (127.0.0.2, 127.0.0.3, …) post wrong admin passwords as fast as the relay
// answers, while a victim site's tag beacons (POST /e) run at a steady rate;
// it reports the victim's latency before and during the spray and what the
// login guard answered.
//
//	go run ./bench/cmd/spray                    (an in-process relay with a stored PBKDF2 password)
//	go run ./bench/cmd/spray -addresses 200 -duration 20s
//	go run ./bench/cmd/spray -url http://127.0.0.1:8080 -site sKEY
//
// Only loopback URLs are accepted and a run lasts at most 60 s.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/capirelay/capirelay/bench/loadgen"
	"github.com/capirelay/capirelay/bench/relay"
	"github.com/capirelay/capirelay/internal/admin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "spray:", err)
		os.Exit(1)
	}
}

// maxDuration bounds a phase: the machine is shared.
const maxDuration = 60 * time.Second

type options struct {
	url, site   string
	addresses   int
	perAddress  float64
	duration    time.Duration
	baseline    time.Duration
	victimRate  float64
	victimConns int
	noXFF       bool
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if o.url == "" {
		hash, err := admin.HashPassword("bench-admin-password-not-guessed")
		if err != nil {
			return err
		}
		sink, err := relay.NewSink()
		if err != nil {
			return err
		}
		defer sink.Close()
		r, err := relay.StartInProcess(ctx, relay.Options{GraphURL: sink.URL, AdminPasswordHash: hash})
		if err != nil {
			return fmt.Errorf("start relay: %w", err)
		}
		defer r.Close()
		o.url, o.site = r.URL, r.SiteKey
	}
	victim := loadgen.Config{URL: o.url, Mode: loadgen.ModeBrowser, Site: o.site, Concurrency: o.victimConns,
		Rate: o.victimRate, Duration: o.baseline, NoForwardedFor: o.noXFF}
	before, err := loadgen.Run(ctx, victim)
	if err != nil {
		return fmt.Errorf("victim baseline: %w", err)
	}
	victim.Duration = o.duration
	sprayCtx, stopSpray := context.WithCancel(ctx)
	var s sprayResult
	var wg sync.WaitGroup
	wg.Go(func() { s = spray(sprayCtx, o.url, o.addresses, o.perAddress) })
	during, err := loadgen.Run(ctx, victim)
	stopSpray()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("victim during the spray: %w", err)
	}
	report(stdout, o, before, during, s)
	return nil
}

func parseFlags(args []string) (*options, error) {
	fs := flagSet()
	o := &options{}
	fs.StringVar(&o.url, "url", "", "relay base URL (loopback only); empty: an in-process relay")
	fs.StringVar(&o.site, "site", "", "the victim site's key (with -url)")
	fs.IntVar(&o.addresses, "addresses", 60, "spraying addresses, 127.0.0.2 upwards (at most 250)")
	fs.Float64Var(&o.perAddress, "per-address-rate", 2, "login attempts per second from each address (0: as fast as answers come)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long the spray runs (at most 60s)")
	fs.DurationVar(&o.baseline, "baseline", 3*time.Second, "victim-only run before the spray (at most 60s)")
	fs.Float64Var(&o.victimRate, "victim-rate", 50, "victim /e requests per second")
	fs.IntVar(&o.victimConns, "victim-concurrency", 4, "victim clients")
	fs.BoolVar(&o.noXFF, "no-forwarded-for", false, "victim: leave out X-Forwarded-For (needed unless the relay's CAPIRELAY_TRUSTED_PROXIES includes 127.0.0.0/8, as the in-process relay's does); the victim then shares one address and /e's per-address limit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case o.url != "" && o.site == "":
		return nil, errors.New("-url needs -site (the victim site's key)")
	case o.addresses < 1 || o.addresses > 250:
		return nil, errors.New("-addresses is 1 to 250")
	case o.duration <= 0 || o.duration > maxDuration || o.baseline <= 0 || o.baseline > maxDuration:
		return nil, errors.New("-duration and -baseline are positive and at most 60s")
	}
	if o.url != "" {
		if err := loadgen.CheckLoopback(o.url); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// sprayResult counts the login answers by status.
type sprayResult struct {
	attempts int
	status   map[int]int
	errors   int
	elapsed  time.Duration
}

// spray posts wrong passwords from n source addresses, one request at a
// time each and at most rate a second each (0: no pacing), until ctx ends.
func spray(ctx context.Context, base string, n int, rate float64) sprayResult {
	res := sprayResult{status: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	body := url.Values{"password": {"wrong-password-guess"}}.Encode()
	for i := range n {
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}
		client := &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: src}).DialContext,
				MaxIdleConnsPerHost: 1},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		wg.Go(func() {
			defer client.CloseIdleConnections()
			var tick <-chan time.Time
			if rate > 0 {
				t := time.NewTicker(time.Duration(float64(time.Second) / rate))
				defer t.Stop()
				tick = t.C
			}
			for ctx.Err() == nil {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/admin/login", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := client.Do(req)
				mu.Lock()
				switch {
				case err == nil:
					res.attempts++
					res.status[resp.StatusCode]++
				case ctx.Err() == nil:
					res.attempts++
					res.errors++
				} // else cut off by the end of the run: not an attempt
				mu.Unlock()
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

func report(w io.Writer, o *options, before, during *loadgen.Result, s sprayResult) {
	pace := "as fast as answers come"
	if o.perAddress > 0 {
		pace = fmt.Sprintf("%g/s each", o.perAddress)
	}
	fmt.Fprintf(w, "login spray: %d addresses (127.0.0.2 upwards, %s) for %s against %s\n", o.addresses, pace, s.elapsed.Round(time.Millisecond), o.url)
	codes := make([]int, 0, len(s.status))
	for c := range s.status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	fmt.Fprintf(w, "  attempts %d (%.0f/s), transport errors %d\n", s.attempts, float64(s.attempts)/s.elapsed.Seconds(), s.errors)
	for _, c := range codes {
		what := ""
		switch c {
		case http.StatusUnauthorized:
			what = " (password checked: PBKDF2 ran)"
		case http.StatusTooManyRequests:
			what = " (refused before any password work)"
		}
		fmt.Fprintf(w, "  HTTP %d: %d%s\n", c, s.status[c], what)
	}
	fmt.Fprintf(w, "victim /e at %.0f req/s:\n", o.victimRate)
	for _, p := range []struct {
		name string
		r    *loadgen.Result
	}{{"before", before}, {"during", during}} {
		l := p.r.Latency
		fmt.Fprintf(w, "  %-6s  %5d ok, %d failed  p50 %s  p99 %s  max %s\n", p.name, p.r.Requests, p.r.Failures,
			l.Quantile(0.5).Round(10*time.Microsecond), l.Quantile(0.99).Round(10*time.Microsecond), l.Max().Round(10*time.Microsecond))
		if p.r.Failures > 0 {
			fmt.Fprintf(w, "          failures by status %v, first: %s\n", p.r.Status, p.r.FirstError)
		}
	}
}
