package admin

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// TestRoutesRefuseUnauthenticated walks the router's own route list: every
// route that is not public refuses a request without a session or token,
// with a wrong session cookie and with a wrong bearer token, and shows
// nothing of the page.
func TestRoutesRefuseUnauthenticated(t *testing.T) {
	b := setup(t)
	s := b.mustSite(t, "Planted Shop Name")
	id := b.mustEnqueue(t, s.Key, "Purchase", time.Now(), payload("Purchase", hashedUserData()))
	vals := map[string]string{"key": s.Key, "id": strconv.FormatInt(id, 10), "file": "style.css"}

	creds := []struct {
		name string
		hdr  http.Header
	}{
		{"none", nil},
		{"bad cookie", http.Header{"Cookie": {cookieName + "=forged"}}},
		{"bad bearer", http.Header{"Authorization": {"Bearer cra_forged"}}},
		{"not bearer", http.Header{"Authorization": {"Basic YWRtaW46YWRtaW4="}}},
	}
	n := 0
	for _, rt := range b.h.routes() {
		if rt.access == public {
			continue
		}
		n++
		method, path := fill(rt.pattern, vals)
		for _, c := range creds {
			t.Run(rt.pattern+"/"+c.name, func(t *testing.T) {
				hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
				for k, v := range c.hdr {
					hdr[k] = v
				}
				res, body := b.do(t, b.client(t), method, path, "name=x&csrf=x", hdr)
				switch {
				case res.StatusCode == http.StatusSeeOther && strings.HasPrefix(res.Header.Get("Location"), "/admin/login"):
				case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
				default:
					t.Fatalf("%s %s: status %d, want a refusal", method, path, res.StatusCode)
				}
				if strings.Contains(body, s.Name) || strings.Contains(body, "Purchase") {
					t.Errorf("%s %s: the refusal shows data", method, path)
				}
			})
		}
	}
	if n < 25 {
		t.Fatalf("only %d protected routes: the route list lost some", n)
	}
	// Nothing was changed by the refused requests.
	got, err := b.db.Site(t.Context(), s.Key)
	if err != nil || got.Name != s.Name {
		t.Fatalf("site after refused requests: %+v, %v", got, err)
	}
	it, err := b.db.Item(t.Context(), id)
	if err != nil || it.State != store.StatePending {
		t.Fatalf("item after refused requests: %+v, %v", it, err)
	}
}

func TestPublicRoutes(t *testing.T) {
	b := setup(t)
	for _, p := range []string{"/admin/login", "/admin/assets/style.css", "/admin/assets/app.js"} {
		res, _ := b.get(t, b.client(t), p)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, res.StatusCode)
		}
	}
	if res, _ := b.get(t, b.client(t), "/admin/assets/nope.css"); res.StatusCode != http.StatusNotFound {
		t.Errorf("missing asset = %d, want 404", res.StatusCode)
	}
}

func TestCSRF(t *testing.T) {
	b := setup(t)
	c := b.client(t)
	csrf := b.login(t, c)
	other := b.client(t)
	otherCSRF := b.login(t, other)
	if otherCSRF == csrf {
		t.Fatal("two sessions share a CSRF token")
	}
	tests := []struct {
		name string
		csrf string
		want int
	}{
		{"missing", "", http.StatusForbidden},
		{"wrong", "forged", http.StatusForbidden},
		{"another session's", otherCSRF, http.StatusForbidden},
		{"valid", csrf, http.StatusCreated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, hdr := form(tc.csrf, "name", "Shop "+tc.name, "domains", "shop.example.com")
			res, _ := b.do(t, c, "POST", "/admin/sites", body, hdr)
			if res.StatusCode != tc.want {
				t.Fatalf("POST /admin/sites with %s CSRF = %d, want %d", tc.name, res.StatusCode, tc.want)
			}
		})
	}
	sites, _ := b.db.ListSites(t.Context())
	if len(sites) != 1 {
		t.Fatalf("%d sites, want only the one with a valid token", len(sites))
	}
	// The API with a session cookie needs the header.
	res, _ := b.do(t, c, "POST", "/api/admin/sites", `{"name":"X","domains":["x.example.com"]}`, http.Header{"Content-Type": {"application/json"}})
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("API POST with a session and no CSRF header = %d, want 403", res.StatusCode)
	}
	res, _ = b.do(t, c, "POST", "/api/admin/sites", `{"name":"X","domains":["x.example.com"]}`,
		http.Header{"Content-Type": {"application/json"}, csrfHeader: {csrf}})
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("API POST with a session and its CSRF header = %d, want 201", res.StatusCode)
	}
	// Logout needs it too, and ends the session.
	body, hdr := form("")
	if res, _ := b.do(t, c, "POST", "/admin/logout", body, hdr); res.StatusCode != http.StatusForbidden {
		t.Fatalf("logout without CSRF = %d, want 403", res.StatusCode)
	}
	body, hdr = form(csrf)
	if res, _ := b.do(t, c, "POST", "/admin/logout", body, hdr); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout = %d, want 303", res.StatusCode)
	}
	if res, _ := b.get(t, c, "/admin/sites"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout GET /admin/sites = %d, want a redirect to login", res.StatusCode)
	}
}

func TestLoginRateLimit(t *testing.T) {
	b := setup(t)
	attempt := func(ip, pw string) int {
		req := httptest.NewRequest("POST", "/admin/login", strings.NewReader(url.Values{"password": {pw}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = ip + ":4711"
		rec := httptest.NewRecorder()
		b.h.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range loginBurst {
		if got := attempt("192.0.2.1", "wrong password!"); got != http.StatusUnauthorized {
			t.Fatalf("attempt %d = %d, want 401", i+1, got)
		}
	}
	if got := attempt("192.0.2.1", testPassword); got != http.StatusTooManyRequests {
		t.Fatalf("attempt past the burst = %d, want 429 even with the right password", got)
	}
	if got := attempt("192.0.2.2", testPassword); got != http.StatusSeeOther {
		t.Fatalf("another address = %d, want 303", got)
	}
}

func TestLoginCrossSiteRefused(t *testing.T) {
	b := setup(t)
	body, hdr := form("", "password", testPassword)
	hdr.Set("Origin", "https://evil.example")
	if res, _ := b.do(t, b.client(t), "POST", "/admin/login", body, hdr); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site login = %d, want 403", res.StatusCode)
	}
}

func TestSessionCookie(t *testing.T) {
	b := setup(t)
	body, hdr := form("", "password", testPassword, "next", "//evil.example/")
	res, _ := b.do(t, b.client(t), "POST", "/admin/login", body, hdr)
	if loc := res.Header.Get("Location"); loc != "/admin/" {
		t.Errorf("redirect after login = %q, want /admin/ (no open redirect)", loc)
	}
	var c *http.Cookie
	for _, ck := range res.Cookies() {
		if ck.Name == cookieName {
			c = ck
		}
	}
	if c == nil {
		t.Fatal("no session cookie")
	}
	// PublicURL is https, so the cookie is Secure even over plain HTTP to a proxy.
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie HttpOnly=%v Secure=%v SameSite=%v, want true true Strict", c.HttpOnly, c.Secure, c.SameSite)
	}
	if _, err := b.db.AdminSession(t.Context(), c.Value, time.Now()); err == nil {
		t.Error("the store holds the raw session id; want only its hash")
	}
}

func TestStoredPasswordLogin(t *testing.T) {
	b := setup(t)
	b.h.cfg.AdminPassword = ""
	body, hdr := form("", "password", testPassword)
	if res, _ := b.do(t, b.client(t), "POST", "/admin/login", body, hdr); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("login with no password set = %d, want 503", res.StatusCode)
	}
	if _, err := HashPassword("short"); err == nil {
		t.Error("HashPassword accepted a 5-character password")
	}
	enc, err := HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(enc, testPassword) {
		t.Fatal("hash contains the password")
	}
	enc2, _ := HashPassword(testPassword)
	if enc == enc2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	if err := b.db.SetAdminPasswordHash(t.Context(), enc); err != nil {
		t.Fatal(err)
	}
	body, hdr = form("", "password", testPassword+"x")
	if res, _ := b.do(t, b.client(t), "POST", "/admin/login", body, hdr); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password = %d, want 401", res.StatusCode)
	}
	b.login(t, b.client(t))
}

func TestAPIToken(t *testing.T) {
	b := setup(t)
	tok := b.mustToken(t)
	res, body := b.do(t, b.client(t), "GET", "/api/admin/sites", "", bearer(tok))
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"sites"`) {
		t.Fatalf("GET /api/admin/sites with a token = %d %s", res.StatusCode, body)
	}
	toks, err := b.db.ListAdminTokens(t.Context())
	if err != nil || len(toks) != 1 || toks[0].LastUsedAt.IsZero() || toks[0].Hash == tok {
		t.Fatalf("tokens after use: %+v, %v", toks, err)
	}
	res, body = b.do(t, b.client(t), "GET", "/api/admin/sites", "", bearer(tok+"x"))
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
		t.Fatalf("wrong token = %d %s, want 401 JSON", res.StatusCode, body)
	}
}
