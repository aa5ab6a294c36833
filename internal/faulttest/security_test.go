package faulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/app"
	"github.com/capirelay/capirelay/internal/capitest"
	"github.com/capirelay/capirelay/internal/collect"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/store"
)

// Planted values: none may appear in any log line, in any case.
const (
	plantedToken    = "EAAB-planted-token-7f3c9e1d"
	plantedToken2   = "EAAB-planted-second-token-55aa"
	plantedEmail    = "Planted.Person@Example.org"
	plantedPhone    = "+1 (650) 555-0199"
	plantedDigits   = "6505550199"
	plantedFirst    = "Zebulonius"
	plantedLast     = "Quixotefield"
	plantedExternal = "cust-planted-4242"
	plantedCity     = "Plantedville"
	plantedAdminPW  = "planted-admin-password-93"
	plantedWrongPW  = "planted-wrong-password-17"
)

func plantedEvent(id string) map[string]any {
	ev := serverEvent(id, time.Now())
	ev["user_data"] = map[string]any{"em": plantedEmail, "ph": plantedPhone, "fn": plantedFirst, "ln": plantedLast,
		"ct": plantedCity, "external_id": plantedExternal, "client_ip_address": "2001:db8::1",
		"client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)"}
	return ev
}

// TestLogsCarryNoSecrets drives traffic with planted secrets and personal
// data through every path that logs (accepted, refused, malformed, wrong
// key, Graph alias with the key in the URL, Graph 5xx, token revoked,
// token replaced, browser events, admin login failures) and searches the
// debug-level log for any of them.
func TestLogsCarryNoSecrets(t *testing.T) {
	t.Parallel()
	r := newRelay(t, options{tune: func(a *app.App) { a.Config.AdminPassword = plantedAdminPW }})
	site, key := r.addSite(t, "10730", plantedToken)
	r.graph.SetToken("10730", plantedToken)

	r.post(t, key, plantedEvent("ok-1"), plantedEvent("ok-2"))
	bad := plantedEvent("bad-1")
	bad["custom_data"] = map[string]any{"value": 1, "currency": "XXY"}
	r.post(t, key, bad)
	r.postRaw(key, "application/json", []byte(`{"data":[{"event_name":"Lead","user_data":{"em":"`+plantedEmail+`"`))
	r.postRaw(key, "application/json", mustJSON(t, map[string]any{"data": []any{plantedEvent("x")}, "evil": plantedEmail}))
	r.postRaw(key+"x", "application/json", mustJSON(t, map[string]any{"data": []any{plantedEvent("wrong-key")}}))
	r.postRaw("", "application/json", mustJSON(t, map[string]any{"data": []any{plantedEvent("no-key")}, "access_token": key}))
	for _, k := range []string{key, "crk_not-a-key"} {
		resp, err := http.Post(r.url+"/v25.0/10730/events?access_token="+url.QueryEscape(k), "application/json",
			bytes.NewReader(mustJSON(t, map[string]any{"data": []any{plantedEvent("alias-" + k[len(k)-3:])}})))
		if err == nil {
			resp.Body.Close()
		}
	}
	// Graph trouble: a 5xx, then the token is revoked; the site pauses and
	// resumes with a new token.
	r.graph.FailNext(2, capitest.Fault500)
	r.post(t, key, plantedEvent("after-5xx"))
	r.graph.RevokeToken("10730")
	r.post(t, key, plantedEvent("during-revoke"))
	sharedtest.WaitFor(t, 10*time.Second, "site paused", func() bool {
		s, err := r.app.Store.Site(context.Background(), site.Key)
		return err == nil && s.Paused
	})
	r.graph.SetToken("10730", plantedToken2)
	if err := r.app.Store.SetAccessToken(context.Background(), site.Key, plantedToken2); err != nil {
		t.Fatal(err)
	}
	r.assertNoLoss(t, "10730", 15*time.Second)

	// The browser endpoint, if it is wired.
	browserBody := mustJSON(t, map[string]any{"v": 1, "vid": "0123456789abcdef0123", "consent": "granted", "events": []any{
		map[string]any{"type": "capture", "form": "f", "fields": map[string]any{"em": plantedEmail, "ph": plantedPhone, "fn": plantedFirst}, "url": "https://shop.example.com/"},
		map[string]any{"type": "event", "name": "Lead", "id": "b-1", "submit": true, "form": "f", "url": "https://shop.example.com/",
			"user": map[string]any{"em": plantedEmail, "ln": plantedLast}},
	}})
	for _, origin := range []string{"https://shop.example.com", "https://evil.example"} {
		req, _ := http.NewRequest("POST", r.url+"/e?site="+site.Key, bytes.NewReader(browserBody))
		req.Header.Set("Origin", origin)
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh) Safari/605.1.15")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	// Admin login with a wrong password, and a right one.
	for _, pw := range []string{plantedWrongPW, plantedAdminPW} {
		resp, err := http.PostForm(r.url+"/admin/login", url.Values{"password": {pw}})
		if err == nil {
			resp.Body.Close()
		}
	}
	time.Sleep(100 * time.Millisecond)

	logs := strings.ToLower(r.logs.String())
	if len(logs) == 0 {
		t.Fatal("nothing was logged; the test proves nothing")
	}
	for _, secret := range []string{plantedToken, plantedToken2, key, key[len(collect.APIKeyPrefix):], plantedEmail,
		plantedPhone, plantedDigits, plantedFirst, plantedLast, plantedExternal, plantedCity, plantedAdminPW, plantedWrongPW} {
		if i := strings.Index(logs, strings.ToLower(secret)); i >= 0 {
			line := logs[strings.LastIndex(logs[:i], "\n")+1:]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			t.Errorf("the log carries %q:\n%s", secret, line)
		}
	}
	// Request bodies are not logged either.
	if strings.Contains(logs, `"event_name"`) {
		t.Error("the log carries a request body")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recordingSites records the hashes the collector looks api keys up by.
type recordingSites struct {
	store.Sites
	mu     sync.Mutex
	hashes []string
}

func (s *recordingSites) SiteByAPIKeyHash(ctx context.Context, hash string) (*store.Site, error) {
	s.mu.Lock()
	s.hashes = append(s.hashes, hash)
	s.mu.Unlock()
	return s.Sites.SiteByAPIKeyHash(ctx, hash)
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestAPIKeyComparedByHash: the collector never compares api keys itself;
// it looks up the SHA-256 of the presented key (collect.HashAPIKey), so no
// comparison depends on how much of a key matches. Near misses (same
// length, one character off; a prefix; the key plus a suffix; case folded)
// are all refused.
func TestAPIKeyComparedByHash(t *testing.T) {
	t.Parallel()
	r := newRelay(t, options{})
	site, key := r.addSite(t, "10731", "tok")
	if site.APIKeyHash != collect.HashAPIKey(key) || !hexSHA256.MatchString(site.APIKeyHash) {
		t.Fatalf("stored api key hash %q is not hex SHA-256 of the key", site.APIKeyHash)
	}
	sites := &recordingSites{Sites: r.app.Store}
	srv := &collect.Server{Sites: sites, Pipeline: pipeline.New(r.app.Store)}
	flip := func(s string) string {
		b := []byte(s)
		if b[len(b)-1] == 'A' {
			b[len(b)-1] = 'B'
		} else {
			b[len(b)-1] = 'A'
		}
		return string(b)
	}
	body := mustJSON(t, map[string]any{"data": []any{serverEvent("k-1", time.Now())}})
	cases := []struct {
		name string
		key  string
		want int
	}{
		{"right key", key, 200},
		{"same length, last character off", flip(key), 401},
		{"same length, first character off", "X" + key[1:], 401},
		{"prefix of the key", key[:len(key)-1], 401},
		{"key plus a suffix", key + "A", 401},
		{"key upper-cased", strings.ToUpper(key), 401},
		{"only the prefix", collect.APIKeyPrefix, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sites.mu.Lock()
			sites.hashes = nil
			sites.mu.Unlock()
			req := httptest.NewRequest("POST", "/v1/events", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tc.key)
			w := httptest.NewRecorder()
			srv.ServeEvents(w, req)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body.Bytes())
			}
			sites.mu.Lock()
			defer sites.mu.Unlock()
			if len(sites.hashes) != 1 || sites.hashes[0] != collect.HashAPIKey(tc.key) {
				t.Fatalf("looked up %q, want exactly the SHA-256 of the presented key", sites.hashes)
			}
		})
	}
	// And through the whole relay, over the network.
	for _, tc := range cases[1:] {
		if code, out := r.postRaw(tc.key, "application/json", body); code != 401 {
			t.Errorf("%s: relay answered %d: %s", tc.name, code, out)
		}
	}
}

// TestOversizedInputRefused: header blocks past the server's limit get
// 431, bodies past the endpoint's cap get 413, before anything is stored.
func TestOversizedInputRefused(t *testing.T) {
	t.Parallel()
	r := newRelay(t, options{})
	site, key := r.addSite(t, "10732", "tok")
	do := func(method, path string, hdr map[string]string, body []byte) (int, error) {
		req, _ := http.NewRequest(method, r.url+path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	big := strings.Repeat("a", 64<<10)
	if code, err := do("POST", "/v1/events", map[string]string{"Authorization": "Bearer " + key, "X-Padding": big}, []byte(`{}`)); err != nil || code != 431 {
		t.Errorf("64 KiB header: %d %v, want 431", code, err)
	}
	huge := append([]byte(`{"data":[{"event_name":"`), bytes.Repeat([]byte("a"), collect.MaxServerBody)...)
	huge = append(huge, `"}]}`...)
	if code, err := do("POST", "/v1/events", map[string]string{"Authorization": "Bearer " + key, "Content-Type": "application/json"}, huge); code != 413 {
		t.Errorf("%d MiB /v1/events body: %d %v, want 413", collect.MaxServerBody>>20+1, code, err)
	}
	body := append([]byte(`{"v":1,"events":[{"name":"PageView","url":"https://shop.example.com/`), bytes.Repeat([]byte("a"), 70<<10)...)
	body = append(body, `"}]}`...)
	code, err := do("POST", "/e?site="+site.Key, map[string]string{"Origin": "https://shop.example.com", "Content-Type": "text/plain",
		"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605.1.15"}, body)
	if code != 413 {
		t.Errorf("70 KiB /e body: %d %v, want 413", code, err)
	}
	items, err := r.app.Store.Items(context.Background(), "", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 0 {
		t.Fatalf("oversized requests stored %d events", len(items))
	}
}

// TestBrowserCORSExact: /e allows exactly the requesting page's origin
// when it is one of the site's domains (or a subdomain), with credentials,
// never "*", and nothing to any other origin.
func TestBrowserCORSExact(t *testing.T) {
	t.Parallel()
	r := newRelay(t, options{})
	site, _ := r.addSite(t, "10733", "tok")
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", r.url+"/e?site="+site.Key, nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := preflight("https://shop.example.com"); resp.StatusCode == 404 || resp.StatusCode == 405 {
		t.Skip("POST /e is not wired into the app routes yet")
	}
	cases := []struct {
		origin string
		allow  bool
	}{
		{"https://shop.example.com", true},
		{"https://www.shop.example.com", true},
		{"http://shop.example.com:8443", true},
		{"https://evil.example", false},
		{"https://shop.example.com.evil.example", false},
		{"https://evilshop.example.com", false},
		{"null", false},
		{"", false},
	}
	for _, tc := range cases {
		resp := preflight(tc.origin)
		got := resp.Header.Get("Access-Control-Allow-Origin")
		switch {
		case got == "*":
			t.Errorf("origin %q: Access-Control-Allow-Origin is *", tc.origin)
		case tc.allow && (got != tc.origin || resp.Header.Get("Access-Control-Allow-Credentials") != "true"):
			t.Errorf("origin %q: allow-origin %q, credentials %q; want the origin exactly, with credentials",
				tc.origin, got, resp.Header.Get("Access-Control-Allow-Credentials"))
		case !tc.allow && got != "":
			t.Errorf("origin %q: allowed as %q", tc.origin, got)
		case !tc.allow && resp.StatusCode/100 == 2:
			t.Errorf("origin %q: preflight answered %d", tc.origin, resp.StatusCode)
		}
		if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("origin %q: no Vary: Origin", tc.origin)
		}
	}
}

// adminRoutes is internal/admin's surface (admin.go routes()), minus the
// login page and assets, which are public by design.
var adminRoutes = []string{
	"POST /admin/logout",
	"GET /admin/", "GET /admin/sites", "POST /admin/sites", "GET /admin/sites/{key}", "POST /admin/sites/{key}",
	"POST /admin/sites/{key}/token", "POST /admin/sites/{key}/rotate-key", "POST /admin/sites/{key}/delete",
	"GET /admin/sites/{key}/install", "GET /admin/events", "GET /admin/match-quality", "GET /admin/leads",
	"GET /admin/leads.csv", "GET /admin/dead-letters", "POST /admin/dead-letters/{id}/replay",
	"GET /api/admin/overview", "GET /api/admin/sites", "POST /api/admin/sites", "GET /api/admin/sites/{key}",
	"PATCH /api/admin/sites/{key}", "DELETE /api/admin/sites/{key}", "POST /api/admin/sites/{key}/rotate-key",
	"PUT /api/admin/sites/{key}/token", "GET /api/admin/events", "GET /api/admin/dead-letters",
	"POST /api/admin/dead-letters/{id}/replay", "GET /api/admin/match-quality",
}

// TestAdminRoutesNeedAuth: without a session or admin API token, every
// admin route is refused (401/403, or a redirect to the login page) and
// changes nothing; a wrong bearer token is refused too.
func TestAdminRoutesNeedAuth(t *testing.T) {
	t.Parallel()
	r := newRelay(t, options{tune: func(a *app.App) { a.Config.AdminPassword = "admin-password-for-tests" }})
	site, _ := r.addSite(t, "10734", "tok")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	wired := false
	for _, rt := range adminRoutes {
		method, path, _ := strings.Cut(rt, " ")
		path = strings.NewReplacer("{key}", site.Key, "{id}", "1").Replace(path)
		for _, auth := range []string{"", "Bearer not-an-admin-token"} {
			req, _ := http.NewRequest(method, r.url+path, strings.NewReader(`{"name":"x","domains":["a.example"]}`))
			req.Header.Set("Content-Type", "application/json")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			code := resp.StatusCode
			if code != 404 {
				wired = true
			}
			loc := resp.Header.Get("Location")
			ok := code == 401 || code == 403 || code == 404 && !wired ||
				(code == 302 || code == 303) && strings.HasPrefix(loc, "/admin/login")
			if !ok {
				t.Errorf("%s %s (auth %q): %d %s, want it refused", method, path, auth, code, loc)
			}
		}
	}
	if !wired {
		t.Skip("internal/admin is not wired into the app routes: every admin path answers 404")
	}
	s, err := r.app.Store.Site(context.Background(), site.Key)
	if err != nil {
		t.Fatalf("site gone after unauthenticated admin requests: %v", err)
	}
	if s.AccessToken != "tok" || s.APIKeyHash != site.APIKeyHash {
		t.Fatal("unauthenticated admin requests changed the site")
	}
	sites, err := r.app.Store.ListSites(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 1 {
		t.Fatalf("unauthenticated admin requests created sites: %d", len(sites))
	}
}
