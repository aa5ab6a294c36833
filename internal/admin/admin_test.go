package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/sitecfg"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

const testPassword = "correct horse battery staple"

type bundle struct {
	db  *sqlite.DB
	h   *Handler
	srv *httptest.Server
}

// setup opens a fresh SQLite store and serves the admin handler on it, with
// the password given by configuration (fast; the stored-hash path has its
// own test).
func setup(t *testing.T) *bundle {
	t.Helper()
	return setupWith(t, nil)
}

// setupWith is setup with a chance to change the Config first.
func setupWith(t *testing.T, edit func(*Config)) *bundle {
	t.Helper()
	db := storetest.OpenSQLite(t)
	cfg := Config{
		Store: db, Metrics: metrics.New(), Version: "test", AdminPassword: testPassword,
		PublicURL: "https://relay.example.net",
		NewSite:   newSiteFunc(db), RotateKey: rotateKeyFunc(db),
	}
	if edit != nil {
		edit(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &bundle{db: db, h: h, srv: srv}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newSiteFunc stands in for the wiring's site creation.
func newSiteFunc(st store.Sites) func(ctx context.Context, u sitecfg.Update) (*store.Site, string, error) {
	return func(ctx context.Context, u sitecfg.Update) (*store.Site, string, error) {
		s, err := u.NewSite()
		if err != nil {
			return nil, "", err
		}
		apiKey := "cr_" + randHex(16)
		s.Key, s.APIKeyHash = "s"+randHex(6), TokenHash(apiKey)
		if err := st.CreateSite(ctx, s); err != nil {
			return nil, "", err
		}
		return s, apiKey, nil
	}
}

func rotateKeyFunc(st store.Sites) func(ctx context.Context, siteKey string) (string, error) {
	return func(ctx context.Context, siteKey string) (string, error) {
		apiKey := "cr_" + randHex(16)
		return apiKey, st.SetAPIKeyHash(ctx, siteKey, TokenHash(apiKey))
	}
}

func (b *bundle) mustSite(t *testing.T, name string) *store.Site {
	t.Helper()
	s, _, err := b.h.cfg.NewSite(t.Context(), sitecfg.Update{Name: &name, Domains: &[]string{"shop.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// payload builds a hashed server event as the pipeline stores it.
func payload(name string, ud map[string]any) []byte {
	ev := map[string]any{"event_name": name, "event_time": time.Now().Unix(), "action_source": "website",
		"event_source_url": "https://shop.example.com/", "user_data": ud}
	b, _ := json.Marshal(ev)
	return b
}

func hashedUserData() map[string]any {
	return map[string]any{
		"em": []string{strings.Repeat("a1", 32)}, "ph": []string{strings.Repeat("b2", 32)},
		"client_ip_address": "198.51.100.77", "client_user_agent": "Mozilla/5.0 (test)",
		"fbp": "fb.1.1700000000000.123456789",
	}
}

func (b *bundle) mustEnqueue(t *testing.T, site, name string, eventTime time.Time, p []byte) int64 {
	t.Helper()
	res, err := b.db.Enqueue(t.Context(), []store.NewEvent{{SiteKey: site, EventName: name, EventID: randHex(8),
		EventTime: eventTime, Payload: p, Source: "browser"}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != store.Accepted {
		t.Fatalf("enqueue: %+v", res[0])
	}
	return res[0].ID
}

// mustDead claims everything due for site and dead-letters id.
func (b *bundle) mustDead(t *testing.T, site string, id int64, reason string) {
	t.Helper()
	now := time.Now()
	items, err := b.db.Claim(t.Context(), site, "test", 100, now.Add(time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var outs []store.Outcome
	for _, it := range items {
		if it.ID == id {
			outs = append(outs, store.Outcome{ID: it.ID, Kind: store.OutcomeDead, Reason: reason, TraceID: "AbCdTrace123"})
		} else {
			outs = append(outs, store.Outcome{ID: it.ID, Kind: store.OutcomeRelease})
		}
	}
	if err := b.db.Complete(t.Context(), "test", outs, now); err != nil {
		t.Fatal(err)
	}
}

// client is a browser-like HTTP client with a cookie jar that does not
// follow redirects.
func (b *bundle) client(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login logs c in and returns the session's CSRF token.
func (b *bundle) login(t *testing.T, c *http.Client) string {
	t.Helper()
	res, err := c.PostForm(b.srv.URL+"/admin/login", url.Values{"password": {testPassword}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", res.StatusCode)
	}
	_, body := b.get(t, c, "/admin/sites")
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the sites page")
	}
	return m[1]
}

func (b *bundle) get(t *testing.T, c *http.Client, path string) (*http.Response, string) {
	t.Helper()
	return b.do(t, c, "GET", path, "", nil)
}

func (b *bundle) do(t *testing.T, c *http.Client, method, path, body string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res, string(data)
}

func form(csrf string, kv ...string) (string, http.Header) {
	v := url.Values{}
	if csrf != "" {
		v.Set("csrf", csrf)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode(), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
}

// mustToken creates an admin API token.
func (b *bundle) mustToken(t *testing.T) string {
	t.Helper()
	tok, hash := NewAPIToken()
	if err := b.db.CreateAdminToken(t.Context(), &store.AdminToken{Name: "test", Hash: hash}); err != nil {
		t.Fatal(err)
	}
	return tok
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}, "Content-Type": {"application/json"}}
}

// fill replaces {name} path wildcards (and a trailing {$}) with values.
func fill(pattern string, vals map[string]string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.ReplaceAll(path, "{$}", "")
	for k, v := range vals {
		path = strings.ReplaceAll(path, "{"+k+"}", v)
	}
	return method, path
}

func TestNewRequiresDependencies(t *testing.T) {
	b := setup(t)
	for _, cfg := range []Config{
		{},
		{Store: b.db},
		{Store: b.db, NewSite: newSiteFunc(b.db)},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		}
	}
}

func ExampleHashPassword() {
	enc, _ := HashPassword("a long enough password")
	ok, _ := CheckPassword(enc, "a long enough password")
	fmt.Println(strings.HasPrefix(enc, "pbkdf2-sha256$600000$"), ok)
	// Output: true true
}

// TestInstallNamesTheSite: the install page's proxy advice names the
// site's own domain, not an example one.
func TestInstallNamesTheSite(t *testing.T) {
	b := setup(t)
	s := b.mustSite(t, "Shop")
	c := b.client(t)
	b.login(t, c)
	res, body := b.get(t, c, "/admin/sites/"+s.Key+"/install")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "<code>https://shop.example.com/capirelay/</code>") ||
		!strings.Contains(body, "<code>t.shop.example.com</code>") || strings.Contains(body, "www.example.com") {
		t.Errorf("install page (%d) does not advise the site's own domain:\n%s", res.StatusCode, body)
	}
}
