package fbcookie_test

import (
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/fbcookie"
	"github.com/capirelay/capirelay/internal/metarules"
)

// FuzzParseEnvelope checks the envelope rules on arbitrary strings: no panic;
// anything accepted has 4 or 5 segments, starts "fb.", has digit index and
// time segments and a non-empty payload without a dot, and ingest, which
// judges events with metarules.IsCookieValue, takes it.
func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{
		"fb.1.1596403881668.1116446470", "fb.2.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB",
		"fb.1.1596403881668.1116446470.AQ", "fb.1.1596403881668.1116446470.AQYBAAAA", "FB.1.1.1", " fb.1.1.1",
		"fb.1.1.", "fb..1.1", "fb.1.1.1.1.1", "fb.99999999999999999999.1.1", "fb.1.99999999999999999999.x", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := fbcookie.Parse(s)
		if ok != fbcookie.Valid(s) {
			t.Fatalf("Parse and Valid disagree on %q", s)
		}
		if ok && !metarules.IsCookieValue(s) {
			t.Fatalf("Parse accepted %q, which ingest refuses", s)
		}
		if !ok {
			return
		}
		parts := strings.Split(s, ".")
		if (len(parts) != 4 && len(parts) != 5) || parts[0] != "fb" {
			t.Fatalf("Parse accepted %q", s)
		}
		if v.Payload == "" || v.Payload != parts[3] || strings.Contains(v.Payload, ".") {
			t.Fatalf("Parse(%q).Payload = %q", s, v.Payload)
		}
		if v.SubdomainIndex < 0 || v.CreationTime < 0 {
			t.Fatalf("Parse(%q) = %+v: negative numbers", s, v)
		}
	})
}

// FuzzResolve: whatever the browser sends, the values to use and store are
// valid cookies, and a valid incoming _fbp is kept byte for byte.
func FuzzResolve(f *testing.F) {
	f.Add("fb.1.1596403881668.1116446470", "", "IwAR2F4", "https://shop.example.com/?fbclid=abc", "")
	f.Add("garbage", "fb.1.1.old", "new", "", "https://l.facebook.com/?fbclid=x.y")
	f.Add("", "", "", "::::", "%zz")
	f.Fuzz(func(t *testing.T, fbp, fbc, click, pageURL, ref string) {
		now := time.Unix(1_760_000_000, 0)
		if id := fbcookie.ClickID(pageURL, ref); id != "" && !fbcookie.UsableClickID(id) {
			t.Fatalf("ClickID(%q, %q) = unusable %q", pageURL, ref, id)
		}
		st := fbcookie.Resolve(now, 1, fbp, fbc, click)
		if !fbcookie.Valid(st.Fbp) {
			t.Fatalf("Resolve gave an invalid _fbp %q", st.Fbp)
		}
		if st.Fbc != "" && !fbcookie.Valid(st.Fbc) {
			t.Fatalf("Resolve gave an invalid _fbc %q", st.Fbc)
		}
		if fbcookie.Valid(fbp) && st.Fbp != fbp {
			t.Fatalf("valid _fbp %q replaced by %q", fbp, st.Fbp)
		}
		_ = fbcookie.CookieDomain(pageURL, []string{ref})
	})
}
