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

// setBrowserCookie sets the cookie as visit.setCookies does, one.
func setBrowserCookie(w http.ResponseWriter, name, value string, d fbcookie.Domain, maxAge time.Duration, secure bool) {
	if b := appendBrowserCookie(nil, name, value, d, maxAge, secure); len(b) > 0 {
		w.Header().Add("Set-Cookie", string(b))
	}
}

// checkSetBrowserCookie: appendBrowserCookie gives the Set-Cookie header
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

// checkCookieValue: cookieValue answers as http.Request.Cookie.
func checkCookieValue(t *testing.T, lines []string, name string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/e", nil)
	for _, l := range lines {
		r.Header.Add("Cookie", l)
	}
	want := ""
	if c, err := r.Cookie(name); err == nil {
		want = c.Value
	}
	if got := cookieValue(r, name); got != want {
		t.Fatalf("cookieValue(%q, %q) = %q, want %q", lines, name, got, want)
	}
}

var cookieLines = []string{"", "_fbp=fb.1.2.3", "_ga=GA1.1.1.1; _fbp=fb.1.2.3", `_fbc="fb.1.2.x"`, "_fbp=a b", "_fbp=; _fbp=2",
	" _cr_vid = 0123456789abcdef ", "x_fbp=1", "_fbpx=1; _fbp=2", "_fbp", "=_fbp", "_fbp=1;_fbc=2;_cr_vid=3"}

func TestCookieValue(t *testing.T) {
	for _, l := range cookieLines {
		for _, name := range []string{fbcookie.FbpName, fbcookie.FbcName, VisitorCookie} {
			checkCookieValue(t, []string{l}, name)
			checkCookieValue(t, []string{"_ga=1", l}, name)
		}
	}
	checkCookieValue(t, nil, fbcookie.FbpName)
}

func FuzzCookieValue(f *testing.F) {
	for _, l := range cookieLines {
		f.Add(l, "_ga=1", uint8(0))
	}
	f.Fuzz(func(t *testing.T, l1, l2 string, n uint8) {
		checkCookieValue(t, []string{l1, l2}, []string{fbcookie.FbpName, fbcookie.FbcName, VisitorCookie}[int(n)%3])
	})
}

// TestSetCookies: visit.setCookies writes the Set-Cookie headers
// http.SetCookie writes for the three cookies, after any already set.
func TestSetCookies(t *testing.T) {
	prev := log.Writer()
	log.SetOutput(io.Discard)
	t.Cleanup(func() { log.SetOutput(prev) })
	for _, c := range cookieCorpus {
		for _, fbc := range []string{"", "fb.1.1.click", c.value} {
			for _, secure := range []bool{false, true} {
				v := &visit{cookies: true, domain: fbcookie.Domain{Name: c.domain, HostOnly: c.hostOnly}, secure: secure,
					fbp: c.value, fbc: fbc, vid: "0123456789abcdef0123456789abcdef"}
				got, want := httptest.NewRecorder(), httptest.NewRecorder()
				got.Header().Add("Set-Cookie", "other=1")
				want.Header().Add("Set-Cookie", "other=1")
				v.setCookies(got)
				http.SetCookie(want, browserCookie(fbcookie.FbpName, v.fbp, v.domain, fbcookie.MaxAge, secure))
				if fbc != "" {
					http.SetCookie(want, browserCookie(fbcookie.FbcName, v.fbc, v.domain, fbcookie.MaxAge, secure))
				}
				http.SetCookie(want, browserCookie(VisitorCookie, v.vid, v.domain, VisitorMaxAge, secure))
				if g, w := got.Header()["Set-Cookie"], want.Header()["Set-Cookie"]; !reflect.DeepEqual(g, w) {
					t.Fatalf("setCookies(%+v) = %q, want %q", v, g, w)
				}
			}
		}
	}
	w := httptest.NewRecorder()
	(&visit{}).setCookies(w)
	if len(w.Header()) != 0 {
		t.Errorf("no cookies decided, but headers %v", w.Header())
	}
}
