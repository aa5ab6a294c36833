package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/capirelay/capirelay/internal/browsertest"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/sitecfg"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/tag"
)

// syncBuffer is a log sink the relay's goroutines may share.
type syncBuffer = sharedtest.Buffer

// proxiedShop is the whole relay behind a reverse proxy that sets
// X-Forwarded-For (and says https), as the README's install has it.
type proxiedShop struct {
	app    *App
	site   *store.Site
	relay  *httptest.Server // the relay itself
	base   string           // the proxy, as Chromium reaches it
	logs   *syncBuffer
	mu     sync.Mutex
	setCks []string // Set-Cookie of every /e answer
}

func newProxiedShop(t *testing.T, trusted []netip.Prefix) *proxiedShop {
	t.Helper()
	ps := &proxiedShop{logs: &syncBuffer{}}
	cfg := config.Config{DataDir: t.TempDir(), GraphURL: "http://127.0.0.1:1", BatchLinger: 50 * time.Millisecond,
		AdminPassword: "proxy-test-password", TrustedProxies: trusted}
	a, err := New(context.Background(), cfg, slog.New(slog.NewJSONHandler(ps.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := CreateSite(context.Background(), a.Store, sitecfg.Update{Name: new("Shop"), Domains: &[]string{"shop.co.uk"}})
	if err != nil {
		t.Fatal(err)
	}
	ps.app, ps.site = a, s
	a.Start(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /landing", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>`+tag.Snippet("", s.Key)+`</head><body>Shop</body></html>`)
	})
	mux.Handle("/", a.Handler())
	ps.relay = httptest.NewServer(mux)
	target, _ := url.Parse(ps.relay.URL)
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			pr.Out.Header.Set("X-Forwarded-Proto", "https") // TLS ends at the proxy
		},
		ModifyResponse: func(res *http.Response) error {
			if res.Request.URL.Path == "/e" {
				ps.mu.Lock()
				ps.setCks = append(ps.setCks, res.Header.Values("Set-Cookie")...)
				ps.mu.Unlock()
			}
			return nil
		},
	})
	t.Cleanup(func() {
		proxy.Close()
		ps.relay.Close()
		a.Shutdown(context.Background())
	})
	u, _ := url.Parse(proxy.URL)
	ps.base = "http://www.shop.co.uk:" + u.Port()
	return ps
}

// visit loads the landing page in Chromium and waits for its PageView and
// a second event.
func (ps *proxiedShop) visit(t *testing.T) {
	t.Helper()
	ctx := browsertest.New(t, browsertest.Options{HostRules: shopHostRules})
	if err := chromedp.Do(ctx, chromedp.Navigate(ps.base+"/landing")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`capirelay('track', 'ViewContent')`)); err != nil {
		t.Fatal(err)
	}
	sharedtest.WaitFor(t, 15*time.Second, "PageView and ViewContent", func() bool {
		items, err := ps.app.Store.Items(context.Background(), ps.site.Key, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(items) >= 2
	})
}

// installPage logs into the dashboard and returns the site's install page.
func (ps *proxiedShop) installPage(t *testing.T) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	res, err := c.PostForm(ps.relay.URL+"/admin/login", url.Values{"password": {"proxy-test-password"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	res, err = c.Get(ps.relay.URL + "/admin/sites/" + ps.site.Key + "/install")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("install page: status %d", res.StatusCode)
	}
	return string(b)
}

// TestChromeBehindUntrustedProxy: the README's install (a reverse proxy)
// without CAPIRELAY_TRUSTED_PROXIES: the relay says so once in its log and
// on the install checklist, with what to set and why the same-origin path
// beats a subdomain. Trusted, the proxy's address and https are believed:
// no warning, the visitor's address, Secure cookies.
func TestChromeBehindUntrustedProxy(t *testing.T) {
	t.Run("untrusted", func(t *testing.T) {
		ps := newProxiedShop(t, nil)
		ps.visit(t)
		if n := strings.Count(ps.logs.String(), "X-Forwarded-For from an untrusted peer"); n != 1 {
			t.Errorf("%d warnings in the log, want 1:\n%s", n, ps.logs.String())
		}
		page := ps.installPage(t)
		for _, want := range []string{"X-Forwarded-For arrives from 127.0.0.1", "(e.g. 127.0.0.1/32)", "not a subdomain", "Safari 16.4"} {
			if !strings.Contains(page, want) {
				t.Errorf("install page lacks %q", want)
			}
		}
		ps.mu.Lock()
		defer ps.mu.Unlock()
		for _, c := range ps.setCks {
			if strings.Contains(c, "Secure") {
				t.Errorf("an untrusted proxy's X-Forwarded-Proto was believed: %s", c)
			}
		}
	})
	t.Run("trusted", func(t *testing.T) {
		ps := newProxiedShop(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
		ps.visit(t)
		if strings.Contains(ps.logs.String(), "untrusted peer") {
			t.Errorf("a trusted proxy was warned about:\n%s", ps.logs.String())
		}
		if page := ps.installPage(t); strings.Contains(page, "X-Forwarded-For arrives from") {
			t.Error("install page warns about a trusted proxy")
		}
		ps.mu.Lock()
		defer ps.mu.Unlock()
		if len(ps.setCks) == 0 {
			t.Fatal("/e set no cookie")
		}
		for _, c := range ps.setCks {
			if !strings.Contains(c, "; Secure") {
				t.Errorf("cookie behind a trusted TLS proxy is not Secure: %s", c)
			}
		}
	})
}
