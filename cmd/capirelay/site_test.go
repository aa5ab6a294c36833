package main

import (
	"bytes"
	"github.com/capirelay/capirelay/internal/store"
	"strings"
	"testing"
	"time"
)

// runSite runs `capirelay site ARGS…` against e's data directory.
func (e *importEnv) runSite(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errw bytes.Buffer
	err := runSite(t.Context(), args, strings.NewReader(""), &out, &errw, e.getenv)
	return out.String() + errw.String(), err
}

// TestSiteCommandsFollowTheSiteRules checks the CLI applies sitecfg's rules,
// where it used to have its own: region case, pixel id length, lead event
// names with spaces, www. and IP domains.
func TestSiteCommandsFollowTheSiteRules(t *testing.T) {
	e := newImportEnv(t)
	if _, err := e.runSite(t, "set", "--site", e.site, "--default-region", "us", "--partial-lead-event", "Partial Lead",
		"--domain", "https://www.Shop.Example/", "--domain", "bücher.de"); err != nil {
		t.Fatal(err)
	}
	st := e.open(t)
	s, err := st.Site(t.Context(), e.site)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s.DefaultRegion != "US" || s.PartialLeadEvent != "Partial Lead" || strings.Join(s.Domains, ",") != "shop.example,xn--bcher-kva.de" {
		t.Errorf("site set stored region %q, event %q, domains %q", s.DefaultRegion, s.PartialLeadEvent, s.Domains)
	}
	if s.Identity != store.IdentityFull || s.ClickWindow != store.DefaultClickWindow {
		t.Errorf("a new site's identity %q, click window %v; want full and 7 days", s.Identity, s.ClickWindow)
	}
	if _, err := e.runSite(t, "set", "--site", e.site, "--identity", "visitor", "--click-window", "3"); err != nil {
		t.Fatal(err)
	}
	st = e.open(t)
	s, err = st.Site(t.Context(), e.site)
	st.Close()
	if err != nil || s.Identity != store.IdentityVisitor || s.ClickWindow != 3*24*time.Hour {
		t.Errorf("site set --identity visitor --click-window 3 stored %q, %v (%v)", s.Identity, s.ClickWindow, err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"set", "--site", e.site, "--domain", "10.0.0.1"}, "--domain: "},
		{[]string{"set", "--site", e.site, "--domain", "co.uk"}, "--domain: \"co.uk\" is a public suffix"},
		{[]string{"set", "--site", e.site, "--domain", "github.io"}, "--domain: \"github.io\" is a public suffix"},
		{[]string{"set", "--site", e.site, "--default-region", "ZZ"}, "--default-region: "},
		{[]string{"set", "--site", e.site, "--identity", "phone"}, "--identity: "},
		{[]string{"set", "--site", e.site, "--click-window", "0"}, "--click-window: "},
		{[]string{"set-token", "--site", e.site, "--access-token", "EAAB", "--pixel-id", "1234"}, "--pixel-id: "},
		{[]string{"set-token", "--site", e.site, "--access-token", "EAAB"}, "--pixel-id: a pixel id is required with an access token"},
		{[]string{"add", "--name", "Other", "--domain", "other.example", "--pixel-id", "12", "--access-token", "EAAB"}, "--pixel-id: "},
		{[]string{"add", "--name", "Other", "--domain", "192.168.0.1"}, "IP address"},
		{[]string{"set", "--site", e.site, "--webhook-url", "http://hooks.example.com/l"}, "--webhook-url: "},
		{[]string{"set", "--site", e.site, "--webhook-url", "https://169.254.169.254/latest", "--webhook-allow-private", "on"}, "--webhook-url: "},
	} {
		out, err := e.runSite(t, tc.args...)
		if err == nil || !strings.Contains(err.Error()+out, tc.want) {
			t.Errorf("site %v = %v (%s), want an error containing %q", tc.args, err, out, tc.want)
		}
	}
	st = e.open(t)
	defer st.Close()
	after, err := st.Site(t.Context(), e.site)
	if err != nil {
		t.Fatal(err)
	}
	if after.PixelID != "" || after.DefaultRegion != "US" || len(after.Domains) != 2 {
		t.Errorf("refused commands changed the site: %+v", after)
	}
	sites, err := st.ListSites(t.Context())
	if err != nil || len(sites) != 1 {
		t.Errorf("refused site add created a site: %d sites, %v", len(sites), err)
	}
}

// TestSiteSetEmptyValues: an empty partial-lead event name is refused,
// naming the flag, and changes nothing; an empty test event code clears
// the code, like "none".
func TestSiteSetEmptyValues(t *testing.T) {
	t.Parallel()
	e := newImportEnv(t)
	site := func() *store.Site {
		st := e.open(t)
		defer st.Close()
		s, err := st.Site(t.Context(), e.site)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if out, err := e.runSite(t, "set", "--site", e.site, "--partial-lead-event", "Abandoned", "--test-event-code", "TEST123"); err != nil {
		t.Fatalf("site set = %v (%s)", err, out)
	}
	for _, v := range []string{"", " "} {
		out, err := e.runSite(t, "set", "--site", e.site, "--partial-lead-event", v, "--name", "Renamed")
		if err == nil || !strings.Contains(out, "-partial-lead-event") || !strings.Contains(out, "empty") {
			t.Errorf("site set --partial-lead-event %q = %v (%s), want an error naming the flag", v, err, out)
		}
	}
	if s := site(); s.PartialLeadEvent != "Abandoned" || s.Name != "Shop" {
		t.Errorf("refused site set changed the site: event %q, name %q", s.PartialLeadEvent, s.Name)
	}
	out, err := e.runSite(t, "set", "--site", e.site, "--test-event-code", "")
	if err != nil || !strings.Contains(out, `"test_event_code":""`) || !strings.Contains(out, `"partial_lead_event":"Abandoned"`) {
		t.Errorf("site set --test-event-code \"\" = %v (%s), want the code cleared and shown", err, out)
	}
	if s := site(); s.TestEventCode != "" {
		t.Errorf("site set --test-event-code \"\" left %q", s.TestEventCode)
	}
}

// TestUsageErrorsSayWhatIsMissing: a missing or extra argument is named,
// once, before the usage, with exit status 2.
func TestUsageErrorsSayWhatIsMissing(t *testing.T) {
	t.Parallel()
	e := newImportEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "orders.csv"}, "import: --site is required"},
		{[]string{"import", "--site", e.site}, "import: FILE is required"},
		{[]string{"import", "--site", e.site, "a.csv", "b.csv"}, `import: one FILE, got 2 arguments ["a.csv" "b.csv"]`},
		{[]string{"validate"}, "validate: FILE (or - for standard input) is required"},
		{[]string{"validate", "a.json", "b.json"}, "validate: one FILE (or - for standard input), got 2 arguments"},
		{[]string{"admin", "revoke-token"}, "admin revoke-token: NAME or --id ID is required"},
		{[]string{"forget"}, "forget: give one of --email, --phone or --visitor (0 given)"},
		{[]string{"forget", "--visitor", "v", "--email", "jane@example.com"}, "forget: give one of --email, --phone or --visitor (2 given)"},
		{[]string{"site", "set", "--site", e.site, "Renamed", "--name", "Renamed"}, `site set: unexpected argument "Renamed"`},
		{[]string{"site", "list", "all"}, `site list: unexpected argument "all"`},
		{[]string{"hash", "--field", "zz", "x"}, `hash: --field "zz": want one of`},
		{[]string{"hash", "--field", "em"}, "hash: want exactly one VALUE"},
		{[]string{"hash", "--jsonl", "--field", "em"}, "hash: --jsonl takes no --field"},
	} {
		_, stderr, code := cliMain(t, e.getenv, tc.args...)
		i := strings.Index(stderr, tc.want)
		if code != 2 || i < 0 || strings.Count(stderr, tc.want) != 1 || !strings.Contains(stderr[i:], "Usage") {
			t.Errorf("capirelay %q: exit %d, stderr:\n%s\nwant %q once, then the usage, exit 2", tc.args, code, stderr, tc.want)
		}
	}
	if _, stderr, _ := cliMain(t, e.getenv, "forget", "--email", "jane", "doe@example.com"); strings.Contains(stderr, "doe@example.com") {
		t.Errorf("forget echoed an argument that may be personal data:\n%s", stderr)
	}
	st := e.open(t)
	defer st.Close()
	if s, err := st.Site(t.Context(), e.site); err != nil || s.Name != "Shop" {
		t.Errorf("site set with an extra argument changed the site: %+v (%v)", s, err)
	}
}
