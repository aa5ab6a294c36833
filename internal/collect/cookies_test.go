package collect

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/fbcookie"
)

// checkSetBrowserCookie: setBrowserCookie writes the Set-Cookie header
// http.SetCookie writes for the same cookie.
func checkSetBrowserCookie(t *testing.T, name, value string, d fbcookie.Domain, maxAge time.Duration, secure bool) {
	t.Helper()
	got, want := httptest.NewRecorder(), httptest.NewRecorder()
	setBrowserCookie(got, name, value, d, maxAge, secure)
	http.SetCookie(want, browserCookie(name, value, d, maxAge, secure))
	if g, w := got.Header()["Set-Cookie"], want.Header()["Set-Cookie"]; !reflect.DeepEqual(g, w) {
		t.Fatalf("setBrowserCookie(%q, %q, %+v, %v, %v) = %q, want %q", name, value, d, maxAge, secure, g, w)
	}
}

var cookieCorpus = []struct {
	value, domain string
	hostOnly      bool
}{
	{"fb.2.1700000000000.1234567890", "example.co.uk", false},
	{"fb.1.1700000000000.IwAR2XyZ_mixedCASE", "www.example.co.uk", true},
	{"0123456789abcdef0123456789abcdef", "", true},
	{"", "", false}, {"a b", "example.com", false}, {"a,b", "example.com", false}, {`a"b`, "x.example", false},
	{"a;b", ".example.com", false}, {"a\\b", "example.com", false}, {"é", "example.com", false}, {"a\x7f", "example.com", false},
	{"x", "127.0.0.1", false}, {"x", "::1", false}, {"x", "-bad.example", false}, {"x", "a..b", false}, {"x", "a_b.example", false},
	{"x", "123.example", false}, {"x", "123", false}, {"x", ".", false}, {"x", "localhost", false}, {"x", "example.com.", false},
}

func TestSetBrowserCookie(t *testing.T) {
	prev := log.Writer()
	log.SetOutput(io.Discard) // http.SetCookie warns of the bytes it drops
	t.Cleanup(func() { log.SetOutput(prev) })
	for _, c := range cookieCorpus {
		for _, name := range []string{fbcookie.FbpName, fbcookie.FbcName, VisitorCookie} {
			for _, secure := range []bool{false, true} {
				for _, age := range []time.Duration{fbcookie.MaxAge, VisitorMaxAge, time.Second, 0, -time.Second, 999 * time.Millisecond} {
					checkSetBrowserCookie(t, name, c.value, fbcookie.Domain{Name: c.domain, HostOnly: c.hostOnly}, age, secure)
				}
			}
		}
	}
	w := httptest.NewRecorder()
	setBrowserCookie(w, fbcookie.FbpName, "fb.2.1.2", fbcookie.Domain{Name: "example.co.uk", Index: 2}, 90*24*time.Hour, true)
	if got, want := w.Header().Get("Set-Cookie"), "_fbp=fb.2.1.2; Path=/; Domain=example.co.uk; Max-Age=7776000; Secure; SameSite=Lax"; got != want {
		t.Errorf("Set-Cookie = %q, want %q", got, want)
	}
}

func FuzzSetBrowserCookie(f *testing.F) {
	prev := log.Writer()
	log.SetOutput(io.Discard)
	f.Cleanup(func() { log.SetOutput(prev) })
	for _, c := range cookieCorpus {
		f.Add(uint8(0), c.value, c.domain, c.hostOnly, int64(fbcookie.MaxAge), true)
	}
	f.Fuzz(func(t *testing.T, n uint8, value, domain string, hostOnly bool, maxAge int64, secure bool) {
		name := []string{fbcookie.FbpName, fbcookie.FbcName, VisitorCookie, "bad name", ""}[int(n)%5]
		checkSetBrowserCookie(t, name, value, fbcookie.Domain{Name: domain, HostOnly: hostOnly}, time.Duration(maxAge), secure)
	})
}
