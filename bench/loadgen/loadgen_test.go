package loadgen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {0.999, 999 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d < 0 || d > 1.0/32 {
			t.Errorf("Quantile(%v) = %s, want %s within +1/32", tc.q, got, tc.want)
		}
	}
	if h.Max() != time.Second || h.Count() != 1000 {
		t.Errorf("Max %s Count %d", h.Max(), h.Count())
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 {
		t.Error("empty histogram has a quantile")
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"} {
		if err := CheckLoopback(u); err != nil {
			t.Errorf("CheckLoopback(%q) = %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:80", "https://graph.facebook.com", "127.0.0.1:80", "ftp://127.0.0.1"} {
		if CheckLoopback(u) == nil {
			t.Errorf("CheckLoopback(%q) accepted", u)
		}
	}
}

// TestRunSendsUniqueIDs runs both modes in both mixes against a
// recording server: no body is ever sent twice.
func TestRunSendsUniqueIDs(t *testing.T) {
	var mu sync.Mutex
	bodies := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies[string(b)]++
		mu.Unlock()
		if r.URL.Path == "/e" && (r.Header.Get("Origin") != DefaultOrigin || r.URL.Query().Get("site") != "sKEY") {
			w.WriteHeader(400)
			return
		}
		if r.URL.Path == "/v1/events" && r.Header.Get("Authorization") != "Bearer crk_x" {
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(200)
	}))
	defer srv.Close()
	for _, mix := range []string{MixRealistic, MixBestCase} {
		for _, mode := range []string{ModeServer, ModeBrowser} {
			res, err := Run(context.Background(), Config{URL: srv.URL, Mode: mode, Mix: mix, Concurrency: 4, MaxRequests: 40,
				Duration: 5 * time.Second, EventsPerRequest: 3, APIKey: "crk_x", Site: "sKEY", Rate: 400})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 40 || res.Failures != 0 {
				t.Fatalf("%s %s: %s (%s)", mix, mode, res, res.FirstError)
			}
		}
	}
	for b, n := range bodies {
		if n > 1 {
			t.Fatalf("body sent %d times: %.200s", n, b)
		}
	}
	if len(bodies) != 160 {
		t.Fatalf("%d distinct bodies, want 160", len(bodies))
	}
}
