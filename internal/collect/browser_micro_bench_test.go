package collect

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"

	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// benchBeacon is a body as the tag sends it for a page view with a
// referrer (key order of t.js flush and track).
const benchBeacon = `{"v":1,"vid":"2903451981402371891522793016","fbp":"fb.2.1700000000000.1234567890","fbc":"","consent":"","lang":"en-GB","events":[{"type":"event","name":"PageView","id":"1187315239204185913731419284731","ref":"https://www.google.com/","url":"https://www.example.co.uk/products/shoes?color=red"}]}`

// nopOutbox accepts every event without storing anything, so a benchmark
// of the handler measures the handler rather than SQLite.
type nopOutbox struct{ store.Outbox }

func (nopOutbox) Enqueue(_ context.Context, evs []store.NewEvent) ([]store.EnqueueResult, error) {
	res := make([]store.EnqueueResult, len(evs))
	for i := range res {
		res[i] = store.EnqueueResult{Status: store.Accepted, ID: int64(i + 1)}
	}
	return res, nil
}

// BenchmarkBrowserHandler is one /e request (the tag's page-view beacon)
// through ServeHTTP on one goroutine, with an outbox that stores nothing:
// the CPU and allocations of the handler and the pipeline without SQLite.
func BenchmarkBrowserHandler(b *testing.B) {
	bb := setupBrowser(b)
	bb.b.OnCapture = nil
	bb.b.Pipeline = pipeline.New(nopOutbox{bb.db})
	body := []byte(benchBeacon)
	r := httptest.NewRequest(http.MethodPost, "/e?site=shop", nil)
	r.Host = "t.example.co.uk"
	r.Header.Set("Origin", testOrigin)
	r.Header.Set("User-Agent", testUA)
	r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	r.Header.Set("Cookie", "_ga=GA1.1.123.456; _fbp=fb.2.1700000000000.1234567890")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rr := *r
		rr.RemoteAddr = "203.0.113." + strconv.Itoa(i%250) + ":5000"
		rr.Body = readCloser{bytes.NewReader(body)}
		rr.ContentLength = int64(len(body))
		w := httptest.NewRecorder()
		bb.b.ServeHTTP(w, &rr)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func BenchmarkParseBrowserBody(b *testing.B) {
	r := httptest.NewRequest(http.MethodPost, "/e?site=shop", nil)
	r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	raw := []byte(benchBeacon)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseBrowserBody(r, raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIsBot(b *testing.B) {
	uas := []string{testUA,
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if IsBot(uas[i%len(uas)]) {
			b.Fatal("a browser is a bot")
		}
	}
}

// loadBeacon is the body bench/loadgen sends in mode e: consent granted,
// the page on the site's origin, a referrer.
const loadBeacon = `{"consent":"granted","events":[{"id":"bench-000-000000000001-0","name":"PageView","ref":"https://www.google.com/","type":"event","url":"https://www.example.co.uk/products/shoes?color=red"}],"fbc":"","fbp":"fb.1.1596403881668.1116446470","lang":"en-US","v":1,"vid":"00000000000000000000000000000001"}`

// BenchmarkBrowserHandlerProxied is the request of `bench/cmd/load -mode e`:
// a third-party relay (its host is an address, so no cookies are set)
// behind a trusted proxy that reports a new client address each time.
func BenchmarkBrowserHandlerProxied(b *testing.B) {
	bb := setupBrowser(b)
	bb.b.OnCapture = nil
	bb.b.PerIPRate = 0 // the default limit, as served
	bb.b.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	bb.b.Pipeline = pipeline.New(nopOutbox{bb.db})
	body := []byte(loadBeacon)
	r := httptest.NewRequest(http.MethodPost, "/e?site=shop", nil)
	r.Host = "127.0.0.1:8080"
	r.RemoteAddr = "127.0.0.1:5000"
	r.Header.Set("Origin", testOrigin)
	r.Header.Set("Referer", testOrigin+"/")
	r.Header.Set("User-Agent", testUA)
	r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	xff := make([]string, 1<<16)
	for i := range xff {
		xff[i] = "198.18." + strconv.Itoa(i>>8) + "." + strconv.Itoa(i&0xff)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Header["X-Forwarded-For"] = xff[i&0xffff : i&0xffff+1]
		rr := *r
		rr.Body = readCloser{bytes.NewReader(body)}
		rr.ContentLength = int64(len(body))
		w := httptest.NewRecorder()
		bb.b.ServeHTTP(w, &rr)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
