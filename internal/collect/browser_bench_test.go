package collect

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkBrowserCollect measures the /e handler in process on a real
// SQLite store (group commit, fsync) with 64 concurrent clients, each
// request one PageView with a fresh event id. It reports requests/s and the
// 99th percentile latency.
func BenchmarkBrowserCollect(b *testing.B) {
	bb := setupBrowser(b)
	bb.b.OnCapture = nil
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	const clients = 64
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			n := seq.Add(1)
			body := `{"v":1,"vid":"1234567890123456789","fbp":"fb.2.1700000000000.1234567890","lang":"en-GB","events":[{"type":"event","name":"PageView","id":"bench-` +
				strconv.FormatInt(n, 10) + `","url":"https://www.example.co.uk/p?x=1","ref":"https://www.google.com/"}]}`
			r := httptest.NewRequest(http.MethodPost, "/e?site=shop", strings.NewReader(body))
			r.Host = "t.example.co.uk"
			r.RemoteAddr = "203.0.113." + strconv.FormatInt(n%250, 10) + ":5000"
			r.Header.Set("Origin", testOrigin)
			r.Header.Set("User-Agent", testUA)
			r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
			w := httptest.NewRecorder()
			t0 := time.Now()
			bb.b.ServeHTTP(w, r)
			mine = append(mine, time.Since(t0))
			if w.Code != http.StatusNoContent {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}
