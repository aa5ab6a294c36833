package faulttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hugeEventBody is one event with n emails: the quadratic-work attack.
func hugeEventBody(n int, now time.Time) []byte {
	ems := make([]string, n)
	for i := range ems {
		ems[i] = fmt.Sprintf("user%d@example.com", i)
	}
	ev := serverEvent("huge", now)
	ev["user_data"].(map[string]any)["em"] = ems
	b, _ := json.Marshal(map[string]any{"data": []any{ev}})
	return b
}

// largeValidBody is n events of 20 distinct emails each: as large as the
// limits allow, and accepted.
func largeValidBody(prefix string, n int, now time.Time) []byte {
	evs := make([]any, n)
	for i := range evs {
		ev := serverEvent(fmt.Sprintf("%s-%d", prefix, i), now)
		ems := make([]string, 20)
		for j := range ems {
			ems[j] = fmt.Sprintf("%s.%d.%d@example.com", prefix, i, j)
		}
		ev["user_data"].(map[string]any)["em"] = ems
		evs[i] = ev
	}
	b, _ := json.Marshal(map[string]any{"data": evs})
	return b
}

// victim sends the tag's PageView beacons for a site from many visitors'
// addresses (127.0.0.x, so the per-address limit does not apply) and
// times each answer.
type victim struct {
	url, site string
	clients   []*http.Client
	n         int
}

func newVictim(url, site string, visitors int) *victim {
	v := &victim{url: url, site: site}
	for i := range visitors {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+i))}
		d := &net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
		v.clients = append(v.clients, &http.Client{Timeout: 30 * time.Second,
			Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 2}})
	}
	return v
}

// beacon posts one PageView and returns how long the 204 took.
func (v *victim) beacon(t *testing.T) time.Duration {
	t.Helper()
	v.n++
	body, _ := json.Marshal(map[string]any{"v": 1, "vid": fmt.Sprintf("%020d", v.n), "consent": "granted",
		"events": []any{map[string]any{"type": "event", "name": "PageView", "id": fmt.Sprintf("victim-%d", v.n), "url": "https://shop.example.com/p"}}})
	req, _ := http.NewRequest("POST", v.url+"/e?site="+v.site, bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("Origin", "https://shop.example.com")
	req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15")
	start := time.Now()
	resp, err := v.clients[v.n%len(v.clients)].Do(req)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("beacon: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("beacon answered %d", resp.StatusCode)
	}
	return took
}

// p99 times n beacons one after the other.
func (v *victim) p99(t *testing.T, n int) time.Duration {
	t.Helper()
	lat := make([]time.Duration, n)
	for i := range lat {
		lat[i] = v.beacon(t)
	}
	slices.Sort(lat)
	return lat[len(lat)*99/100]
}

// TestLargeRequestsDoNotStallOtherSites: while one site's api key sends
// events of 40,000 emails (each refused at once with 400 naming the field)
// and large valid requests, another site's /e is not held up.
// Timing is not asserted tightly here (go test runs packages side by side,
// and the victim's commit shares the store's writer and fsync with the
// large requests): the bound is 1 s, or ten times the p99 measured just
// before the attack if that is larger. Before the fix the victim waited
// seconds to minutes (51.6 s in the report), so the bound still tells.
// The 50 ms figure the issue asks for is measured by bench/cmd/attack on
// a quiet machine and reported in bench/results.
func TestLargeRequestsDoNotStallOtherSites(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the attack runs for several seconds")
	}
	r := newRelay(t, options{})
	_, attackerKey := r.addSite(t, "73000", "tok")
	victimSite, _ := r.addSite(t, "73100", "tok")
	v := newVictim(r.url, victimSite.Key, 16)
	v.p99(t, 50) // warm up
	baseline := v.p99(t, 200)

	now := time.Now()
	huge := hugeEventBody(40000, now)
	var (
		wg        sync.WaitGroup
		stop      atomic.Bool
		refusals  atomic.Int64
		accepted  atomic.Int64
		slowest   atomic.Int64
		badAnswer atomic.Value
	)
	post := func(body []byte) (int, []byte, time.Duration) {
		start := time.Now()
		code, out := r.postRaw(attackerKey, "application/json", body)
		return code, out, time.Since(start)
	}
	// Each attacker sends its next request soon after the last answer:
	// several are in flight at any time, as in the report, without
	// turning the test into a flood of loopback bytes whose CPU cost no
	// scheduling inside the relay could share out.
	const pace = 20 * time.Millisecond
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				code, out, took := post(huge)
				var eb struct{ Field string }
				json.Unmarshal(out, &eb)
				if code != 400 || eb.Field != "data[0].user_data.em" {
					badAnswer.Store(fmt.Sprintf("40k emails answered %d %s", code, out))
					return
				}
				refusals.Add(1)
				time.Sleep(pace)
				for {
					old := slowest.Load()
					if int64(took) <= old || slowest.CompareAndSwap(old, int64(took)) {
						break
					}
				}
			}
		}()
	}
	// The large bodies are made before the attack: making them in the
	// test's process would take CPU from the relay under test.
	var large [1][8][]byte
	for g := range large {
		for i := range large[g] {
			large[g][i] = largeValidBody(fmt.Sprintf("large-%d-%d", g, i), 300, now)
		}
	}
	for g := range large {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				// Repeats of a body are answered as duplicates: still 200.
				code, out, _ := post(large[g][i%len(large[g])])
				if code != 200 {
					badAnswer.Store(fmt.Sprintf("large valid request answered %d %.200s", code, out))
					return
				}
				accepted.Add(1)
				time.Sleep(pace)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // let the attack start
	under := v.p99(t, 300)
	stop.Store(true)
	wg.Wait()
	if s, ok := badAnswer.Load().(string); ok {
		t.Fatal(s)
	}
	bound := max(time.Second, 10*baseline)
	t.Logf("victim /e p99: %v alone, %v under attack (bound %v); %d huge requests refused (slowest %v), %d large ones accepted",
		baseline, under, bound, refusals.Load(), time.Duration(slowest.Load()), accepted.Load())
	if refusals.Load() == 0 || accepted.Load() == 0 {
		t.Fatal("the attack did not run; the test proves nothing")
	}
	if under > bound {
		t.Errorf("victim /e p99 under attack = %v, want under %v", under, bound)
	}
	if s := time.Duration(slowest.Load()); s > 5*time.Second {
		t.Errorf("a 40k-email request took %v to be refused", s)
	}
}
