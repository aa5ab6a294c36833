package admin

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// TestNoSecretsInResponses plants an access token, an API key, a client IP
// in payloads and raw personal data in a lead, then renders every GET route
// of the router (pages as a logged-in operator, the API with a token) and
// searches the output. Only the partial-leads page and its export may show
// the lead's raw values, and they must (so the planting is known to work).
func TestNoSecretsInResponses(t *testing.T) {
	b := setup(t)
	ctx := t.Context()
	const (
		token    = "EAABplantedAccessTokenZq9x7Vv3Lw2Kk8Yy"
		rawEmail = "planted.person@example.org"
		rawName  = "Plantedfirstname"
		rawIP    = "198.51.100.77"
	)
	c := b.client(t)
	csrf := b.login(t, c)

	// A site created through the form: its API key is shown once, there.
	body, hdr := form(csrf, "name", "Leaky Shop", "domains", "shop.example.com", "pixel_id", "123456789012345", "access_token", token)
	res, page := b.do(t, c, "POST", "/admin/sites", body, hdr)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create site = %d", res.StatusCode)
	}
	m := regexp.MustCompile(`id="api-key-value">([^<]+)<`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the new API key is not shown after creation")
	}
	apiKey := m[1]
	if strings.Contains(page, token) {
		t.Fatal("the creation page shows the access token")
	}
	sites, _ := b.db.ListSites(ctx)
	s := sites[0]
	if s.AccessToken != token {
		t.Fatalf("stored token = %q", s.AccessToken)
	}
	if err := b.db.SetPaused(ctx, s.Key, true, "access token invalid (code 190)"); err != nil {
		t.Fatal(err)
	}

	ud := hashedUserData()
	ud["fbc"] = "fb.1.1700000000000.AbCdEf"
	ok := b.mustEnqueue(t, s.Key, "Purchase", time.Now(), payload("Purchase", ud))
	dead := b.mustEnqueue(t, s.Key, "Lead", time.Now(), payload("Lead", hashedUserData()))
	b.mustDead(t, s.Key, dead, "Meta refused the event: invalid parameter (code 100)")
	_ = ok

	_, err := b.db.UpsertLead(ctx, s.Key, "visitor-1", "contact", func(l *store.Lead) error {
		now := time.Now()
		l.State = store.LeadPartial
		l.Data = store.LeadData{Fields: map[string]string{"em": rawEmail, "fn": rawName}, PageURL: "https://shop.example.com/contact", IP: rawIP}
		l.StartedAt, l.UpdatedAt, l.PartialAt, l.ExpiresAt = now, now, now, now.Add(time.Hour)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	apiTok := b.mustToken(t)
	vals := map[string]string{"key": s.Key, "id": strconv.FormatInt(dead, 10), "file": "style.css"}
	secrets := []string{token, apiKey, rawIP, apiTok}
	pii := []string{rawEmail, rawName}
	checked := 0
	for _, rt := range b.h.routes() {
		method, path := fill(rt.pattern, vals)
		if method != "GET" || rt.pattern == "GET /admin/login" {
			continue
		}
		for _, q := range []string{"", "?site=" + url.QueryEscape(s.Key)} {
			var hdr http.Header
			if rt.access == api {
				hdr = bearer(apiTok)
			}
			res, out := b.do(t, c, method, path+q, "", hdr)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s%s = %d: %s", path, q, res.StatusCode, out)
			}
			checked++
			for _, sec := range secrets {
				if strings.Contains(out, sec) {
					t.Errorf("GET %s%s shows the planted secret %q", path, q, sec)
				}
			}
			leadsRoute := strings.HasPrefix(path, "/admin/leads")
			for _, v := range pii {
				if got := strings.Contains(out, v); got != leadsRoute {
					t.Errorf("GET %s%s: contains raw %q = %v, want %v", path, q, v, got, leadsRoute)
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d responses checked", checked)
	}
	// The mask is there instead.
	_, out := b.get(t, c, "/admin/sites/"+s.Key)
	if !strings.Contains(out, "EAAB…(set)") {
		t.Error("site page does not show the masked token EAAB…(set)")
	}
	_, out = b.get(t, c, "/admin/events")
	if !strings.Contains(out, "198.51.100.0/24") {
		t.Error("live events do not show the shortened IP 198.51.100.0/24")
	}
}
