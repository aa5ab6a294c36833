package fbcookie

import (
	"encoding/base64"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/publicsuffix"
)

// The reference versions below are Parse, CookieDomain and ClickID as they
// were written first (strings.Split, netip.ParseAddr on every host, url.Parse
// on every URL); the fast versions must answer exactly as they do.

func refParse(s string) (v Value, ok bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 && len(parts) != 5 {
		return Value{}, false
	}
	if parts[0] != "fb" || !digits(parts[1]) || !digits(parts[2]) || parts[3] == "" {
		return Value{}, false
	}
	if len(parts) == 5 && !refValidAppendix(parts[4]) {
		return Value{}, false
	}
	idx, err := strconv.Atoi(parts[1])
	if err != nil {
		return Value{}, false
	}
	ts, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return Value{}, false
	}
	v = Value{SubdomainIndex: idx, CreationTime: ts, Payload: parts[3]}
	if len(parts) == 5 {
		v.Appendix = parts[4]
	}
	return v, true
}

func refValidAppendix(a string) bool {
	if legacyTokens[a] {
		return true
	}
	if len(a) != 8 {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	b, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(b) != 6 {
		return false
	}
	return b[0] == 0x01 && b[1] >= 1 && b[1] <= 6
}

func refCookieDomain(host string, configured []string) Domain {
	h := bareHost(host)
	if h == "" {
		return Domain{HostOnly: true}
	}
	if _, err := netip.ParseAddr(h); err == nil || h == "localhost" || !strings.Contains(h, ".") {
		return Domain{Name: h, HostOnly: true}
	}
	for _, c := range configured {
		d := bareHost(c)
		if d == "" || !strings.Contains(d, ".") {
			continue
		}
		if ps, _ := publicsuffix.PublicSuffix(d); ps == d {
			continue
		}
		if h == d || strings.HasSuffix(h, "."+d) {
			return Domain{Name: d, Index: strings.Count(d, ".")}
		}
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(h)
	if err != nil {
		return Domain{Name: h, HostOnly: true, Index: strings.Count(h, ".")}
	}
	return Domain{Name: d, Index: strings.Count(d, ".")}
}

func refClickID(pageURL, referrer string) string {
	for _, raw := range []string{pageURL, referrer} {
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil && len(q["fbclid"]) == 0 {
			continue
		}
		if vs := q["fbclid"]; len(vs) > 0 && UsableClickID(vs[0]) {
			return vs[0]
		}
	}
	return ""
}

var refCorpus = []string{
	"fb.1.1596403881668.1116446470", "fb.1.123.abc.BA", "fb.1.1.x.AQQCAQMC", "fb.1.1.x.AQQCAQM", "fb.1.1.x.AQQCAQMCA",
	"fb..1.x", "a.b.c.d.e", "fb.1.2.x.", "fb.1.2.x.y.z", "fb.1.2..", "fb.1.2", "fb.", "fb", "", ".fb.1.2.x",
	"fb.99999999999999999999.1.x", "fb.1.99999999999999999999.x", "fb.1.1.x.AgQCAQMC", "fb.1.1.x.AQcCAQMC",
}

func checkParse(t *testing.T, s string) {
	t.Helper()
	v, ok := Parse(s)
	rv, rok := refParse(s)
	if v != rv || ok != rok {
		t.Fatalf("Parse(%q) = %+v, %v; the reference gives %+v, %v", s, v, ok, rv, rok)
	}
}

func TestParseMatchesReference(t *testing.T) {
	for _, s := range refCorpus {
		checkParse(t, s)
	}
}

func FuzzParseMatchesReference(f *testing.F) {
	for _, s := range refCorpus {
		f.Add(s)
	}
	f.Fuzz(checkParse)
}

var hostCorpus = []string{
	"www.example.com", "example.co.uk", "shop.example.co.uk:443", "127.0.0.1:8080", "[::1]:80", "::1", "fe80::1%eth0",
	"1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.4%x", "localhost", "intranet", "co.uk", "github.io", "a.b.github.io",
	"WWW.Example.COM.", "", " ", "https://x.example.com/p?q#f", "123.example", "1e.2.3.4", "xn--bcher-kva.example",
}

func checkCookieDomain(t *testing.T, host string, configured []string) {
	t.Helper()
	if got, want := CookieDomain(host, configured), refCookieDomain(host, configured); got != want {
		t.Fatalf("CookieDomain(%q, %q) = %+v; the reference gives %+v", host, configured, got, want)
	}
}

func TestCookieDomainMatchesReference(t *testing.T) {
	for _, h := range hostCorpus {
		for _, c := range hostCorpus {
			checkCookieDomain(t, h, []string{c})
			checkCookieDomain(t, h, []string{c, "example.com"})
		}
		checkCookieDomain(t, h, nil)
	}
}

func FuzzCookieDomainMatchesReference(f *testing.F) {
	for _, h := range hostCorpus {
		f.Add(h, "example.co.uk", "shop.example.com")
	}
	f.Fuzz(func(t *testing.T, host, c1, c2 string) {
		checkCookieDomain(t, host, []string{c1, c2})
	})
}

var urlCorpus = []string{
	"", "https://shop.example.com/p?fbclid=abc", "https://shop.example.com/p?x=1&fbclid=a.b", "https://x/?fb%63lid=enc",
	"https://x/?fbclid=%41b", "https://x/?fbclid=%zz", "https://x/?a=%zz&fbclid=ok", "https://x/#fbclid=frag",
	"https://www.google.com/", "::::", "%zz", "https://x/?fbclid=&fbclid=2", "https://x/?fbclid=a+b", "https://x/?;fbclid=1",
	"http://[::1/?fbclid=1", "https://x/?FBCLID=1",
}

func checkClickID(t *testing.T, page, ref string) {
	t.Helper()
	if got, want := ClickID(page, ref), refClickID(page, ref); got != want {
		t.Fatalf("ClickID(%q, %q) = %q; the reference gives %q", page, ref, got, want)
	}
}

func TestClickIDMatchesReference(t *testing.T) {
	for _, p := range urlCorpus {
		for _, r := range urlCorpus {
			checkClickID(t, p, r)
		}
	}
}

func FuzzClickIDMatchesReference(f *testing.F) {
	for _, p := range urlCorpus {
		f.Add(p, "https://l.facebook.com/?fbclid=x")
	}
	f.Fuzz(checkClickID)
}

func refResolve(now time.Time, idx int, fbp, fbc, clickID string) State {
	var st State
	if Valid(fbp) {
		st.Fbp = fbp
	} else {
		st.Fbp, st.FbpNew = NewFbp(now, idx), true
	}
	old, valid := refParse(fbc)
	switch {
	case UsableClickID(clickID) && (!valid || old.Payload != clickID):
		st.Fbc, st.FbcNew = "fb."+strconv.Itoa(idx)+"."+strconv.FormatInt(now.UnixMilli(), 10)+"."+clickID, true
	case valid:
		st.Fbc = fbc
	}
	return st
}

// TestResolveMatchesReference: Resolve and ResolveFbc give the _fbc the
// first Resolve gave (the minted _fbp is random).
func TestResolveMatchesReference(t *testing.T) {
	at := time.Unix(1_760_000_000, 0)
	for _, fbp := range []string{"", "fb.1.1.1", "junk"} {
		for _, fbc := range []string{"", "fb.1.1.abc", "fb.2.1.new", "fb.2.1.new.AQ", "garbage"} {
			for _, click := range []string{"", "abc", "new", "a.b"} {
				st, want := Resolve(at, 2, fbp, fbc, click), refResolve(at, 2, fbp, fbc, click)
				if st.Fbc != want.Fbc || st.FbcNew != want.FbcNew || st.FbpNew != want.FbpNew || !st.FbpNew && st.Fbp != want.Fbp {
					t.Errorf("Resolve(%q, %q, %q) = %+v; the reference gives %+v", fbp, fbc, click, st, want)
				}
				got, minted := ResolveFbc(at, 2, fbc, click)
				if got != want.Fbc || minted != want.FbcNew {
					t.Errorf("ResolveFbc(%q, %q) = %q, %v; want %q, %v", fbc, click, got, minted, want.Fbc, want.FbcNew)
				}
			}
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !Valid("fb.1.1596403881668.1116446470") {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkCookieDomain(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		CookieDomain("www.shop.example.com", []string{"shop.example.com"})
	}
}

// refCovers is the test /e made inline before Domain.Covers.
func refCovers(d Domain, pageHost string) bool {
	return pageHost != "" && d.Name != "" && (pageHost == d.Name || !d.HostOnly && strings.HasSuffix(pageHost, "."+d.Name))
}

func checkFirstPartyDomain(t *testing.T, host, pageHost string, configured []string) {
	t.Helper()
	d, ok := FirstPartyDomain(host, pageHost, configured)
	want := refCookieDomain(host, configured)
	wantOK := refCovers(want, pageHost)
	if ok != wantOK || ok && d != want || want.Covers(pageHost) != wantOK {
		t.Fatalf("FirstPartyDomain(%q, %q, %q) = %+v, %v; want %+v, %v", host, pageHost, configured, d, ok, want, wantOK)
	}
}

var pageHosts = []string{"", "example.com", "www.example.com", "shop.example.co.uk", "example.co.uk", "co.uk", "localhost",
	"127.0.0.1", "::1", "a.b.github.io", "myshop.github.io", "github.io", "www.example.com.", "x.localhost", "1.0.0.127"}

func TestFirstPartyDomainMatchesReference(t *testing.T) {
	for _, h := range hostCorpus {
		for _, p := range append(pageHosts, hostCorpus...) {
			checkFirstPartyDomain(t, h, p, nil)
			checkFirstPartyDomain(t, h, p, []string{"example.com"})
			checkFirstPartyDomain(t, h, p, []string{"github.io", "myshop.github.io", "co.uk", "shop.example.co.uk"})
		}
	}
}

func FuzzFirstPartyDomain(f *testing.F) {
	for _, h := range hostCorpus {
		f.Add(h, "www.example.com", "example.com")
		f.Add(h, h, "")
	}
	f.Fuzz(func(t *testing.T, host, pageHost, configured string) {
		checkFirstPartyDomain(t, host, pageHost, []string{configured})
	})
}

func TestIsPublicSuffixMemo(t *testing.T) {
	for range 2 { // the second time from the memo
		for d, want := range map[string]bool{"co.uk": true, "github.io": true, "example.co.uk": false, "com": true, "shop.example.com": false} {
			if got := IsPublicSuffix(d); got != want {
				t.Errorf("IsPublicSuffix(%q) = %v, want %v", d, got, want)
			}
		}
	}
}

func BenchmarkFirstPartyDomain(b *testing.B) {
	configured := []string{"example.co.uk"}
	for _, tc := range []struct{ name, host, page string }{
		{"first-party", "t.example.co.uk", "www.example.co.uk"},
		{"third-party", "relay.example.net", "www.example.co.uk"},
		{"address", "127.0.0.1:8080", "www.example.co.uk"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				FirstPartyDomain(tc.host, tc.page, configured)
			}
		})
	}
}
