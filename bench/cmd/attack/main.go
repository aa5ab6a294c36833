// Command attack measures what one site's abuse costs another site: the
// victim site's /e latency alone, then while an attacker's api key posts
// events of 40,000 emails (each must be refused at once) and large valid
// requests, and anonymous visitors flood the attacker site's /e with bodies
// that are not UTF-8 (each must be refused, nothing must reach Meta).
//
//	go run ./bench/cmd/attack -inprocess -duration 20s
//	go run ./bench/cmd/attack -url http://127.0.0.1:8080 -api-key crk_… -victim-site sKEY -site sKEY2
//
// Only loopback URLs are accepted; a run lasts at most a minute.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capirelay/capirelay/bench/loadgen"
	"github.com/capirelay/capirelay/bench/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	url, apiKey, site, victimSite string
	duration                      time.Duration
	huge, large, junk             int
	victimRate                    float64
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("attack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.url, "url", "", "relay base URL (loopback only); empty with -inprocess")
	fs.StringVar(&o.apiKey, "api-key", "", "the attacker site's api key")
	fs.StringVar(&o.site, "site", "", "the attacker site's key (the /e flood)")
	fs.StringVar(&o.victimSite, "victim-site", "", "the victim site's key (its /e is timed)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long the attack runs (the victim is timed alone for a third of it first); at most 1m")
	fs.IntVar(&o.huge, "huge", 4, "clients posting events of 40,000 emails")
	fs.IntVar(&o.large, "large", 1, "clients posting valid requests of 300 events with 20 emails each")
	fs.IntVar(&o.junk, "junk", 4, "clients posting /e bodies that are not UTF-8")
	fs.Float64Var(&o.victimRate, "victim-rate", 50, "victim /e requests per second")
	inproc := fs.Bool("inprocess", false, "start a relay in this process (a second site is the victim), delivering to a local sink")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.duration <= 0 || o.duration > time.Minute {
		return errors.New("-duration must be in (0, 1m]: the machine may be shared")
	}
	var sink *relay.Sink
	if *inproc {
		var err error
		if sink, err = relay.NewSink(); err != nil {
			return err
		}
		defer sink.Close()
		r, err := relay.StartInProcess(ctx, relay.Options{GraphURL: sink.URL})
		if err != nil {
			return fmt.Errorf("start relay: %w", err)
		}
		defer r.Close()
		victim, err := r.AddSite(ctx, "victim")
		if err != nil {
			return err
		}
		o.url, o.apiKey, o.site, o.victimSite = r.URL, r.APIKey, r.SiteKey, victim.SiteKey
	}
	if o.url == "" || o.apiKey == "" || o.site == "" || o.victimSite == "" {
		return errors.New("-inprocess, or -url, -api-key, -site and -victim-site, are required")
	}
	if err := loadgen.CheckLoopback(o.url); err != nil {
		return err
	}
	alone, err := victimRun(ctx, o, o.duration/3)
	if err != nil {
		return err
	}
	var st stats
	attackCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	st.start(attackCtx, &wg, o)
	under, err := victimRun(ctx, o, o.duration)
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "victim /e alone:        %s\n", summary(alone))
	fmt.Fprintf(stdout, "victim /e under attack: %s\n", summary(under))
	fmt.Fprintf(stdout, "40k-email requests: %d answered %v, slowest %v\n", st.huge.n.Load(), st.huge.statuses(), time.Duration(st.huge.slowest.Load()))
	fmt.Fprintf(stdout, "large valid requests: %d answered %v, slowest %v\n", st.large.n.Load(), st.large.statuses(), time.Duration(st.large.slowest.Load()))
	fmt.Fprintf(stdout, "non-UTF-8 /e bodies: %d answered %v, slowest %v\n", st.junk.n.Load(), st.junk.statuses(), time.Duration(st.junk.slowest.Load()))
	if sink != nil {
		fmt.Fprintf(stdout, "delivered to the sink: %d events\n", sink.Events.Load())
	}
	return nil
}

// victimRun times the victim site's /e beacons at o.victimRate for d.
func victimRun(ctx context.Context, o options, d time.Duration) (*loadgen.Result, error) {
	return loadgen.Run(ctx, loadgen.Config{URL: o.url, Mode: loadgen.ModeBrowser, Site: o.victimSite,
		Concurrency: 8, Duration: d, Rate: o.victimRate, RunID: fmt.Sprintf("victim-%d", time.Now().UnixNano())})
}

func summary(r *loadgen.Result) string {
	return fmt.Sprintf("%d requests, p50 %v, p99 %v, max %v, failures %d",
		r.Requests, r.Latency.Quantile(0.5), r.Latency.Quantile(0.99), r.Latency.Max(), r.Failures)
}

// kind counts one kind of attack request.
type kind struct {
	n       atomic.Int64
	slowest atomic.Int64
	mu      sync.Mutex
	status  map[int]int
}

func (k *kind) record(code int, took time.Duration) {
	k.n.Add(1)
	for {
		old := k.slowest.Load()
		if int64(took) <= old || k.slowest.CompareAndSwap(old, int64(took)) {
			break
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.status == nil {
		k.status = map[int]int{}
	}
	k.status[code]++
}

func (k *kind) statuses() map[int]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.status
}

type stats struct{ huge, large, junk kind }

// start runs the attack's clients until ctx ends.
func (st *stats) start(ctx context.Context, wg *sync.WaitGroup, o options) {
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	loop := func(n int, k *kind, req func(i int) *http.Request) {
		for c := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					r := req(c*1_000_000 + i).WithContext(ctx)
					start := time.Now()
					resp, err := client.Do(r)
					if err != nil {
						continue // the run ended, or the relay dropped the connection
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					k.record(resp.StatusCode, time.Since(start))
				}
			}()
		}
	}
	v1 := func(body []byte) *http.Request {
		r, _ := http.NewRequest("POST", o.url+"/v1/events", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+o.apiKey)
		return r
	}
	huge := hugeBody()
	loop(o.huge, &st.huge, func(int) *http.Request { return v1(huge) })
	loop(o.large, &st.large, func(i int) *http.Request { return v1(largeBody(i)) })
	loop(o.junk, &st.junk, func(i int) *http.Request {
		r, _ := http.NewRequest("POST", o.url+"/e?site="+o.site, bytes.NewReader(junkBody(i)))
		r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		r.Header.Set("Origin", loadgen.DefaultOrigin)
		r.Header.Set("User-Agent", loadgen.BrowserUA)
		// One visitor address each (honoured by a relay that trusts the
		// loopback proxy, as -inprocess's does): past the per-address limit.
		r.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", i/250%250, i%250+1))
		return r
	})
}

// event is a valid website purchase with raw user_data.
func event(id string, emails []string) map[string]any {
	return map[string]any{
		"event_name": "Purchase", "event_time": time.Now().Unix(), "event_id": id, "action_source": "website",
		"event_source_url": loadgen.DefaultOrigin + "/checkout",
		"user_data":        map[string]any{"em": emails, "client_ip_address": "203.0.113.7", "client_user_agent": loadgen.BrowserUA},
		"custom_data":      map[string]any{"value": 49.9, "currency": "USD"},
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("BUG: encode attack body: " + err.Error())
	}
	return b
}

// hugeBody is one event of 40,000 emails (about 0.8 MB).
func hugeBody() []byte {
	ems := make([]string, 40000)
	for i := range ems {
		ems[i] = fmt.Sprintf("user%d@example.com", i)
	}
	return mustJSON(map[string]any{"data": []any{event("huge", ems)}})
}

// largeBody is 300 valid events of 20 distinct emails each.
func largeBody(i int) []byte {
	evs := make([]any, 300)
	for j := range evs {
		ems := make([]string, 20)
		for k := range ems {
			ems[k] = fmt.Sprintf("large%d.%d.%d@example.com", i, j, k)
		}
		evs[j] = event(fmt.Sprintf("large-%d-%d-%d", time.Now().Unix(), i, j), ems)
	}
	return mustJSON(map[string]any{"data": evs})
}

// junkBody is a tag beacon whose custom_data holds bytes that are not
// UTF-8, as a hand-made client can send.
func junkBody(i int) []byte {
	return []byte(fmt.Sprintf(`{"v":1,"vid":"%020d","consent":"granted","events":[{"type":"event","name":"ViewContent","id":"junk-%d",`+
		`"url":"%s/p","data":{"content_name":"caf\xe9 \xff\xfe"}}]}`, i, i, loadgen.DefaultOrigin))
}
