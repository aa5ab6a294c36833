package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// tokenWith stores a token of scope expiring at exp (zero: never).
func (b *bundle) tokenWith(t *testing.T, scope string, exp time.Time) (string, int64) {
	t.Helper()
	tok, hash := NewAPIToken()
	at := &store.AdminToken{Name: scope, Hash: hash, Scope: scope, ExpiresAt: exp}
	if err := b.db.CreateAdminToken(t.Context(), at); err != nil {
		t.Fatal(err)
	}
	return tok, at.ID
}

func TestAPITokenExpiredOrRevoked(t *testing.T) {
	b := setup(t)
	expired, _ := b.tokenWith(t, ScopeWrite, time.Now().Add(-time.Minute))
	revoked, id := b.tokenWith(t, ScopeWrite, time.Now().Add(time.Hour))
	if res, _ := b.do(t, b.client(t), "GET", "/api/admin/sites", "", bearer(revoked)); res.StatusCode != http.StatusOK {
		t.Fatalf("token before revocation = %d, want 200", res.StatusCode)
	}
	if err := b.db.RevokeAdminToken(t.Context(), id, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, tok, want string }{
		{"expired", expired, "expired"},
		{"revoked", revoked, "revoked"},
	} {
		res, body := b.do(t, b.client(t), "GET", "/api/admin/sites", "", bearer(tc.tok))
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(body, tc.want) || strings.Contains(body, `"sites"`) {
			t.Errorf("%s token: %d %s, want 401 saying %q", tc.name, res.StatusCode, body, tc.want)
		}
	}
}

// TestAPITokenScopes: read reads only; write may change a site but not
// its webhook URL; webhooks may; a dashboard session may too.
func TestAPITokenScopes(t *testing.T) {
	b := setup(t)
	s := b.mustSite(t, "Scoped Shop")
	path := "/api/admin/sites/" + s.Key
	read, _ := b.tokenWith(t, ScopeRead, time.Time{})
	write, _ := b.tokenWith(t, ScopeWrite, time.Time{})
	hooks, _ := b.tokenWith(t, ScopeWebhooks, time.Time{})
	hook := `{"webhook_url":"https://hooks.example.com/lead"}`
	for _, tc := range []struct {
		name, tok, method, path, body string
		want                          int
		wantIn                        string
	}{
		{"read GET", read, "GET", path, "", http.StatusOK, `"key"`},
		{"read PATCH", read, "PATCH", path, `{"name":"X"}`, http.StatusForbidden, "read-only"},
		{"read POST", read, "POST", "/api/admin/sites", `{"name":"Y","domains":["y.example.com"]}`, http.StatusForbidden, "read-only"},
		{"write PATCH name", write, "PATCH", path, `{"name":"Renamed"}`, http.StatusOK, "Renamed"},
		{"write PATCH webhook", write, "PATCH", path, hook, http.StatusForbidden, "webhook_url"},
		{"write POST webhook", write, "POST", "/api/admin/sites", `{"name":"Z","domains":["z.example.com"],"webhook_url":"https://hooks.example.com/x"}`,
			http.StatusForbidden, "webhook_url"},
		{"webhooks PATCH metadata", hooks, "PATCH", path, `{"webhook_url":"https://169.254.169.254/latest"}`, http.StatusBadRequest, "webhook_url"},
		{"webhooks PATCH http", hooks, "PATCH", path, `{"webhook_url":"http://hooks.example.com/lead"}`, http.StatusBadRequest, "https"},
		{"write PATCH allow-private", write, "PATCH", path, `{"webhook_allow_private":true}`, http.StatusForbidden, "webhook_allow_private"},
		{"webhooks PATCH webhook", hooks, "PATCH", path, hook, http.StatusOK, "hooks.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := b.do(t, b.client(t), tc.method, tc.path, tc.body, bearer(tc.tok))
			if res.StatusCode != tc.want || !strings.Contains(body, tc.wantIn) {
				t.Fatalf("%s %s = %d %s, want %d containing %q", tc.method, tc.path, res.StatusCode, body, tc.want, tc.wantIn)
			}
		})
	}
	got, err := b.db.Site(t.Context(), s.Key)
	if err != nil || got.WebhookURL != "https://hooks.example.com/lead" || got.Name != "Renamed" {
		t.Fatalf("site after the scoped calls = %+v, %v", got, err)
	}
	sites, _ := b.db.ListSites(t.Context())
	if len(sites) != 1 {
		t.Errorf("%d sites, want the refused creations not made", len(sites))
	}
	// The dashboard's session may change it (CSRF header as for any API write).
	c := b.client(t)
	csrf := b.login(t, c)
	res, body := b.do(t, c, "PATCH", path, `{"webhook_url":""}`, http.Header{"Content-Type": {"application/json"}, csrfHeader: {csrf}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("session PATCH webhook = %d %s, want 200", res.StatusCode, body)
	}
}

// TestWebhookURLRedacted: a hook URL often embeds a bearer secret, and only
// a principal that may change it (scope webhooks, or a dashboard session)
// sees it whole; read and write tokens see its scheme and host, marked.
func TestWebhookURLRedacted(t *testing.T) {
	b := setup(t)
	s := b.mustSite(t, "Hooked Shop")
	const secret = "s3cr3tHookToken"
	hook := "https://user:pw@hooks.example.com:8443/lead/" + secret + "?key=" + secret
	s.WebhookURL = hook
	if err := b.db.UpdateSite(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	read, _ := b.tokenWith(t, ScopeRead, time.Time{})
	write, _ := b.tokenWith(t, ScopeWrite, time.Time{})
	hooks, _ := b.tokenWith(t, ScopeWebhooks, time.Time{})
	path := "/api/admin/sites/" + s.Key
	for _, tc := range []struct {
		name, tok, method, path, body string
		full                          bool
	}{
		{"read GET", read, "GET", path, "", false},
		{"read list", read, "GET", "/api/admin/sites", "", false},
		{"write PATCH", write, "PATCH", path, `{"name":"Renamed"}`, false},
		{"write token", write, "PUT", path + "/token", `{"access_token":""}`, false},
		{"webhooks GET", hooks, "GET", path, "", true},
		{"webhooks list", hooks, "GET", "/api/admin/sites", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := b.do(t, b.client(t), tc.method, tc.path, tc.body, bearer(tc.tok))
			if res.StatusCode != http.StatusOK {
				t.Fatalf("%s %s = %d %s", tc.method, tc.path, res.StatusCode, body)
			}
			if tc.full {
				if !strings.Contains(body, hook) || strings.Contains(body, "webhook_url_redacted") {
					t.Fatalf("body %s: want the webhook URL whole", body)
				}
				return
			}
			if strings.Contains(body, secret) || strings.Contains(body, "user:pw") {
				t.Fatalf("body %s shows the webhook URL's secret to scope %s", body, tc.name)
			}
			if !strings.Contains(body, `"webhook_url": "https://hooks.example.com:8443/…(hidden)"`) || !strings.Contains(body, `"webhook_url_redacted": true`) {
				t.Fatalf("body %s: want the scheme and host, marked hidden", body)
			}
		})
	}
	// A dashboard session is a full admin: the API and the site page show
	// the URL it may edit.
	c := b.client(t)
	b.login(t, c)
	if res, body := b.get(t, c, path); res.StatusCode != http.StatusOK || !strings.Contains(body, hook) {
		t.Fatalf("session GET = %d %s, want the webhook URL whole", res.StatusCode, body)
	}
	if res, page := b.get(t, c, "/admin/sites/"+s.Key); res.StatusCode != http.StatusOK || !strings.Contains(page, secret) {
		t.Fatalf("site page = %d, want the webhook URL in its form", res.StatusCode)
	}
	if got, _ := b.db.Site(t.Context(), s.Key); got.WebhookURL != hook {
		t.Fatalf("stored webhook URL = %q, want it unchanged", got.WebhookURL)
	}
}
