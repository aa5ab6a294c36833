package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/collect"
	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/fbcookie"
	"github.com/capirelay/capirelay/internal/normalize"
)

// sent is one request the recording server received.
type sent struct {
	body    []byte
	ua, xff string
}

// record runs cfg against a server that keeps every request and answers
// /v1/events with the number of events it got.
func record(t *testing.T, cfg Config) (*Result, []sent) {
	t.Helper()
	var mu sync.Mutex
	var got []sent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, sent{b, r.UserAgent(), r.Header.Get("X-Forwarded-For")})
		mu.Unlock()
		if r.URL.Path == "/e" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fmt_ := `{"events_received":` + strconv.Itoa(bytes.Count(b, []byte(`"event_name"`))) + `}`
		io.WriteString(w, fmt_)
	}))
	defer srv.Close()
	cfg.URL, cfg.APIKey, cfg.Site = srv.URL, "crk_x", "sKEY"
	if cfg.Duration == 0 {
		cfg.Duration = 20 * time.Second
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failures != 0 || int64(len(got)) != res.Requests {
		t.Fatalf("%s (%s); server got %d requests", res, res.FirstError, len(got))
	}
	return res, got
}

// decodeServer reads a /v1/events body the way the relay does and
// checks every event passes its validation.
func decodeServer(t *testing.T, body []byte, now time.Time) []*event.Event {
	t.Helper()
	_, evs, ok := event.DecodeBatch(body)
	if !ok {
		t.Fatalf("the relay's decoder refuses the body: %.300s", body)
	}
	for i, ev := range evs {
		if err := ev.Prepare(now, "data["+strconv.Itoa(i)+"]"); err != nil {
			t.Fatalf("invalid event: %v: %.300s", err, body)
		}
		if err := ev.CheckMatch("data"); err != nil {
			t.Fatalf("event cannot match: %v", err)
		}
	}
	return evs
}

// decodeAll is every event of the recorded /v1/events requests, each
// checked as decodeServer does.
func decodeAll(t *testing.T, got []sent) []*event.Event {
	t.Helper()
	now := time.Now()
	var evs []*event.Event
	for _, s := range got {
		evs = append(evs, decodeServer(t, s.body, now)...)
	}
	return evs
}

// key is what makes a person a person.
type key struct{ em, ph, ext, fn, ln string }

func keyOf(t *testing.T, ev *event.Event) key {
	t.Helper()
	u := &ev.UserData
	if len(u.Em) != 1 || len(u.Ph) != 1 || len(u.ExternalID) != 1 || len(u.Fn) != 1 || len(u.Ln) != 1 {
		t.Fatalf("event %s lacks a customer key: %+v", ev.EventID, u)
	}
	return key{u.Em[0], u.Ph[0], u.ExternalID[0], u.Fn[0], u.Ln[0]}
}

func TestRealisticServerEventsAreDistinctPeople(t *testing.T) {
	res, got := record(t, Config{Mode: ModeServer, Concurrency: 4, MaxRequests: 40, EventsPerRequest: 100, Returning: -1})
	now := time.Now()
	seen := map[string]string{} // every em, ph, external_id and fn+ln, by kind
	ips, uas, fbps := map[string]bool{}, map[string]bool{}, map[string]bool{}
	sources := map[string]int{}
	evs := decodeAll(t, got)
	events := len(evs)
	for _, ev := range evs {
		k := keyOf(t, ev)
		for kind, v := range map[string]string{"em": k.em, "ph": k.ph, "external_id": k.ext, "fn+ln": k.fn + " " + k.ln} {
			if prev, dup := seen[kind+":"+v]; dup {
				t.Fatalf("%s %q repeats (%s) with no returning share", kind, v, prev)
			}
			seen[kind+":"+v] = ev.EventID
		}
		// Nothing the relay's normalization would drop.
		in := ev.UserData.Hashable()
		out := normalize.HashUserData(&in, normalize.Options{Now: now})
		for _, f := range normalize.Fields {
			if len(in.Get(f)) != len(out.Get(f)) {
				t.Fatalf("normalization drops %s %q", f, in.Get(f))
			}
		}
		sources[ev.ActionSource]++
		u := &ev.UserData
		if ev.ActionSource == "website" {
			if collect.IsBot(u.ClientUserAgent) {
				t.Fatalf("bot user agent %q", u.ClientUserAgent)
			}
			checkPublicIP(t, u.ClientIPAddress)
			if !fbcookie.Valid(u.Fbp) || u.Fbc != "" && !fbcookie.Valid(u.Fbc) {
				t.Fatalf("bad fbp %q or fbc %q", u.Fbp, u.Fbc)
			}
			ips[u.ClientIPAddress], uas[u.ClientUserAgent], fbps[u.Fbp] = true, true, true
		}
	}
	if int64(events) != res.Sent || res.Returning != 0 {
		t.Fatalf("%d events decoded, result %s", events, res)
	}
	web := sources["website"]
	if web < events*3/4 || sources["physical_store"] == 0 {
		t.Errorf("action sources %v", sources)
	}
	if len(ips) < web*98/100 || len(fbps) < web*98/100 || len(uas) < 100 {
		t.Errorf("of %d website events: %d addresses, %d fbp, %d user agents", web, len(ips), len(fbps), len(uas))
	}
}

func checkPublicIP(t *testing.T, s string) {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil || !a.IsGlobalUnicast() || a.IsPrivate() {
		t.Fatalf("client address %q is not a public unicast address", s)
	}
}

func TestRealisticReturningShare(t *testing.T) {
	for _, share := range []float64{0, 0.3} { // 0: the default, 10 %
		res, got := record(t, Config{Mode: ModeServer, Concurrency: 4, MaxRequests: 60, EventsPerRequest: 100, Returning: share})
		want := share
		if want == 0 {
			want = DefaultReturning
		}
		people := map[string]key{}
		evs := decodeAll(t, got)
		events := len(evs)
		for _, ev := range evs {
			k := keyOf(t, ev)
			if prev, ok := people[k.em]; ok && prev != k {
				t.Fatalf("returning customer %q changed keys: %+v then %+v", k.em, prev, k)
			}
			people[k.em] = k
		}
		// Every returning event repeats a customer; every other is new.
		if repeats := int64(events - len(people)); repeats != res.Returning {
			t.Errorf("share %v: %d repeated customers, result counts %d returning", share, repeats, res.Returning)
		}
		if got := res.ReturningShare(); got < want-0.02 || got > want+0.02 {
			t.Errorf("returning share %.3f, want %.2f ± 0.02", got, want)
		}
		if res.NextCustomer != uint64(len(people)) {
			t.Errorf("NextCustomer %d after %d customers", res.NextCustomer, len(people))
		}
	}
}

// TestRunsDoNotShareCustomers: a run that starts at the last one's
// NextCustomer sends no customer of it unless as a returning one.
func TestRunsDoNotShareCustomers(t *testing.T) {
	cfg := Config{Mode: ModeServer, Concurrency: 2, MaxRequests: 10, EventsPerRequest: 50, Returning: -1}
	first, a := record(t, cfg)
	cfg.FirstCustomer = first.NextCustomer
	second, b := record(t, cfg)
	if second.NextCustomer != first.NextCustomer+uint64(second.Sent) {
		t.Errorf("second run: NextCustomer %d, want %d + %d", second.NextCustomer, first.NextCustomer, second.Sent)
	}
	ems := map[string]bool{}
	for _, ev := range decodeAll(t, append(a, b...)) {
		em := keyOf(t, ev).em
		if ems[em] {
			t.Fatalf("customer %q in both runs", em)
		}
		ems[em] = true
	}
}

func TestRealisticBrowserVisitsAreDistinct(t *testing.T) {
	_, got := record(t, Config{Mode: ModeBrowser, Concurrency: 4, MaxRequests: 400, Returning: -1})
	vids, uas := map[string]bool{}, map[string]bool{}
	for _, s := range got {
		var b struct {
			VID, Fbp, Fbc, Consent string
			Events                 []struct{ Name, ID, URL string }
		}
		if err := json.Unmarshal(s.body, &b); err != nil {
			t.Fatalf("%v: %s", err, s.body)
		}
		if vids[b.VID] || len(b.VID) != 32 {
			t.Fatalf("visitor id %q repeats or is malformed", b.VID)
		}
		vids[b.VID] = true
		if !fbcookie.Valid(b.Fbp) || b.Fbc != "" && !fbcookie.Valid(b.Fbc) || b.Consent != "granted" || len(b.Events) != 1 {
			t.Fatalf("bad beacon %s", s.body)
		}
		if collect.IsBot(s.ua) {
			t.Fatalf("bot user agent %q", s.ua)
		}
		uas[s.ua] = true
		checkPublicIP(t, s.xff)
	}
	if len(uas) < 50 {
		t.Errorf("%d distinct user agents in %d visits", len(uas), len(got))
	}
}

// TestUserAgentsAreBrowsers: the relay drops bots, headless browsers and
// HTTP libraries; none of the pool may look like one.
func TestUserAgentsAreBrowsers(t *testing.T) {
	mobile := 0
	for _, ua := range userAgents {
		if collect.IsBot(ua) {
			t.Errorf("the relay takes %q for a bot", ua)
		}
		if bytes.Contains([]byte(ua), []byte("Mobile")) {
			mobile++
		}
	}
	if mobile < len(userAgents)/4 || mobile > len(userAgents)*3/4 {
		t.Errorf("%d of %d user agents are mobile", mobile, len(userAgents))
	}
}

// BenchmarkRealisticServerBody is the load generator's cost of one
// 100-event /v1/events body.
func BenchmarkRealisticServerBody(b *testing.B) {
	cfg := Config{URL: "http://127.0.0.1:1", APIKey: "k", Mode: ModeServer}
	if err := cfg.defaults(); err != nil {
		b.Fatal(err)
	}
	wk, err := newWorker(&cfg, 0, &population{returning: DefaultReturning})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		wk.realistic(int64(i))
	}
	b.SetBytes(int64(len(wk.body)))
	b.ReportMetric(float64(b.N*cfg.EventsPerRequest)/b.Elapsed().Seconds(), "events/s")
}

// TestReturningCountsAnsweredRequestsOnly: requests cut off by the end
// of the run are not counted as sent, so their returning customers must
// not be either.
func TestReturningCountsAnsweredRequestsOnly(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(50 * time.Millisecond)
		io.WriteString(w, `{"events_received":100}`)
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{URL: srv.URL, APIKey: "k", Mode: ModeServer, Concurrency: 8,
		Duration: 400 * time.Millisecond, EventsPerRequest: 100, Returning: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.ReturningShare(); got < 0.45 || got > 0.55 {
		t.Errorf("returning share %.3f of %d events sent, want 0.5 ± 0.05", got, res.Sent)
	}
}

// TestNoForwardedFor: a relay that does not trust the loopback proxy
// gets no X-Forwarded-For, in either mix.
func TestNoForwardedFor(t *testing.T) {
	for _, mix := range []string{MixRealistic, MixBestCase} {
		_, got := record(t, Config{Mode: ModeBrowser, Mix: mix, Concurrency: 2, MaxRequests: 10, NoForwardedFor: true})
		for _, s := range got {
			if s.xff != "" || collect.IsBot(s.ua) {
				t.Fatalf("%s: X-Forwarded-For %q, user agent %q", mix, s.xff, s.ua)
			}
		}
	}
}

// TestReturningFromEarlierRuns: with Known, returning customers may be
// an earlier run's, and are never customers the relay has not seen.
func TestReturningFromEarlierRuns(t *testing.T) {
	cfg := Config{Mode: ModeServer, Concurrency: 2, MaxRequests: 10, EventsPerRequest: 50, Returning: -1, FirstCustomer: 5000}
	first, _ := record(t, cfg)
	cfg.FirstCustomer, cfg.Known, cfg.Returning = first.NextCustomer, first.NextCustomer-5000, 0.5
	second, b := record(t, cfg)
	fromFirst := 0
	for _, ev := range decodeAll(t, b) {
		// external_id is cust-<customer number>
		c, err := strconv.ParseUint(ev.UserData.ExternalID[0][len("cust-"):], 10, 64)
		switch {
		case err != nil || c < 5000 || c >= second.NextCustomer:
			t.Fatalf("customer %q: neither run's", ev.UserData.ExternalID[0])
		case c < first.NextCustomer:
			fromFirst++
		}
	}
	if fromFirst == 0 {
		t.Error("no returning customer from the first run")
	}
}

func TestRealisticServerBody(t *testing.T) {
	a, b := RealisticServerBody("m", 0, 100), RealisticServerBody("m", 100, 100)
	ems := map[string]bool{}
	for _, body := range [][]byte{a, b} {
		for i, ev := range decodeServer(t, body, time.Now()) {
			if ev.EventID != "m-"+strconv.Itoa(i) {
				t.Fatalf("event id %q at %d", ev.EventID, i)
			}
			ems[keyOf(t, ev).em] = true
		}
	}
	if len(ems) != 200 {
		t.Errorf("%d distinct customers in two bodies of 100 from 0 and 100", len(ems))
	}
}
