// Package loadgen drives a capirelay relay over HTTP the way production
// clients do: customer backends posting batches to /v1/events, and browsers
// beaconing /e. It reports throughput and latency percentiles. It only ever
// talks to loopback addresses and every run is bounded in time and in
// requests. Run is safe to call from several goroutines, each with its own
// Config.
//
// By default the traffic is realistic (MixRealistic): every event is a
// person of its own and a returning share repeats earlier customers, so
// the relay's caches and identity filter meet what real traffic gives
// them. MixBestCase repeats the same customers in every request: the
// best case, labelled so wherever it is reported.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Modes.
const (
	ModeServer  = "v1" // POST /v1/events with a site api key
	ModeBrowser = "e"  // POST /e?site=KEY as the tag's beacon
)

// DefaultOrigin is the page origin browser requests claim; the site under
// test must list its host as a domain.
const DefaultOrigin = "https://shop.example.com"

// BrowserUA is a current desktop browser; bot-like user agents are
// filtered by /e, so the load must not look like a library.
const BrowserUA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"

// Config is one load run. Zero values mean the defaults in the comments.
type Config struct {
	URL              string        // relay base URL, e.g. http://127.0.0.1:8080; must be loopback
	Mode             string        // ModeServer (default) or ModeBrowser
	Concurrency      int           // concurrent clients, default 64
	Duration         time.Duration // default 10s; the run stops at the first of Duration and MaxRequests
	MaxRequests      int64         // default: unbounded within Duration
	EventsPerRequest int           // /v1/events only, default 100
	APIKey           string        // /v1/events: the site api key
	Site             string        // /e: the site key
	Origin           string        // /e: Origin header, default DefaultOrigin
	// Rate, if positive, paces the run at that many requests per second in
	// total (open loop): each request has a scheduled start, and latency is
	// measured from it, so a relay that falls behind shows it in the
	// percentiles instead of silently slowing the clients down.
	Rate float64
	// RunID makes event ids unique across runs against the same relay;
	// default: the start time.
	RunID string
	// Mix is MixRealistic (default) or MixBestCase.
	Mix string
	// Returning is the share of realistic events whose customer came
	// before (default DefaultReturning; negative: none).
	Returning float64
	// FirstCustomer is the first new customer's number: a run against a
	// relay that earlier runs fed starts after their customers
	// (Result.NextCustomer), so its new customers are new to the relay.
	FirstCustomer uint64
	// Known is how many customers right before FirstCustomer the relay
	// has seen from earlier runs (default none): returning customers are
	// drawn from those and this run's new ones.
	Known uint64
	// NoForwardedFor leaves X-Forwarded-For out of /e requests. By
	// default each carries its browser's address, which counts only
	// where the relay trusts the loopback proxy
	// (CAPIRELAY_TRUSTED_PROXIES=127.0.0.0/8, as bench/relay starts it);
	// elsewhere every beacon comes from 127.0.0.1 and meets the per-address limit.
	NoForwardedFor bool
}

// Result is what a run measured.
type Result struct {
	Mode        string
	Mix         string
	Concurrency int
	Rate        float64 // the pacing asked for; 0 = as fast as possible
	Elapsed     time.Duration
	Requests    int64 // answered 2xx
	Events      int64 // events acknowledged in 2xx answers (events_received for /v1/events)
	Sent        int64 // events in the requests answered 2xx; Sent-Events were refused
	Returning   int64 // events of a customer seen before (realistic mix)
	// NextCustomer is the number after the last new customer: the
	// FirstCustomer of a following run against the same relay.
	NextCustomer uint64
	// Build is the time spent writing request bodies (wall clock, so on
	// a busy machine an upper bound of the generator's CPU for them).
	Build      time.Duration
	Failures   int64 // transport errors and non-2xx answers
	Status     map[int]int64
	FirstError string
	Latency    *Histogram // of 2xx answers
}

// RequestsPerSec is the rate of 2xx answers.
func (r *Result) RequestsPerSec() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// EventsPerSec is the rate of events acknowledged with a 2xx.
func (r *Result) EventsPerSec() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

// String is a one-line summary.
func (r *Result) String() string {
	return fmt.Sprintf("mode=%s mix=%q c=%d rate=%.0f elapsed=%s requests=%d (%.0f/s) events=%d (%.0f/s) refused=%d returning=%.1f%% failures=%d p50=%s p99=%s p999=%s max=%s status=%v",
		r.Mode, Label(r.Mix), r.Concurrency, r.Rate, r.Elapsed.Round(time.Millisecond), r.Requests, r.RequestsPerSec(), r.Events, r.EventsPerSec(),
		r.Sent-r.Events, 100*r.ReturningShare(),
		r.Failures, ms(r.Latency.Quantile(0.50)), ms(r.Latency.Quantile(0.99)), ms(r.Latency.Quantile(0.999)), ms(r.Latency.Max()), r.Status)
}

// ReturningShare is the share of events sent whose customer came before.
func (r *Result) ReturningShare() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.Returning) / float64(r.Sent)
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms" }

// CheckLoopback refuses a URL whose host is not a loopback address, so the
// generator cannot be pointed at someone else's server.
func CheckLoopback(raw string) error {
	u, err := neturl.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q: want http://127.0.0.1:PORT", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("url %q: only loopback addresses may be load tested", raw)
	}
	return nil
}

func (c *Config) defaults() error {
	if c.Mode == "" {
		c.Mode = ModeServer
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = 1 << 40
	}
	if c.EventsPerRequest <= 0 {
		c.EventsPerRequest = 100
	}
	if c.Origin == "" {
		c.Origin = DefaultOrigin
	}
	if c.RunID == "" {
		c.RunID = strconv.FormatInt(time.Now().UnixNano()%1e12, 36)
	}
	if c.Mix == "" {
		c.Mix = MixRealistic
	}
	if c.Mix != MixRealistic && c.Mix != MixBestCase {
		return fmt.Errorf("mix %q: want %s or %s", c.Mix, MixRealistic, MixBestCase)
	}
	switch {
	case c.Returning == 0:
		c.Returning = DefaultReturning
	case c.Returning < 0:
		c.Returning = 0
	case c.Returning > 1:
		return fmt.Errorf("returning share %v: want at most 1", c.Returning)
	}
	switch c.Mode {
	case ModeServer:
		if c.APIKey == "" {
			return errors.New("mode v1 needs an api key")
		}
		if c.EventsPerRequest > 1000 {
			return errors.New("at most 1000 events per request")
		}
	case ModeBrowser:
		if c.Site == "" {
			return errors.New("mode e needs a site key")
		}
	default:
		return fmt.Errorf("mode %q: want v1 or e", c.Mode)
	}
	return CheckLoopback(c.URL)
}

// Run sends load until the duration or request budget is spent, or ctx is
// done. It returns an error only for a bad Config.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	var (
		next     atomic.Int64 // request sequence, shared
		mu       sync.Mutex
		res      = &Result{Mode: cfg.Mode, Mix: cfg.Mix, Concurrency: cfg.Concurrency, Rate: cfg.Rate, Status: map[int]int64{}, Latency: &Histogram{}}
		pop      = &population{returning: cfg.Returning, known: cfg.FirstCustomer - min(cfg.Known, cfg.FirstCustomer)}
		wg       sync.WaitGroup
		start    = time.Now()
		interval time.Duration
	)
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	pop.next.Store(cfg.FirstCustomer)
	for w := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Labelled, so a CPU profile of a relay in this process can
			// leave the load generator out.
			pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("bench", "loadgen")))
			wk, err := newWorker(&cfg, w, pop)
			if err != nil {
				mu.Lock()
				res.Failures++
				if res.FirstError == "" {
					res.FirstError = err.Error()
				}
				mu.Unlock()
				return
			}
			defer wk.conn.close()
			h := &Histogram{}
			status := map[int]int64{}
			var reqs, events, sentEvents, returning, fails int64
			var firstErr string
			for ctx.Err() == nil {
				seq := next.Add(1) - 1
				if seq >= cfg.MaxRequests {
					break
				}
				sent := time.Now()
				if interval > 0 {
					sent = start.Add(time.Duration(seq) * interval)
					if d := time.Until(sent); d > 0 {
						t := time.NewTimer(d)
						select {
						case <-t.C:
						case <-ctx.Done():
							t.Stop()
						}
						if ctx.Err() != nil {
							break
						}
					}
				}
				code, err := wk.do(ctx, seq)
				if err != nil {
					if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
						break // cut off by the end of the run, not a failure
					}
					fails++
					if firstErr == "" {
						firstErr = err.Error()
					}
					continue
				}
				status[code]++
				if code/100 != 2 {
					fails++
					if firstErr == "" {
						firstErr = fmt.Sprintf("status %d: %s", code, wk.lastBody())
					}
					continue
				}
				h.Record(time.Since(sent))
				reqs++
				events += int64(wk.acked())
				sentEvents += int64(wk.events)
				returning += wk.returning
			}
			mu.Lock()
			defer mu.Unlock()
			res.Latency.Merge(h)
			res.Requests += reqs
			res.Events += events
			res.Sent += sentEvents
			res.Returning += returning
			res.Failures += fails
			for k, v := range status {
				res.Status[k] += v
			}
			if res.FirstError == "" {
				res.FirstError = firstErr
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.NextCustomer = pop.next.Load()
	return res, nil
}

// worker owns one client's request body. In the best case its ids are
// patched in place; in the realistic mix each body is written anew into
// the same buffer, from a fast generator, so a request costs the
// generator little of the CPUs it shares with the relay.
type worker struct {
	cfg     *Config
	conn    *conn
	extra   []byte // per-request headers
	body    []byte
	idAt    []int // best case: offsets of the 12-digit sequence in each event id
	events  int
	xff     bool
	respBuf bytes.Buffer

	// realistic mix
	gen       *rng
	pop       *population
	prefix    []byte // event id prefix: run, worker
	id        []byte // this request's event id prefix, reused
	returning int64  // events of returning customers in the last body
}

const seqDigits = 12

func newWorker(cfg *Config, w int, pop *population) (*worker, error) {
	wk := &worker{cfg: cfg, pop: pop}
	prefix := fmt.Sprintf("%s-%03d-", cfg.RunID, w)
	marker := prefix + "000000000000"
	var body []byte
	var err error
	headers := [][2]string{{"Content-Type", "application/json"}, {"Authorization", "Bearer " + cfg.APIKey}}
	url := cfg.URL + "/v1/events"
	if cfg.Mode == ModeBrowser {
		// What navigator.sendBeacon sends: text/plain, no preflight.
		headers = [][2]string{{"Content-Type", "text/plain;charset=UTF-8"}, {"Origin", cfg.Origin}, {"Referer", cfg.Origin + "/"}}
		url = cfg.URL + "/e?site=" + neturl.QueryEscape(cfg.Site)
		wk.xff = !cfg.NoForwardedFor
	}
	if cfg.Mix == MixRealistic {
		wk.events = 1
		if cfg.Mode == ModeServer {
			wk.events = cfg.EventsPerRequest
		}
		wk.prefix = []byte(prefix)
		wk.gen = &rng{s: mix64(uint64(w)<<32 ^ uint64(len(cfg.RunID))<<56 ^ hashString(cfg.RunID))}
		wk.conn, err = newConn(url, headers)
		return wk, err
	}
	switch cfg.Mode {
	case ModeServer:
		wk.events = cfg.EventsPerRequest
		body = ServerBody(marker, cfg.EventsPerRequest)
	case ModeBrowser:
		wk.events = 1
		body = browserBody(marker, cfg.Origin, w)
		headers = append(headers, [2]string{"User-Agent", BrowserUA})
	}
	if wk.conn, err = newConn(url, headers); err != nil {
		return nil, err
	}
	// Each event id is marker+"-"+index; find where the digits sit.
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(marker))
		if j < 0 {
			break
		}
		wk.idAt = append(wk.idAt, i+j+len(prefix))
		i += j + len(marker)
	}
	wk.body = body
	return wk, nil
}

func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

func (wk *worker) do(ctx context.Context, seq int64) (int, error) {
	wk.extra = wk.extra[:0]
	if wk.gen != nil {
		wk.realistic(seq)
		return wk.conn.post(ctx, wk.extra, wk.body, &wk.respBuf)
	}
	var digits [seqDigits]byte
	s := strconv.AppendInt(nil, seq, 10)
	for i := range digits {
		digits[i] = '0'
	}
	copy(digits[seqDigits-len(s):], s)
	for _, at := range wk.idAt {
		copy(wk.body[at:at+seqDigits], digits[:])
	}
	if wk.xff {
		// One address per request from the benchmark range (RFC 2544), as
		// a trusted proxy in front of the relay would report them: the
		// relay's per-address limit is for people, not for this test.
		wk.extra = fmt.Appendf(wk.extra, "X-Forwarded-For: 198.18.%d.%d\r\n", (seq>>8)&0xff, seq&0xff)
	}
	return wk.conn.post(ctx, wk.extra, wk.body, &wk.respBuf)
}

// realistic writes request seq's body (and, for /e, the browser's user
// agent and address, as a trusted proxy in front of the relay reports
// it) for customers drawn from the population.
func (wk *worker) realistic(seq int64) {
	now := time.Now()
	id := strconv.AppendInt(append(wk.id[:0], wk.prefix...), seq, 10)
	id = append(id, '-')
	wk.id = id
	b := wk.body[:0]
	wk.returning = 0
	if wk.cfg.Mode == ModeServer {
		b = append(b, `{"data":[`...)
		for j := range wk.events {
			if j > 0 {
				b = append(b, ',')
			}
			c, back := wk.pop.customer(wk.gen)
			if back {
				wk.returning++
			}
			p := newPerson(c)
			b = appendServerEvent(b, wk.gen, &p, now, id, j)
		}
		b = append(b, "]}"...)
	} else {
		c, back := wk.pop.customer(wk.gen)
		if back {
			wk.returning++
		}
		p := newPerson(c)
		b = appendBrowserBody(b, wk.gen, &p, now, wk.cfg.Origin, append(id, '0'))
		wk.extra = append(append(append(wk.extra, "User-Agent: "...), p.userAgent()...), "\r\n"...)
		if wk.xff {
			wk.extra = append(p.appendIP(append(wk.extra, "X-Forwarded-For: "...)), "\r\n"...)
		}
	}
	wk.body = b
}

// acked is how many events the last 2xx answer acknowledged: its
// events_received for /v1/events (events the relay refused are not
// counted), else the events sent.
func (wk *worker) acked() int {
	if wk.cfg.Mode != ModeServer {
		return wk.events
	}
	b := wk.respBuf.Bytes()
	i := bytes.Index(b, []byte(`"events_received":`))
	if i < 0 {
		return wk.events
	}
	n := 0
	for _, c := range b[i+len(`"events_received":`):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func (wk *worker) lastBody() string {
	b := wk.respBuf.Bytes()
	if len(b) > 300 {
		b = b[:300]
	}
	return string(bytes.TrimSpace(b))
}

// ServerBody is a /v1/events request of n fully populated website
// purchases with raw user_data; event ids are marker-<j>. Benchmarks of the
// handler use it too, so they measure the body the load sends.
func ServerBody(marker string, n int) []byte {
	now := time.Now().Unix()
	evs := make([]map[string]any, n)
	for j := range evs {
		id := fmt.Sprintf("%s-%d", marker, j)
		evs[j] = map[string]any{
			"event_name": "Purchase", "event_time": now, "event_id": id, "action_source": "website",
			"event_source_url": "https://shop.example.com/checkout?step=3",
			"user_data": map[string]any{"em": fmt.Sprintf("mary.smith%d@Example.com", j), "ph": fmt.Sprintf("(650) 555-%04d", j),
				"fn": "Mary", "ln": "Smith", "ct": "Menlo Park", "st": "California", "zp": "94025-1234", "country": "US",
				"db": "1990-02-16", "ge": "female", "external_id": fmt.Sprintf("cust-%d", j), "client_ip_address": "203.0.113.7",
				"client_user_agent": BrowserUA, "fbp": "fb.1.1596403881668.1116446470",
				"fbc": "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB"},
			"custom_data": map[string]any{"value": 49.9, "currency": "USD", "content_ids": []string{"sku-1", "sku-2"}, "num_items": 2},
		}
	}
	b, err := json.Marshal(map[string]any{"data": evs})
	if err != nil {
		panic("BUG: encode bench body: " + err.Error())
	}
	return b
}

// browserBody is what the tag beacons for a page view: one event, the
// visitor's ids, a granted consent. Its event id is marker-0.
func browserBody(marker, origin string, w int) []byte {
	b, err := json.Marshal(map[string]any{
		"v": 1, "vid": fmt.Sprintf("%032x", w+1), "fbp": "fb.1.1596403881668.1116446470", "fbc": "", "consent": "granted",
		"lang":   "en-US",
		"events": []map[string]any{{"type": "event", "name": "PageView", "id": marker + "-0", "url": origin + "/products/shoes?color=red", "ref": "https://www.google.com/"}},
	})
	if err != nil {
		panic("BUG: encode bench body: " + err.Error())
	}
	return b
}
