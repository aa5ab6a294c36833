package admin

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

func TestAPISites(t *testing.T) {
	b := setup(t)
	tok := b.mustToken(t)
	c := b.client(t)

	res, body := b.do(t, c, "POST", "/api/admin/sites", `{"name":"Shop","domains":["https://www.Shop.example.com/x"],"pixel_id":"123456789012345","access_token":"EAABsecretsecretsecret"}`, bearer(tok))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("create = %d %s", res.StatusCode, body)
	}
	s := decode[siteJSON](t, body)
	if s.APIKey == "" || s.AccessToken != "EAAB…(set)" || !s.AccessTokenSet || s.Sandbox || strings.Join(s.Domains, ",") != "shop.example.com" {
		t.Fatalf("created site = %+v", s)
	}

	tests := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"bad pixel", "PATCH", "/api/admin/sites/" + s.Key, `{"pixel_id":"abc"}`, 400, "pixel_id"},
		{"bad consent", "PATCH", "/api/admin/sites/" + s.Key, `{"consent":"maybe"}`, 400, "consent"},
		{"unknown field", "PATCH", "/api/admin/sites/" + s.Key, `{"colour":"red"}`, 400, "colour"},
		{"wrong type", "PATCH", "/api/admin/sites/" + s.Key, `{"partial_leads":"yes"}`, 400, "partial_leads"},
		{"token via patch", "PATCH", "/api/admin/sites/" + s.Key, `{"access_token":"x"}`, 400, "access_token"},
		{"no domain", "POST", "/api/admin/sites", `{"name":"X"}`, 400, "domains"},
		// sitecfg's rules, shared with the CLI and the app.
		{"short pixel", "PATCH", "/api/admin/sites/" + s.Key, `{"pixel_id":"1234"}`, 400, "pixel_id"},
		{"IP domain", "PATCH", "/api/admin/sites/" + s.Key, `{"domains":["shop.example","127.0.0.1"]}`, 400, "domains"},
		{"public suffix domain", "PATCH", "/api/admin/sites/" + s.Key, `{"domains":["github.io"]}`, 400, "domains"},
		{"unknown region", "PATCH", "/api/admin/sites/" + s.Key, `{"default_region":"ZZ"}`, 400, "default_region"},
		{"unknown identity mode", "PATCH", "/api/admin/sites/" + s.Key, `{"identity":"phone"}`, 400, "identity"},
		{"click window too long", "PATCH", "/api/admin/sites/" + s.Key, `{"click_window_days":365}`, 400, "click_window_days"},
		{"token with a space", "POST", "/api/admin/sites", `{"name":"X","domains":["x.example"],"pixel_id":"12345","access_token":"EA AB"}`, 400, "access_token"},
		{"token without pixel", "POST", "/api/admin/sites", `{"name":"X","domains":["x.example"],"access_token":"EAAB"}`, 400, "pixel_id"},
		{"missing site", "GET", "/api/admin/sites/nope", ``, 404, ""},
		{"bad state", "GET", "/api/admin/events?state=lost", ``, 400, "state"},
		{"bad replay id", "POST", "/api/admin/dead-letters/x/replay", ``, 400, "id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := b.do(t, c, tc.method, tc.path, tc.body, bearer(tok))
			if res.StatusCode != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, res.StatusCode, body, tc.status)
			}
			e := decode[map[string]string](t, body)
			if e["error"] == "" || e["field"] != tc.field {
				t.Fatalf("error body %s, want error and field %q", body, tc.field)
			}
		})
	}

	res, body = b.do(t, c, "PATCH", "/api/admin/sites/"+s.Key,
		`{"consent":"ldu","default_region":"de","partial_lead_timeout_minutes":45,"test_event_code":"TEST123","partial_lead_event":"Partial Lead","domains":["www.shop.example.com","bücher.de"],"identity":"visitor","click_window_days":3}`, bearer(tok))
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `"identity": "visitor"`) || !strings.Contains(body, `"click_window_days": 3`) {
		t.Fatalf("patch = %d %s", res.StatusCode, body)
	}
	got, _ := b.db.Site(t.Context(), s.Key)
	if got.Consent != store.ConsentLDU || got.DefaultRegion != "DE" || got.PartialLeadTimeout != 45*time.Minute ||
		got.TestEventCode != "TEST123" || got.PixelID != "123456789012345" || got.AccessToken != "EAABsecretsecretsecret" ||
		got.PartialLeadEvent != "Partial Lead" || strings.Join(got.Domains, ",") != "shop.example.com,xn--bcher-kva.de" ||
		got.Identity != store.IdentityVisitor || got.ClickWindow != 3*24*time.Hour {
		t.Fatalf("site after patch = %+v", got)
	}

	if err := b.db.SetPaused(t.Context(), s.Key, true, "token expired"); err != nil {
		t.Fatal(err)
	}
	res, body = b.do(t, c, "PUT", "/api/admin/sites/"+s.Key+"/token", `{"access_token":"EAABnewtokennewtoken"}`, bearer(tok))
	if res.StatusCode != http.StatusOK || strings.Contains(body, "newtoken") {
		t.Fatalf("set token = %d %s", res.StatusCode, body)
	}
	got, _ = b.db.Site(t.Context(), s.Key)
	if got.AccessToken != "EAABnewtokennewtoken" || got.Paused {
		t.Fatalf("after set token: token %q paused %v", got.AccessToken, got.Paused)
	}

	res, body = b.do(t, c, "POST", "/api/admin/sites/"+s.Key+"/rotate-key", ``, bearer(tok))
	rot := decode[map[string]string](t, body)
	if res.StatusCode != http.StatusOK || rot["api_key"] == "" || rot["api_key"] == s.APIKey {
		t.Fatalf("rotate = %d %s", res.StatusCode, body)
	}
	if got, _ := b.db.Site(t.Context(), s.Key); got.APIKeyHash != TokenHash(rot["api_key"]) {
		t.Fatal("rotation did not store the new key's hash")
	}
	res, body = b.do(t, c, "GET", "/api/admin/sites/"+s.Key, ``, bearer(tok))
	if res.StatusCode != http.StatusOK || strings.Contains(body, rot["api_key"]) || strings.Contains(body, `"api_key"`) {
		t.Fatalf("get site = %d %s: the API key must be shown only once", res.StatusCode, body)
	}

	res, _ = b.do(t, c, "DELETE", "/api/admin/sites/"+s.Key, ``, bearer(tok))
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("delete = %d", res.StatusCode)
	}
	if _, err := b.db.Site(t.Context(), s.Key); err == nil {
		t.Fatal("site still there after delete")
	}
}

// TestSetTokenNeedsPixel: the API's token call refuses a token for a site
// without a pixel id, as the CLI and the dashboard do, and stores nothing;
// clearing the token is still allowed.
func TestSetTokenNeedsPixel(t *testing.T) {
	b := setup(t)
	tok := b.mustToken(t)
	c := b.client(t)
	s := b.mustSite(t, "No pixel")

	res, body := b.do(t, c, "PUT", "/api/admin/sites/"+s.Key+"/token", `{"access_token":"EAABnewtokennewtoken"}`, bearer(tok))
	e := decode[map[string]any](t, body)
	if res.StatusCode != http.StatusBadRequest || e["field"] != "pixel_id" || !strings.Contains(body, "pixel id is required") {
		t.Fatalf("API token without a pixel id = %d %s, want 400 naming pixel_id", res.StatusCode, body)
	}
	if got, _ := b.db.Site(t.Context(), s.Key); got.AccessToken != "" {
		t.Fatalf("the refused token was stored: %q", got.AccessToken)
	}
	if res, body := b.do(t, c, "PUT", "/api/admin/sites/"+s.Key+"/token", `{"access_token":""}`, bearer(tok)); res.StatusCode != http.StatusOK {
		t.Fatalf("clearing the token = %d %s", res.StatusCode, body)
	}

	dc := b.client(t)
	csrf := b.login(t, dc)
	fbody, hdr := form(csrf, "access_token", "EAABnewtokennewtoken")
	if res, page := b.do(t, dc, "POST", "/admin/sites/"+s.Key+"/token", fbody, hdr); res.StatusCode != http.StatusBadRequest || !strings.Contains(page, "pixel id is required") {
		t.Fatalf("dashboard token without a pixel id = %d, want 400 saying a pixel id is required", res.StatusCode)
	}
	if got, _ := b.db.Site(t.Context(), s.Key); got.AccessToken != "" {
		t.Fatalf("the refused token was stored: %q", got.AccessToken)
	}

	res, body = b.do(t, c, "PATCH", "/api/admin/sites/"+s.Key, `{"pixel_id":"123456"}`, bearer(tok))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("set pixel = %d %s", res.StatusCode, body)
	}
	res, body = b.do(t, c, "PUT", "/api/admin/sites/"+s.Key+"/token", `{"access_token":"EAABnewtokennewtoken"}`, bearer(tok))
	if got := decode[siteJSON](t, body); res.StatusCode != http.StatusOK || !got.AccessTokenSet || got.Sandbox {
		t.Fatalf("token with a pixel id = %d %s", res.StatusCode, body)
	}
	res, body = b.do(t, c, "PATCH", "/api/admin/sites/"+s.Key, `{"pixel_id":""}`, bearer(tok))
	if e := decode[map[string]any](t, body); res.StatusCode != http.StatusBadRequest || e["field"] != "pixel_id" {
		t.Fatalf("clearing the pixel id under a token = %d %s, want 400 naming pixel_id", res.StatusCode, body)
	}
}

func TestAPIEventsAndReplay(t *testing.T) {
	b := setup(t)
	tok := b.mustToken(t)
	c := b.client(t)
	s := b.mustSite(t, "Shop")
	live := b.mustEnqueue(t, s.Key, "Purchase", time.Now(), payload("Purchase", hashedUserData()))
	fresh := b.mustEnqueue(t, s.Key, "Lead", time.Now().Add(-time.Hour), payload("Lead", hashedUserData()))
	b.mustDead(t, s.Key, fresh, "invalid parameter")
	old := b.mustEnqueue(t, s.Key, "Lead", time.Now().Add(-7*24*time.Hour+30*time.Minute), payload("Lead", hashedUserData()))
	b.mustDead(t, s.Key, old, "invalid parameter")

	res, body := b.do(t, c, "GET", "/api/admin/events?site="+s.Key, ``, bearer(tok))
	ev := decode[struct{ Events []itemRow }](t, body)
	if res.StatusCode != http.StatusOK || len(ev.Events) != 3 {
		t.Fatalf("events = %d %s", res.StatusCode, body)
	}
	var p struct {
		UserData map[string]any `json:"user_data"`
	}
	last := ev.Events[len(ev.Events)-1]
	if err := json.Unmarshal(last.Payload, &p); err != nil || last.ID != live || p.UserData["client_ip_address"] != "198.51.100.0/24" {
		t.Fatalf("oldest event %+v payload %s", last, last.Payload)
	}

	res, body = b.do(t, c, "GET", "/api/admin/dead-letters", ``, bearer(tok))
	dl := decode[struct {
		DeadLetters []itemRow `json:"dead_letters"`
	}](t, body)
	if res.StatusCode != http.StatusOK || len(dl.DeadLetters) != 2 || !dl.DeadLetters[0].Expired || dl.DeadLetters[1].Expired {
		t.Fatalf("dead letters = %d %s", res.StatusCode, body)
	}
	if dl.DeadLetters[1].LastError != "invalid parameter" || dl.DeadLetters[1].TraceID != "AbCdTrace123" {
		t.Fatalf("dead letter = %+v", dl.DeadLetters[1])
	}

	res, body = b.do(t, c, "POST", "/api/admin/dead-letters/"+strconv.FormatInt(old, 10)+"/replay", ``, bearer(tok))
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "7 days") {
		t.Fatalf("replay of an expired event = %d %s, want 422 naming the 7-day window", res.StatusCode, body)
	}
	res, body = b.do(t, c, "POST", "/api/admin/dead-letters/"+strconv.FormatInt(live, 10)+"/replay", ``, bearer(tok))
	if res.StatusCode != http.StatusConflict {
		t.Fatalf("replay of a pending event = %d %s, want 409", res.StatusCode, body)
	}
	res, body = b.do(t, c, "POST", "/api/admin/dead-letters/"+strconv.FormatInt(fresh, 10)+"/replay", ``, bearer(tok))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("replay = %d %s", res.StatusCode, body)
	}
	if it, _ := b.db.Item(t.Context(), fresh); it.State != store.StatePending {
		t.Fatalf("replayed item state %s, want pending", it.State)
	}
	if it, _ := b.db.Item(t.Context(), old); it.State != store.StateDead {
		t.Fatalf("refused item state %s, want dead", it.State)
	}
}

func TestAPIOverviewAndMatchQuality(t *testing.T) {
	b := setup(t)
	tok := b.mustToken(t)
	c := b.client(t)
	s := b.mustSite(t, "Shop")
	full := map[string]any{"em": "x", "fbc": "y", "ph": "z", "external_id": "e", "fbp": "p", "client_ip_address": "192.0.2.1", "client_user_agent": "ua"}
	b.mustEnqueue(t, s.Key, "Purchase", time.Now(), payload("Purchase", full))
	b.mustEnqueue(t, s.Key, "Purchase", time.Now(), payload("Purchase", map[string]any{"em": "x"}))
	b.mustEnqueue(t, s.Key, "PageView", time.Now(), payload("PageView", map[string]any{"fbp": "p", "client_user_agent": "ua", "em": []string{}}))
	id := b.mustEnqueue(t, s.Key, "Lead", time.Now(), payload("Lead", map[string]any{}))
	b.mustDead(t, s.Key, id, "boom")
	if err := b.db.SetPaused(t.Context(), s.Key, true, "token invalid"); err != nil {
		t.Fatal(err)
	}

	res, body := b.do(t, c, "GET", "/api/admin/match-quality?site="+s.Key, ``, bearer(tok))
	q := decode[qualityView](t, body)
	if res.StatusCode != http.StatusOK || q.Scanned != 4 || !strings.Contains(q.Formula, "min(10") {
		t.Fatalf("match quality = %d %s", res.StatusCode, body)
	}
	byName := map[string]qualityRow{}
	for _, r := range q.Rows {
		byName[r.EventName] = r
	}
	// Purchase: one event with the full set (10), one with em only (3/14*10):
	// the mean share gives (10 + 2.14) / 2 = 6.1.
	if r := byName["Purchase"]; r.Events != 2 || r.Coverage["em"] != 1 || r.Coverage["fbc"] != 0.5 || r.Score != 6.1 {
		t.Errorf("Purchase row = %+v", r)
	}
	// An empty list does not count as carrying the key.
	if r := byName["PageView"]; r.Coverage["em"] != 0 || r.Coverage["fbp"] != 1 || r.Score != 2.1 {
		t.Errorf("PageView row = %+v", r)
	}

	res, body = b.do(t, c, "GET", "/api/admin/overview", ``, bearer(tok))
	o := decode[map[string]any](t, body)
	if res.StatusCode != http.StatusOK || o["events_in"] != 4.0 || o["events_dead"] != 1.0 || o["queue_depth"] != 3.0 {
		t.Fatalf("overview = %d %s", res.StatusCode, body)
	}
	if paused := o["paused_sites"].([]any); len(paused) != 1 {
		t.Fatalf("paused sites = %v", paused)
	}
}

// TestUnknownSiteFilter: every admin endpoint that takes site= answers a
// key no site has with a 404 naming site, not an empty list; a known key
// and no key still answer.
func TestUnknownSiteFilter(t *testing.T) {
	b := setup(t)
	tok := b.mustToken(t)
	s := b.mustSite(t, "Shop")
	c := b.client(t)
	b.login(t, c)
	api := []string{"/api/admin/events", "/api/admin/dead-letters", "/api/admin/match-quality"}
	pages := []string{"/admin/events", "/admin/dead-letters", "/admin/match-quality", "/admin/leads", "/admin/leads.csv"}
	for _, path := range append(api, pages...) {
		isAPI := strings.HasPrefix(path, "/api/")
		get := func(q string) (*http.Response, string) {
			if isAPI {
				return b.do(t, c, "GET", path+q, "", bearer(tok))
			}
			return b.get(t, c, path+q)
		}
		res, body := get("?site=nosuch")
		if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "unknown site key") {
			t.Errorf("GET %s?site=nosuch = %d %s, want 404 saying unknown site key", path, res.StatusCode, body)
		}
		if isAPI && decode[map[string]any](t, body)["field"] != "site" {
			t.Errorf("GET %s?site=nosuch = %s, want field site", path, body)
		}
		for _, q := range []string{"?site=" + s.Key, ""} {
			if res, body := get(q); res.StatusCode != http.StatusOK {
				t.Errorf("GET %s%s = %d %s, want 200", path, q, res.StatusCode, body)
			}
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ in, want int }{{0, 4}, {3, 4}, {5, 8}, {7, 8}, {9, 20}, {11, 20}, {37, 40}, {99, 100}, {101, 200}, {999, 1000}, {1234, 2000}} {
		if got := niceCeil(tc.in); got != tc.want || got%4 != 0 {
			t.Errorf("niceCeil(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
