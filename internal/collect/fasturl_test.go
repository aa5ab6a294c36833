package collect

import (
	"net/url"
	"regexp"
	"testing"
)

var urlCorpus = []string{
	testOrigin, testPage, "https://www.example.co.uk/", "http://127.0.0.1:8080", "http://localhost:3000/a?b=c#d",
	"https://WWW.Example.CO.UK.", "https://shop.example.com/?fbclid=IwAR2F4", "https://x.example?q", "https://x.example#f",
	"https://x.example:", "https://x.example:443/", "https://:443", "https://", "http:///path", "HTTPS://x.example",
	"https://x.example/a b", "https://x.example/a%20b", "https://x.example/a%zz", "https://x.example/\x7f",
	"https://x.example/\t", "https://x_y.example/", "https://[::1]:8080/", "https://user:pw@x.example/",
	"https://x.example:80:80/", "https://x.example:8a/", "https://x.example/é", "ftp://x.example/", "null", "",
	"https://x.example\\@evil.example/", "https://a..b/", "https://-/", "https://x.example/?a=%zz", "https://x.example/#%zz",
	"https://x.example/path:with:colons", "//x.example/", "https:x.example", "https://x.example/{}|^`",
}

// TestSimpleHTTPURL: what simpleHTTPURL takes, url.Parse takes with the
// same scheme and host; originOf and absoluteHTTP answer as their
// url.Parse versions.
func TestSimpleHTTPURL(t *testing.T) {
	t.Parallel()
	for _, s := range urlCorpus {
		checkSimpleHTTPURL(t, s)
	}
	for _, s := range []string{testOrigin, testPage, "http://127.0.0.1:8080", "https://x.example:/p?q#f"} {
		if _, _, ok := simpleHTTPURL(s); !ok {
			t.Errorf("simpleHTTPURL(%q) refused", s)
		}
	}
	if o, h := originOf("https://WWW.Example.CO.UK.:8443/p"); o != "https://WWW.Example.CO.UK.:8443" || h != "www.example.co.uk" {
		t.Errorf("originOf = %q, %q", o, h)
	}
}

func checkSimpleHTTPURL(t *testing.T, s string) {
	t.Helper()
	if scheme, hostport, ok := simpleHTTPURL(s); ok {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != scheme || u.Host != hostport {
			t.Fatalf("simpleHTTPURL(%q) = %q, %q; url.Parse: %v", s, scheme, hostport, err)
		}
	}
	o, h := originOf(s)
	if wo, wh := slowOriginOf(s); o != wo || h != wh {
		t.Fatalf("originOf(%q) = %q, %q, want %q, %q", s, o, h, wo, wh)
	}
	if got, want := absoluteHTTP(s), slowAbsoluteHTTP(s); got != want {
		t.Fatalf("absoluteHTTP(%q) = %v, want %v", s, got, want)
	}
}

func FuzzSimpleHTTPURL(f *testing.F) {
	for _, s := range urlCorpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkSimpleHTTPURL(t, s) })
}

var queryCorpus = []string{
	"site=shop", "", "site=", "site", "a=1&site=shop&site=other", "site=a%20b", "site=a+b", "si%74e=x", "s+ite=x&site=y",
	"site=%zz&site=shop", "a;b=1&site=shop", "site=shop;x", "&&site=shop&", "a=%zz&site=shop", "a=b=c&site=d=e",
	"x=1&x=1&x=1&x=1&x=1&x=1&x=1&x=1&x=1&x=1&x=1&x=1&x=1&x=1&x=1&x=1&x=1&site=many",
}

// TestQueryParam: queryParam answers as url.ParseQuery then Get.
func TestQueryParam(t *testing.T) {
	t.Parallel()
	for _, q := range queryCorpus {
		if got, want := queryParam(q, "site"), slowQueryParam(q, "site"); got != want {
			t.Errorf("queryParam(%q) = %q, want %q", q, got, want)
		}
	}
	if got := queryParam("v=1&site=shop", "site"); got != "shop" {
		t.Errorf("queryParam = %q", got)
	}
}

func FuzzQueryParam(f *testing.F) {
	for _, q := range queryCorpus {
		f.Add(q, "site")
	}
	f.Fuzz(func(t *testing.T, q, key string) {
		if got, want := queryParam(q, key), slowQueryParam(q, key); got != want {
			t.Fatalf("queryParam(%q, %q) = %q, want %q", q, key, got, want)
		}
	})
}

// FuzzValidVisitorID: validVisitorID is the tag's /^[\w-]{16,64}$/.
func FuzzValidVisitorID(f *testing.F) {
	re := regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)
	for _, s := range []string{"1234567890123456789", "0123456789abcdef", "0123456789abcde", "0123456789abcdef\n",
		"vvvvvvvvvvvvvvvvvvvv", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "0123456789abcdef.", "é123456789abcdef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validVisitorID(s), re.MatchString(s); got != want {
			t.Fatalf("validVisitorID(%q) = %v, want %v", s, got, want)
		}
	})
}
