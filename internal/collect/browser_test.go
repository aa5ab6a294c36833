package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"

	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

const (
	testUA     = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	testOrigin = "https://www.example.co.uk"
	testPage   = "https://www.example.co.uk/landing?fbclid=IwAR2XyZ_mixedCASE"
)

// browserBundle is a /e handler on a real SQLite store.
type browserBundle struct {
	b    *Browser
	db   *sqlite.DB
	site *store.Site

	mu       sync.Mutex
	captures []Capture
}

func mustOpenStore(tb testing.TB) *sqlite.DB { return storetest.OpenSQLite(tb) }

func mustCreateSite(tb testing.TB, db *sqlite.DB, key, consent string, domains ...string) *store.Site {
	tb.Helper()
	s := &store.Site{Key: key, Name: key, Domains: domains, PixelID: "1234567890", APIKeyHash: "hash-" + key, Consent: consent, PartialLeads: true}
	store.SiteDefaults(s)
	if err := db.CreateSite(context.Background(), s); err != nil {
		tb.Fatal(err)
	}
	return s
}

func setupBrowser(tb testing.TB) *browserBundle {
	tb.Helper()
	db := mustOpenStore(tb)
	bb := &browserBundle{db: db, site: mustCreateSite(tb, db, "shop", store.ConsentNone, "example.co.uk")}
	mustCreateSite(tb, db, "eu", store.ConsentRequired, "eu-shop.example")
	bb.b = &Browser{
		Sites: db, Pipeline: pipeline.New(db), Metrics: metrics.New(), PerIPRate: rate.Inf,
		TrustedProxies: nil,
		OnCapture: func(ctx context.Context, site *store.Site, c Capture) error {
			bb.mu.Lock()
			defer bb.mu.Unlock()
			bb.captures = append(bb.captures, c)
			return nil
		},
	}
	return bb
}

type req struct {
	method, target, host, origin, ua, body, contentType string
	remote                                              string
	header                                              map[string]string
}

func (bb *browserBundle) do(tb testing.TB, q req) *http.Response {
	tb.Helper()
	if q.method == "" {
		q.method = http.MethodPost
	}
	if q.target == "" {
		q.target = "/e?site=shop"
	}
	r := httptest.NewRequest(q.method, q.target, strings.NewReader(q.body))
	r.Host = q.host
	if r.Host == "" {
		r.Host = "t.example.co.uk"
	}
	r.RemoteAddr = q.remote
	if r.RemoteAddr == "" {
		r.RemoteAddr = "203.0.113.7:50000"
	}
	if q.origin != "-" {
		r.Header.Set("Origin", cmp(q.origin, testOrigin))
	}
	r.Header.Set("User-Agent", cmp(q.ua, testUA))
	r.Header.Set("Content-Type", cmp(q.contentType, "text/plain;charset=UTF-8"))
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	bb.b.ServeHTTP(w, r)
	return w.Result()
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (bb *browserBundle) items(tb testing.TB) []store.Item {
	tb.Helper()
	items, err := bb.db.Items(context.Background(), "", "", 100)
	if err != nil {
		tb.Fatal(err)
	}
	return items
}

func pageView(extra string) string {
	return `{"v":1,"vid":"1234567890123456789","lang":"en-GB","events":[{"type":"event","name":"PageView","id":"pv-1","url":"` + testPage + `","ref":""` + extra + `}]}`
}

func TestBrowserRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		q      req
		status int
		field  string
	}{
		{"unknown site", req{target: "/e?site=nope", body: pageView("")}, 404, "site"},
		{"missing site", req{target: "/e", body: pageView("")}, 400, "site"},
		{"wrong origin", req{origin: "https://evil.example", body: pageView("")}, 403, "Origin"},
		{"look-alike origin", req{origin: "https://notexample.co.uk", body: pageView("")}, 403, "Origin"},
		{"no origin or referer", req{origin: "-", body: pageView("")}, 403, "Origin"},
		{"oversized", req{body: `{"events":[{"name":"` + strings.Repeat("x", MaxBrowserBody) + `"}]}`}, 413, "body"},
		{"name not a string", req{body: `{"events":[{"name":5,"url":"` + testPage + `"}]}`}, 400, "events[0].name"},
		{"second event's name not a string", req{body: `{"events":[{"name":"PageView"},{"name":true}]}`}, 400, "events[1].name"},
		{"user value not a string", req{body: pageView(`,"user":{"em":1}`)}, 400, "events[0].user"},
		{"url not a string", req{body: `{"url":5,"events":[{"name":"PageView"}]}`}, 400, "url"},
		// The Origin is judged first, also when the body names the site
		// and is itself at fault.
		{"stranger, site in the body, no url", req{target: "/e", origin: "https://evil.example", body: `{"site":"shop","events":[{"name":"PageView"}]}`}, 403, "Origin"},
		{"stranger, site in the body, url not a string", req{target: "/e", origin: "https://evil.example", body: `{"site":"shop","url":5,"events":[{"name":"PageView"}]}`}, 403, "Origin"},
		{"stranger, site in the body, name not a string", req{target: "/e", origin: "https://evil.example", body: `{"site":"shop","events":[{"name":5}]}`}, 403, "Origin"},
		{"stranger, site in the body, not UTF-8", req{target: "/e", origin: "https://evil.example", body: "{\"site\":\"shop\",\"events\":[{\"name\":\"Lead\x80\"}]}"}, 403, "Origin"},
		{"stranger, site in the body, form body", req{target: "/e", origin: "https://evil.example", body: `{"site":"shop"}`, contentType: "application/x-www-form-urlencoded"}, 403, "Origin"},
		{"no origin, site in the body, malformed", req{target: "/e", origin: "-", body: `{"site":"shop","events":[`}, 403, "Origin"},
		{"no origin, oversized", req{target: "/e", origin: "-", body: strings.Repeat(" ", MaxBrowserBody+1)}, 403, "Origin"},
		{"site in the body, name not a string", req{target: "/e", body: `{"site":"shop","events":[{"name":5}]}`}, 400, "events[0].name"},
		{"malformed JSON", req{body: `{"events":[{"name":"PageView"`}, 400, ""},
		{"wrong JSON type", req{body: `{"events":"PageView"}`}, 400, "events"},
		{"form body", req{body: "a=b", contentType: "application/x-www-form-urlencoded"}, 415, "Content-Type"},
		{"no events", req{body: `{"events":[]}`}, 400, "events"},
		{"unknown user key", req{body: pageView(`,"user":{"password":"hunter2"}`)}, 400, "events[0].user.password"},
		{"capture of an unknown field", req{body: `{"events":[{"type":"capture","form":"f","fields":{"cvv":"123"}}]}`}, 400, "events[0].fields.cvv"},
		{"bad consent", req{body: `{"consent":"maybe","events":[{"name":"PageView","url":"` + testPage + `"}]}`}, 400, "consent"},
		{"bad type", req{body: `{"events":[{"type":"pixel","name":"PageView"}]}`}, 400, "events[0].type"},
		{"no name", req{body: `{"events":[{"type":"event","url":"` + testPage + `"}]}`}, 400, "events[0].name"},
		{"no page URL", req{body: `{"events":[{"name":"PageView"}]}`}, 400, "events[0].url"},
		{"custom_data not an object", req{body: pageView(`,"data":[1]`)}, 400, "events[0].data"},
		{"bad currency", req{body: pageView(`,"data":{"value":3,"currency":"XXX1"}`)}, 400, "events[0].custom_data.currency"},
		{"custom_data not UTF-8", req{body: pageView(",\"data\":{\"contents\":[{\"id\":\"\xff\xfe\"}]}")}, 400, "events[0].data.contents[0].id"},
		{"custom_data key not UTF-8", req{body: pageView(",\"data\":{\"\xc3(\":1}")}, 400, "events[0].data"},
		{"event name not UTF-8", req{body: pageView(",\"name\":\"Lead\x80\"")}, 400, "events[0].name"},
		{"custom_data too deep", req{body: pageView(`,"data":{"a":` + strings.Repeat("[", 12) + strings.Repeat("]", 12) + `}`)}, 400, "events[0].custom_data"},
		{"Purchase without value", req{body: pageView(`,"name":"Purchase"`)}, 400, "events[0].custom_data"},
		{"GET", req{method: "GET"}, 405, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bb := setupBrowser(t)
			res := bb.do(t, tc.q)
			if res.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.status)
			}
			var eb struct{ Error, Field string }
			if err := json.NewDecoder(res.Body).Decode(&eb); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if eb.Error == "" || eb.Field != tc.field {
				t.Errorf("error body = %+v, want a reason and field %q", eb, tc.field)
			}
			if res.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", res.Header.Get("Content-Type"))
			}
			if items := bb.items(t); len(items) != 0 {
				t.Errorf("stored %d items on a refused request", len(items))
			}
			if len(bb.captures) != 0 {
				t.Errorf("captured %d on a refused request", len(bb.captures))
			}
		})
	}
}

var (
	hex64  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fbpFmt = regexp.MustCompile(`^fb\.2\.\d{13}\.\d{10}$`)
)

func payload(tb testing.TB, it store.Item) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(it.Payload, &m); err != nil {
		tb.Fatalf("payload %s: %v", it.Payload, err)
	}
	return m
}

func TestBrowserPageView(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	res := bb.do(t, req{body: pageView("")})
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("status = %d, want 204", res.StatusCode)
	}
	// CORS: exactly the page's origin, with credentials.
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != testOrigin {
		t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, testOrigin)
	}
	if res.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("CORS headers = %v", res.Header)
	}
	items := bb.items(t)
	if len(items) != 1 {
		t.Fatalf("stored %d items, want 1", len(items))
	}
	it := items[0]
	if it.EventName != "PageView" || it.EventID != "pv-1" || it.Source != pipeline.SourceBrowser || it.VisitorID != "1234567890123456789" {
		t.Errorf("item = %+v", it)
	}
	p := payload(t, it)
	ud := p["user_data"].(map[string]any)
	if p["action_source"] != "website" || p["event_source_url"] != testPage {
		t.Errorf("payload = %s", it.Payload)
	}
	if ud["client_ip_address"] != "203.0.113.7" || ud["client_user_agent"] != testUA {
		t.Errorf("user_data = %v", ud)
	}
	fbp, _ := ud["fbp"].(string)
	fbc, _ := ud["fbc"].(string)
	if !fbpFmt.MatchString(fbp) {
		t.Errorf("fbp = %q, want minted fb.2.<ms>.<10 digits> (example.co.uk is index 2)", fbp)
	}
	if !regexp.MustCompile(`^fb\.2\.\d{13}\.IwAR2XyZ_mixedCASE$`).MatchString(fbc) {
		t.Errorf("fbc = %q, want the click id with its case", fbc)
	}
	ext, _ := ud["external_id"].([]any)
	if len(ext) != 1 || !hex64.MatchString(fmt.Sprint(ext[0])) {
		t.Errorf("external_id = %v, want the hashed visitor id", ud["external_id"])
	}

	// Cookies on the registrable domain of t.example.co.uk, for the tag too.
	cookies := map[string]*http.Cookie{}
	for _, c := range res.Cookies() {
		cookies[c.Name] = c
	}
	for name, maxAge := range map[string]int{"_fbp": 7776000, "_fbc": 7776000, "_cr_vid": 31536000} {
		c := cookies[name]
		if c == nil {
			t.Errorf("no Set-Cookie for %s", name)
			continue
		}
		if c.Domain != "example.co.uk" || c.Path != "/" || c.MaxAge != maxAge || c.SameSite != http.SameSiteLaxMode || c.HttpOnly || c.Secure {
			t.Errorf("Set-Cookie %s = %s", name, c.String())
		}
	}
	if cookies["_fbp"] != nil && cookies["_fbp"].Value != fbp || cookies["_fbc"] != nil && cookies["_fbc"].Value != fbc {
		t.Errorf("cookies %v differ from the stored fbp/fbc %q %q", res.Cookies(), fbp, fbc)
	}
	if cookies["_cr_vid"] != nil && cookies["_cr_vid"].Value != "1234567890123456789" {
		t.Errorf("_cr_vid = %q, want the tag's visitor id", cookies["_cr_vid"].Value)
	}
	if n := testutil.ToFloat64(bb.b.Metrics.Accepted.WithLabelValues("shop")); n != 1 {
		t.Errorf("accepted metric = %v, want 1", n)
	}
}

func TestBrowserCookies(t *testing.T) {
	t.Parallel()
	const validFbp = "fb.1.1700000000000.1234567890.AQQCAQMC" // 5 segments, kept byte for byte
	tests := []struct {
		name       string
		q          req
		wantDomain string // "" = no cookies
		wantSecure bool
		wantFbp    string
	}{
		{name: "body values win over cookies", q: req{body: `{"vid":"abcdefghijklmnop","fbp":"` + validFbp + `","events":[{"name":"PageView","url":"https://www.example.co.uk/"}]}`,
			header: map[string]string{"Cookie": "_fbp=fb.1.1.999; _cr_vid=zzzzzzzzzzzzzzzzzz"}}, wantDomain: "example.co.uk", wantFbp: validFbp},
		{name: "cookies fill what the body lacks", q: req{body: `{"events":[{"name":"PageView","url":"https://www.example.co.uk/"}]}`,
			header: map[string]string{"Cookie": "_fbp=" + validFbp}}, wantDomain: "example.co.uk", wantFbp: validFbp},
		{name: "https via trusted proxy is Secure", q: req{remote: "10.1.2.3:1", body: pageView(""),
			header: map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1"}}, wantDomain: "example.co.uk", wantSecure: true},
		{name: "X-Forwarded-Proto from a stranger is ignored", q: req{body: pageView(""),
			header: map[string]string{"X-Forwarded-Proto": "https"}}, wantDomain: "example.co.uk"},
		{name: "third-party relay sets no cookies", q: req{host: "relay.capirelay.example", body: pageView("")}},
		{name: "third-party relay keeps a valid fbp", q: req{host: "relay.capirelay.example",
			body: `{"fbp":"` + validFbp + `","events":[{"name":"PageView","url":"https://www.example.co.uk/"}]}`}, wantFbp: validFbp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bb := setupBrowser(t)
			bb.b.TrustedProxies = mustPrefixes("10.0.0.0/8")
			res := bb.do(t, tc.q)
			if res.StatusCode != http.StatusNoContent {
				t.Fatalf("status = %d, want 204", res.StatusCode)
			}
			cs := res.Cookies()
			if tc.wantDomain == "" && len(cs) != 0 {
				t.Errorf("Set-Cookie on a third-party relay: %v", cs)
			}
			for _, c := range cs {
				if c.Domain != tc.wantDomain || c.Secure != tc.wantSecure {
					t.Errorf("Set-Cookie %s", c)
				}
				if c.Name == "_fbp" && tc.wantFbp != "" && c.Value != tc.wantFbp {
					t.Errorf("_fbp = %q, want %q", c.Value, tc.wantFbp)
				}
			}
			ud := payload(t, bb.items(t)[0])["user_data"].(map[string]any)
			if tc.wantFbp != "" && ud["fbp"] != tc.wantFbp {
				t.Errorf("stored fbp = %v, want %q", ud["fbp"], tc.wantFbp)
			}
			if tc.q.host == "relay.capirelay.example" && tc.wantFbp == "" {
				if ud["fbp"] != nil {
					t.Errorf("fbp minted though no cookie can keep it: %v", ud["fbp"])
				}
				if fbc, _ := ud["fbc"].(string); !strings.HasSuffix(fbc, ".IwAR2XyZ_mixedCASE") || !strings.HasPrefix(fbc, "fb.2.") {
					t.Errorf("fbc = %q, want one built from the URL's click id", fbc)
				}
			}
		})
	}
}

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestBrowserPreflight(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	res := bb.do(t, req{method: http.MethodOptions, header: map[string]string{"Access-Control-Request-Method": "POST"}})
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != testOrigin ||
		res.Header.Get("Access-Control-Allow-Methods") != "POST" || res.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight = %d %v", res.StatusCode, res.Header)
	}
	res = bb.do(t, req{method: http.MethodOptions, origin: "https://evil.example"})
	if res.StatusCode != http.StatusForbidden || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from a stranger = %d %v", res.StatusCode, res.Header)
	}
	// Subdomains and ports are admitted; the Referer stands in for Origin.
	for _, q := range []req{
		{origin: "http://shop.www.example.co.uk:8080", body: pageView("")},
		{origin: "-", header: map[string]string{"Referer": "https://example.co.uk/x"}, body: pageView("")},
	} {
		if res := bb.do(t, q); res.StatusCode != http.StatusNoContent {
			t.Errorf("origin %q referer %q: status %d", q.origin, q.header["Referer"], res.StatusCode)
		}
	}
}

// TestBrowserPublicSuffixDomain: a site stored with a public suffix as its
// domain (sitecfg refuses one now; older sites may have it) does not admit
// every page under that suffix: attacker.co.uk gets no CORS, no cookies
// and nothing stored.
func TestBrowserPublicSuffixDomain(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	mustCreateSite(t, bb.db, "suffix", store.ConsentNone, "co.uk", "github.io")
	for _, q := range []req{
		{target: "/e?site=suffix", origin: "https://attacker.co.uk", host: "attacker.co.uk", body: pageView("")},
		{target: "/e?site=suffix", origin: "https://www.attacker.co.uk", body: pageView("")},
		{target: "/e?site=suffix", origin: "https://anyone.github.io", host: "anyone.github.io", body: pageView("")},
		{target: "/e?site=suffix", origin: "-", header: map[string]string{"Referer": "https://attacker.co.uk/"}, body: pageView("")},
		{target: "/e?site=suffix", method: http.MethodOptions, origin: "https://attacker.co.uk"},
	} {
		res := bb.do(t, q)
		var eb struct{ Error, Field string }
		json.NewDecoder(res.Body).Decode(&eb)
		if res.StatusCode != http.StatusForbidden || eb.Field != "Origin" {
			t.Errorf("%s origin %q: %d %+v, want 403 naming Origin", q.method, q.origin, res.StatusCode, eb)
		}
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("origin %q: Access-Control-Allow-Origin = %q", q.origin, got)
		}
		if c := res.Header.Values("Set-Cookie"); len(c) != 0 {
			t.Errorf("origin %q: cookies set: %q", q.origin, c)
		}
	}
	if items := bb.items(t); len(items) != 0 {
		t.Errorf("stored %d items from strangers' pages", len(items))
	}
}

// gateOutbox holds Enqueue until the test opens the gate.
type gateOutbox struct {
	store.Outbox
	entered, gate chan struct{}
	err           error
}

func (g *gateOutbox) Enqueue(ctx context.Context, evs []store.NewEvent) ([]store.EnqueueResult, error) {
	if g.entered != nil {
		close(g.entered)
		<-g.gate
	}
	if g.err != nil {
		return nil, g.err
	}
	return g.Outbox.Enqueue(ctx, evs)
}

func TestBrowserAnswersAfterCommit(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	gate := &gateOutbox{Outbox: bb.db, entered: make(chan struct{}), gate: make(chan struct{})}
	bb.b.Pipeline = pipeline.New(gate)
	done := make(chan *http.Response)
	go func() { done <- bb.do(t, req{body: pageView("")}) }()
	<-gate.entered
	select {
	case res := <-done:
		t.Fatalf("answered %d before the store committed", res.StatusCode)
	case <-time.After(50 * time.Millisecond):
	}
	close(gate.gate)
	if res := <-done; res.StatusCode != http.StatusNoContent {
		t.Fatalf("status = %d, want 204", res.StatusCode)
	}
	if len(bb.items(t)) != 1 {
		t.Error("204 but nothing in the outbox")
	}

	// A store failure is a 503 and no cookie; the tag retries.
	bb.b.Pipeline = pipeline.New(&gateOutbox{Outbox: bb.db, err: fmt.Errorf("disk full: %w", store.ErrUnavailable)})
	res := bb.do(t, req{body: pageView("")})
	if res.StatusCode != http.StatusServiceUnavailable || len(res.Cookies()) != 0 {
		t.Errorf("store failure: status %d, cookies %v", res.StatusCode, res.Cookies())
	}
	var eb struct{ Error string }
	if json.NewDecoder(res.Body).Decode(&eb); eb.Error == "" {
		t.Error("503 without a JSON reason")
	}
}

func TestBrowserBotsAndLimits(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	for _, ua := range []string{
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36",
		"curl/8.5.0", "python-requests/2.31",
	} {
		if res := bb.do(t, req{ua: ua, body: pageView("")}); res.StatusCode != http.StatusNoContent {
			t.Errorf("bot %q: status %d, want 204", ua, res.StatusCode)
		}
	}
	if n := len(bb.items(t)); n != 0 {
		t.Errorf("stored %d bot events", n)
	}
	if n := testutil.ToFloat64(bb.b.Metrics.BotsDropped); n != 4 {
		t.Errorf("bots dropped = %v, want 4", n)
	}
	if IsBot("Mozilla/5.0 (Linux; Android 12; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36") {
		t.Error("a CUBOT phone is not a bot")
	}

	bl := setupBrowser(t)
	bl.b.PerIPRate, bl.b.PerIPBurst = 1, 2
	codes := []int{}
	for range 3 {
		codes = append(codes, bl.do(t, req{body: pageView("")}).StatusCode)
	}
	if fmt.Sprint(codes) != "[204 204 429]" {
		t.Errorf("statuses = %v, want [204 204 429]", codes)
	}
	if res := bl.do(t, req{remote: "198.51.100.9:1", body: pageView("")}); res.StatusCode != http.StatusNoContent {
		t.Errorf("another address: %d", res.StatusCode)
	}
}

func TestBrowserCaptureAndLead(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	capture := `{"vid":"abcdefghijklmnopq","fbp":"fb.2.1700000000000.1234567890","events":[{"type":"capture","form":"signup","url":"https://www.example.co.uk/form?step=2&email=Ada%40Example.com","fields":{"em":"Ada@Example.com","ph":"+44 20 7946 0958"}}]}`
	if res := bb.do(t, req{body: capture}); res.StatusCode != http.StatusNoContent {
		t.Fatalf("capture: status %d", res.StatusCode)
	}
	if n := len(bb.items(t)); n != 0 {
		t.Errorf("a capture stored %d outbox items", n)
	}
	lead := `{"vid":"abcdefghijklmnopq","fbp":"fb.2.1700000000000.1234567890","events":[{"type":"event","name":"Lead","id":"lead-1","url":"https://www.example.co.uk/form?step=2&email=Ada%40Example.com","form":"signup","submit":true,"user":{"em":"Ada@Example.com","ph":"+44 20 7946 0958","fn":"Ada","ln":"Lovelace"}}]}`
	if res := bb.do(t, req{body: lead}); res.StatusCode != http.StatusNoContent {
		t.Fatalf("lead: status %d", res.StatusCode)
	}
	items := bb.items(t)
	if len(items) != 1 || items[0].EventName != "Lead" {
		t.Fatalf("items = %+v", items)
	}
	ud := payload(t, items[0])["user_data"].(map[string]any)
	for _, k := range []string{"em", "ph", "fn", "ln"} {
		v, _ := ud[k].([]any)
		if len(v) != 1 || !hex64.MatchString(fmt.Sprint(v[0])) {
			t.Errorf("user_data.%s = %v, want one SHA-256", k, ud[k])
		}
	}
	if p := string(items[0].Payload); strings.Contains(p, "Lovelace") || strings.Contains(p, "Ada") {
		t.Errorf("raw PII in the outbox payload: %s", p)
	}
	// The page's query held the email: neither the event nor the lead
	// keeps it.
	const page = "https://www.example.co.uk/form?step=2"
	if u := payload(t, items[0])["event_source_url"]; u != page {
		t.Errorf("event_source_url = %v, want %s", u, page)
	}
	if n := testutil.ToFloat64(bb.b.Metrics.URLsScrubbed); n != 2 {
		t.Errorf("capirelay_urls_scrubbed_total = %v, want 2 (the capture and the Lead)", n)
	}
	// A clean page whose referrer held a password counts too; one with
	// clean URLs does not.
	for _, ref := range []string{"https://www.example.co.uk/login?password=hunter2", "https://www.example.co.uk/offer?fbclid=Ab"} {
		pv := `{"vid":"abcdefghijklmnopq","events":[{"type":"event","name":"PageView","url":"https://www.example.co.uk/next","ref":"` + ref + `"}]}`
		if res := bb.do(t, req{body: pv}); res.StatusCode != http.StatusNoContent {
			t.Fatalf("page view: status %d", res.StatusCode)
		}
	}
	if n := testutil.ToFloat64(bb.b.Metrics.URLsScrubbed); n != 3 {
		t.Errorf("capirelay_urls_scrubbed_total = %v, want 3", n)
	}
	bb.mu.Lock()
	defer bb.mu.Unlock()
	if len(bb.captures) != 2 {
		t.Fatalf("OnCapture calls = %d, want 2", len(bb.captures))
	}
	c0, c1 := bb.captures[0], bb.captures[1]
	if c0.Submitted || c0.FormID != "signup" || c0.Fields["em"] != "Ada@Example.com" || c0.VisitorID != "abcdefghijklmnopq" || c0.IP != "203.0.113.7" || c0.UA != testUA {
		t.Errorf("capture = %+v", c0)
	}
	if !c1.Submitted || c1.Fields["ln"] != "Lovelace" || c1.Fbp != "fb.2.1700000000000.1234567890" {
		t.Errorf("submit capture = %+v", c1)
	}
	if c0.PageURL != page || c1.PageURL != page {
		t.Errorf("lead pages %q, %q, want %s", c0.PageURL, c1.PageURL, page)
	}
}

// TestBrowserCaptureErase: a field the visitor blanked reaches OnCapture
// as an empty value (the lead erases it), at capture and at submit; keys
// that are not capture fields, and a blank alias of a sent value, do not.
func TestBrowserCaptureErase(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	const page = "https://www.example.co.uk/form"
	for _, body := range []string{
		`{"vid":"abcdefghijklmnopq","events":[{"type":"capture","form":"f","url":"` + page + `","fields":{"em":"ada@example.com","ph":" ","fn":""}}]}`,
		`{"vid":"abcdefghijklmnopq","events":[{"type":"event","name":"Lead","url":"` + page + `","form":"f","submit":true,"user":{"em":"ada@example.com","ph":"","phone":"+44 20 7946 0958","ln":"","ge":"","external_id":""}}]}`,
	} {
		if res := bb.do(t, req{body: body}); res.StatusCode != http.StatusNoContent {
			t.Fatalf("status %d for %s", res.StatusCode, body)
		}
	}
	items := bb.items(t)
	if len(items) != 1 {
		t.Fatalf("items = %+v, want the Lead", items)
	}
	if ud := payload(t, items[0])["user_data"].(map[string]any); ud["em"] == nil || ud["ph"] == nil || ud["ln"] != nil || ud["ge"] != nil {
		t.Errorf("Lead user_data = %v, want em and ph, no blanks", ud)
	}
	bb.mu.Lock()
	defer bb.mu.Unlock()
	if len(bb.captures) != 2 {
		t.Fatalf("OnCapture calls = %d, want 2", len(bb.captures))
	}
	want := []map[string]string{
		{"em": "ada@example.com", "ph": "", "fn": ""},
		{"em": "ada@example.com", "ph": "+44 20 7946 0958", "ln": ""},
	}
	for i, c := range bb.captures {
		if !maps.Equal(c.Fields, want[i]) {
			t.Errorf("capture %d fields = %q, want %q", i, c.Fields, want[i])
		}
	}
}

func TestBrowserConsentRequired(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	const origin = "https://www.eu-shop.example"
	page := origin + "/?fbclid=abc"
	// Before consent: the event is held, no cookie is set or read, nothing
	// typed is captured.
	body := `{"vid":"pagevid1234567890","events":[{"name":"PageView","url":"` + page + `"},{"type":"capture","form":"f","fields":{"em":"a@b.c"}}]}`
	res := bb.do(t, req{target: "/e?site=eu", host: "t.eu-shop.example", origin: origin, body: body,
		header: map[string]string{"Cookie": "_fbp=fb.1.1700000000000.1234567890"}})
	if res.StatusCode != http.StatusNoContent || len(res.Cookies()) != 0 {
		t.Fatalf("status %d cookies %v", res.StatusCode, res.Cookies())
	}
	items := bb.items(t)
	if len(items) != 1 || items[0].State != store.StateHeld {
		t.Fatalf("items = %+v, want one held", items)
	}
	ud := payload(t, items[0])["user_data"].(map[string]any)
	if ud["fbp"] != nil || ud["fbc"] != nil {
		t.Errorf("fbp/fbc used without consent: %v", ud)
	}
	if len(bb.captures) != 0 {
		t.Errorf("captured without consent: %+v", bb.captures)
	}
	// Consent granted with the page's visitor id: the held event goes out.
	grant := `{"vid":"cookievid12345678","consent":"granted","events":[{"type":"consent","state":"granted","prev":"pagevid1234567890"}]}`
	res = bb.do(t, req{target: "/e?site=eu", host: "t.eu-shop.example", origin: origin, body: grant})
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("grant: status %d", res.StatusCode)
	}
	if items := bb.items(t); items[0].State != store.StatePending {
		t.Errorf("after grant: state %s, want pending", items[0].State)
	}
	// Denied: nothing stored.
	deny := `{"vid":"x1234567890123456","consent":"denied","events":[{"name":"PageView","url":"` + page + `"}]}`
	if res := bb.do(t, req{target: "/e?site=eu", host: "t.eu-shop.example", origin: origin, body: deny}); res.StatusCode != http.StatusNoContent {
		t.Errorf("denied: status %d", res.StatusCode)
	}
	if n := len(bb.items(t)); n != 1 {
		t.Errorf("items after a denied event = %d, want 1", n)
	}
}

func TestRegionOf(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"en-US": "us", "en_gb": "gb", "zh-Hant-TW": "tw", "de": "", "es-419": "", "": ""} {
		if got := regionOf(in); got != want {
			t.Errorf("regionOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzBrowserBody: any body is either refused with a 4xx httpError or gives
// events that pass event.Prepare; nothing panics.
func FuzzBrowserBody(f *testing.F) {
	f.Add(pageView(""))
	f.Add(pageView(`,"user":{"em":"a@b.c"},"data":{"value":1,"currency":"EUR"}`))
	f.Add(`{"events":[{"type":"capture","form":"f","fields":{"em":"x"}},{"type":"consent","state":"granted"}]}`)
	f.Add(`{"events":[{"name":"Lead","url":"https://x.example/","submit":true,"form":"f","user":{"fn":"A"}}]}`)
	site := &store.Site{Key: "shop", Domains: []string{"example.co.uk"}, Consent: store.ConsentNone}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodPost, "/e?site=shop", strings.NewReader(raw))
		body, err := parseBrowserBody(r, []byte(raw))
		if err == nil {
			err = validateBrowserBody(body)
		}
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.status() < 400 || he.status() >= 500 {
				t.Fatalf("error %v is not a 4xx httpError", err)
			}
			return
		}
		v := new(visit)
		(&Browser{}).visit(v, r, site, body, netip.MustParseAddr("203.0.113.7"), testUA, time.Now())
		for i := range body.Events {
			e := &body.Events[i]
			if e.Type == "" || e.Type == "event" {
				if _, err := v.event(e, (&Browser{}).eventURL(e, body), "events[0]"); err != nil {
					var he *httpError
					if !errors.As(err, &he) || he.status() != http.StatusBadRequest {
						t.Fatalf("event error %v is not a 400", err)
					}
				}
			}
		}
	})
}

// FuzzRegionOf: regionOf answers as its first version (FieldsFunc, then
// the first two-letter subtag after the language, lower case).
func FuzzRegionOf(f *testing.F) {
	old := func(lang string) string {
		parts := strings.FieldsFunc(lang, func(r rune) bool { return r == '-' || r == '_' })
		for _, p := range parts[min(1, len(parts)):] {
			if len(p) == 2 && isLetters(p) {
				return strings.ToLower(p)
			}
		}
		return ""
	}
	for _, s := range []string{"en-US", "en_gb", "zh-Hant-TW", "de", "es-419", "", "-US", "--us-", "en--GB", "_", "en-\xffx-GB", "en-é-fr", "EN-Us"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lang string) {
		if got, want := regionOf(lang), old(lang); got != want {
			t.Fatalf("regionOf(%q) = %q, want %q", lang, got, want)
		}
	})
}

// TestBrowserDeniedInAnotherTab: a tab whose tag started before the visitor
// said no in another tab still sends events as allowed; the browser's
// consent cookie says no, so nothing is stored, captured or set, and the
// relay's copies of the cookies are cleared. A decision in the body wins
// over the cookie.
func TestBrowserDeniedInAnotherTab(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	stale := `{"vid":"1234567890123456789","consent":"granted","events":[{"name":"PageView","id":"pv-1","url":"` + testPage + `"},` +
		`{"type":"capture","form":"f","fields":{"em":"ada@example.com"}}]}`
	res := bb.do(t, req{body: stale, header: map[string]string{"Cookie": "_fbp=fb.2.1700000000000.1234567890; _cr_consent=denied"}})
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("status = %d, want 204", res.StatusCode)
	}
	if items := bb.items(t); len(items) != 0 {
		t.Errorf("stored %d items of a visitor who said no", len(items))
	}
	if len(bb.captures) != 0 {
		t.Errorf("captured %+v of a visitor who said no", bb.captures)
	}
	cleared := map[string]bool{}
	for _, c := range res.Cookies() {
		if c.MaxAge >= 0 || c.Value != "" {
			t.Errorf("Set-Cookie %s: a cookie set for a visitor who said no", c)
		}
		cleared[c.Name] = true
	}
	for _, name := range []string{"_fbp", "_fbc", "_cr_vid"} {
		if !cleared[name] {
			t.Errorf("%s not cleared: %v", name, res.Cookies())
		}
	}

	// The visitor grants in this tab: its decision, sent with the old
	// cookie still in the header, wins.
	grant := `{"vid":"1234567890123456789","consent":"granted","events":[{"type":"consent","state":"granted"},` +
		`{"name":"PageView","id":"pv-2","url":"` + testPage + `"}]}`
	res = bb.do(t, req{body: grant, header: map[string]string{"Cookie": "_cr_consent=denied"}})
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("grant: status = %d, want 204", res.StatusCode)
	}
	var ids []string
	for _, it := range bb.items(t) {
		ids = append(ids, it.EventID)
	}
	if len(ids) != 1 || ids[0] != "pv-2" {
		t.Errorf("after the grant: stored events %v, want [pv-2]", ids)
	}
}
