package sitecfg

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

func TestDomain(t *testing.T) {
	for _, tc := range []struct{ in, want, errPart string }{
		{"shop.example.com", "shop.example.com", ""},
		{"https://www.Shop.Example.com:8443/path?q#f", "shop.example.com", ""},
		{"WWW.example.co.uk.", "example.co.uk", ""},
		{"*.example.org", "example.org", ""},
		{"www.com", "www.com", ""}, // "www." is kept when nothing registrable would remain
		{"localhost", "localhost", ""},
		{"bücher.de", "xn--bcher-kva.de", ""},
		{"https://BÜCHER.de/shop", "xn--bcher-kva.de", ""},
		{"xn--bcher-kva.de", "xn--bcher-kva.de", ""},
		{"пример.рф", "xn--e1afmkfd.xn--p1ai", ""},
		{"127.0.0.1", "", "IP address"},
		{"http://10.0.0.1:8080/", "", "IP address"},
		{"[::1]:80", "", "IP address"},
		{"::1", "", "IP address"},
		{"shop", "", "not a domain"},
		{"shop_x.example.com", "", "not a domain"},
		{"-shop.example.com", "", "not a domain"},
		{"shop..example.com", "", "not a domain"},
		{"shop.example.123", "", "not a domain"},
		// A public suffix, ICANN or private section, would admit every
		// page under it (attacker.co.uk, anyone.github.io).
		{"co.uk", "", "public suffix"},
		{"https://CO.UK./", "", "public suffix"},
		{"*.co.uk", "", "public suffix"},
		{"github.io", "", "public suffix"},
		{"com", "", "not a domain"},
		{"рф", "", "not a domain"},
		{"www.co.uk", "www.co.uk", ""}, // kept whole, like www.com
		{"shop.github.io", "shop.github.io", ""},
		{"www.shop.github.io", "shop.github.io", ""},
	} {
		got, err := Domain(tc.in)
		if tc.errPart != "" {
			var se *Error
			if !errors.As(err, &se) || se.Field != "domains" || !strings.Contains(se.Message, tc.errPart) {
				t.Errorf("Domain(%q) = %q, %v; want a domains error containing %q", tc.in, got, err, tc.errPart)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Domain(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestDomainsDropsBlanksAndRepeatsButNeedsOne(t *testing.T) {
	got, err := Domains([]string{"www.shop.example", " ", "shop.example", "https://shop.example/x", "b.example"})
	if err != nil || !slices.Equal(got, []string{"shop.example", "b.example"}) {
		t.Errorf("Domains = %q, %v", got, err)
	}
	if _, err := Domains([]string{"", "  "}); err == nil {
		t.Error("Domains of blanks: no error, want one (a site needs a domain)")
	}
}

// TestApply is one rule per setting; each row names the disagreement
// between the CLI, the dashboard and the app it settles.
func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		u       Update
		field   string // the refused field; "" = accepted
		check   func(s *store.Site) bool
		wantOut string
	}{
		{name: "pixel id of 5 digits", u: Update{PixelID: new(" 12345 ")}, check: func(s *store.Site) bool { return s.PixelID == "12345" }},
		{name: "pixel id of 20 digits", u: Update{PixelID: new(strings.Repeat("9", 20))}, check: func(s *store.Site) bool { return len(s.PixelID) == 20 }},
		{name: "pixel id of 4 digits (app and CLI took any digits)", u: Update{PixelID: new("1234")}, field: "pixel_id"},
		{name: "pixel id of 21 digits", u: Update{PixelID: new(strings.Repeat("9", 21))}, field: "pixel_id"},
		{name: "pixel id with letters", u: Update{PixelID: new("12345a")}, field: "pixel_id"},
		{name: "pixel id cleared", u: Update{PixelID: new("")}, check: func(s *store.Site) bool { return s.PixelID == "" }},
		{name: "region us stored as US (the CLI stored us)", u: Update{DefaultRegion: new("us")}, check: func(s *store.Site) bool { return s.DefaultRegion == "US" }},
		{name: "region by name", u: Update{DefaultRegion: new("Germany")}, check: func(s *store.Site) bool { return s.DefaultRegion == "DE" }},
		{name: "region unknown (the dashboard took any two letters)", u: Update{DefaultRegion: new("ZZ")}, field: "default_region"},
		{name: "region cleared", u: Update{DefaultRegion: new(" ")}, check: func(s *store.Site) bool { return s.DefaultRegion == "" }},
		{name: "lead event with a space (the CLI refused it)", u: Update{PartialLeadEvent: new("Partial Lead")}, check: func(s *store.Site) bool { return s.PartialLeadEvent == "Partial Lead" }},
		{name: "lead event of 100 characters (the dashboard stopped at 50)", u: Update{PartialLeadEvent: new(strings.Repeat("a", 100))}, check: func(s *store.Site) bool { return len(s.PartialLeadEvent) == 100 }},
		{name: "lead event of 101 characters", u: Update{PartialLeadEvent: new(strings.Repeat("a", 101))}, field: "partial_lead_event"},
		{name: "lead event with a quote", u: Update{PartialLeadEvent: new(`Lead"`)}, field: "partial_lead_event"},
		{name: "domains keep www. out (the app kept it)", u: Update{Domains: &[]string{"www.shop.example"}}, check: func(s *store.Site) bool { return slices.Equal(s.Domains, []string{"shop.example"}) }},
		{name: "domains refuse IPs (the app took them)", u: Update{Domains: &[]string{"shop.example", "192.168.1.1"}}, field: "domains"},
		{name: "domains in punycode (the dashboard refused non-ASCII, the app stored it raw)", u: Update{Domains: &[]string{"bücher.de"}}, check: func(s *store.Site) bool { return s.Domains[0] == "xn--bcher-kva.de" }},
		{name: "domains emptied", u: Update{Domains: &[]string{}}, field: "domains"},
		{name: "domains refuse a public suffix (only com was refused)", u: Update{Domains: &[]string{"shop.example", "co.uk"}}, field: "domains"},
		{name: "domains refuse a private-section suffix", u: Update{Domains: &[]string{"github.io"}}, field: "domains"},
		{name: "name trimmed", u: Update{Name: new("  Shop ")}, check: func(s *store.Site) bool { return s.Name == "Shop" }},
		{name: "name blank", u: Update{Name: new(" ")}, field: "name"},
		{name: "name too long", u: Update{Name: new(strings.Repeat("n", MaxNameLen+1))}, field: "name"},
		{name: "token trimmed", u: Update{AccessToken: new(" EAAB ")}, check: func(s *store.Site) bool { return s.AccessToken == "EAAB" }},
		{name: "token with a space", u: Update{AccessToken: new("EA AB")}, field: "access_token"},
		{name: "test event code with a space", u: Update{TestEventCode: new("TEST 1")}, field: "test_event_code"},
		{name: "consent ldu", u: Update{Consent: new("ldu")}, check: func(s *store.Site) bool { return s.Consent == store.ConsentLDU }},
		{name: "consent unknown", u: Update{Consent: new("maybe")}, field: "consent"},
		{name: "timeout minutes", u: Update{PartialLeadTimeout: new(45)}, check: func(s *store.Site) bool { return s.PartialLeadTimeout == 45*time.Minute }},
		{name: "timeout zero", u: Update{PartialLeadTimeout: new(0)}, field: "partial_lead_timeout_minutes"},
		{name: "timeout over a day", u: Update{PartialLeadTimeout: new(MaxPartialLeadMinutes + 1)}, field: "partial_lead_timeout_minutes"},
		{name: "retention days", u: Update{RetentionDays: new(7)}, check: func(s *store.Site) bool { return s.Retention == 7*24*time.Hour }},
		{name: "retention zero", u: Update{RetentionDays: new(0)}, field: "retention_days"},
		{name: "identity visitor", u: Update{Identity: new(" Visitor ")}, check: func(s *store.Site) bool { return s.Identity == store.IdentityVisitor }},
		{name: "identity off", u: Update{Identity: new("off")}, check: func(s *store.Site) bool { return s.Identity == store.IdentityOff }},
		{name: "identity unknown", u: Update{Identity: new("phone")}, field: "identity"},
		{name: "click window", u: Update{ClickWindowDays: new(28)}, check: func(s *store.Site) bool { return s.ClickWindow == 28*24*time.Hour }},
		{name: "click window zero", u: Update{ClickWindowDays: new(0)}, field: "click_window_days"},
		{name: "click window past fbc's life", u: Update{ClickWindowDays: new(91)}, field: "click_window_days"},
		{name: "webhook https", u: Update{WebhookURL: new(" https://hooks.example/x ")}, check: func(s *store.Site) bool { return s.WebhookURL == "https://hooks.example/x" }},
		{name: "webhook not a URL", u: Update{WebhookURL: new("hooks.example")}, field: "webhook_url"},
		{name: "webhook cleared", u: Update{WebhookURL: new("")}, check: func(s *store.Site) bool { return s.WebhookURL == "" }},
		{name: "booleans", u: Update{PartialLeads: new(false), PartialLeadForward: new(true)}, check: func(s *store.Site) bool { return !s.PartialLeads && s.PartialLeadForward }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := store.Site{Name: "Before", Domains: []string{"before.example"}, PixelID: "55555", WebhookURL: "https://old.example", PartialLeads: true}
			s := before
			err := tc.u.Apply(&s)
			if tc.field != "" {
				var se *Error
				if !errors.As(err, &se) || se.Field != tc.field {
					t.Fatalf("Apply = %v, want an error on %s", err, tc.field)
				}
				if !reflect.DeepEqual(s, before) {
					t.Errorf("a refused update changed the site: %+v", s)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if !tc.check(&s) {
				t.Errorf("Apply stored %+v", s)
			}
		})
	}
}

// TestApplyTokenNeedsPixel: an access token needs a pixel id whichever
// door sets it (the admin API's token call stored one without).
func TestApplyTokenNeedsPixel(t *testing.T) {
	noPixel := store.Site{Name: "Shop", Domains: []string{"shop.example"}}
	full := store.Site{Name: "Shop", Domains: []string{"shop.example"}, PixelID: "123456", AccessToken: "EAAB"}
	legacy := store.Site{Name: "Shop", Domains: []string{"shop.example"}, AccessToken: "EAAB"} // stored before the rule
	for _, tc := range []struct {
		name   string
		site   store.Site
		u      Update
		refuse bool
	}{
		{"token on a site without a pixel id", noPixel, Update{AccessToken: new("EAAB")}, true},
		{"token with a pixel id", noPixel, Update{AccessToken: new("EAAB"), PixelID: new("123456")}, false},
		{"token cleared without a pixel id", noPixel, Update{AccessToken: new("")}, false},
		{"pixel id cleared under a token", full, Update{PixelID: new(" ")}, true},
		{"pixel id and token cleared", full, Update{PixelID: new(""), AccessToken: new("")}, false},
		{"another token", full, Update{AccessToken: new("EAAC")}, false},
		{"an unrelated edit of a site stored without a pixel id", legacy, Update{Name: new("Shop 2")}, false},
		{"a new token for a site stored without a pixel id", legacy, Update{AccessToken: new("EAAC")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.site
			err := tc.u.Apply(&s)
			if !tc.refuse {
				if err != nil {
					t.Fatalf("Apply = %v, want it accepted", err)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) || se.Field != "pixel_id" || !strings.Contains(se.Message, "pixel id is required") {
				t.Fatalf("Apply = %v, want a pixel_id error", err)
			}
			if !reflect.DeepEqual(s, tc.site) {
				t.Errorf("a refused update changed the site: %+v", s)
			}
		})
	}
}

func TestApplyFillsDefaults(t *testing.T) {
	var s store.Site
	if err := (&Update{}).Apply(&s); err != nil {
		t.Fatal(err)
	}
	if s.Consent != store.ConsentNone || s.PartialLeadTimeout != store.DefaultPartialLeadTimeout || s.PartialLeadEvent != store.DefaultPartialLeadEvent {
		t.Errorf("defaults not filled: %+v", s)
	}
}

func TestNewSite(t *testing.T) {
	s, err := (&Update{Name: new("Shop"), Domains: &[]string{"www.shop.example"}, PixelID: new("123456"), AccessToken: new("EAAB")}).NewSite()
	if err != nil {
		t.Fatal(err)
	}
	if !s.PartialLeads || s.Domains[0] != "shop.example" || s.AccessToken != "EAAB" {
		t.Errorf("NewSite = %+v", s)
	}
	for _, tc := range []struct {
		u     Update
		field string
	}{
		{Update{Domains: &[]string{"shop.example"}}, "name"},
		{Update{Name: new("Shop")}, "domains"},
		{Update{Name: new("Shop"), Domains: &[]string{"shop.example"}, AccessToken: new("EAAB")}, "pixel_id"},
	} {
		var se *Error
		if _, err := tc.u.NewSite(); !errors.As(err, &se) || se.Field != tc.field {
			t.Errorf("NewSite(%+v) = %v, want an error on %s", tc.u, err, tc.field)
		}
	}
}

func TestFlags(t *testing.T) {
	var u Update
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	u.Flags(fs)
	err := fs.Parse([]string{"--domain", "a.example", "--domain", "b.example", "--partial-lead-timeout", "1h",
		"--retention", "720h", "--partial-leads", "off", "--partial-lead-forward", "on", "--webhook-url", "none", "--test-event-code", "none",
		"--identity", "visitor", "--click-window", "3"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*u.Domains, []string{"a.example", "b.example"}) || *u.PartialLeadTimeout != 60 || *u.RetentionDays != 30 ||
		*u.PartialLeads || !*u.PartialLeadForward || *u.WebhookURL != "" || *u.TestEventCode != "" || u.Name != nil ||
		*u.Identity != "visitor" || *u.ClickWindowDays != 3 {
		t.Errorf("flags gave %+v", u)
	}
	if fs.Lookup("access-token") != nil {
		t.Error("--access-token is registered without being asked for")
	}
	for _, args := range [][]string{{"--partial-lead-timeout", "90s"}, {"--retention", "36h"}, {"--partial-leads", "yes"}, {"--click-window", "36h"}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		(&Update{}).Flags(fs)
		if err := fs.Parse(args); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestEveryFieldHasAFlag keeps the CLI in step with Update: a new setting
// without a flag fails here.
func TestEveryFieldHasAFlag(t *testing.T) {
	typ := reflect.TypeFor[Update]()
	for i := range typ.NumField() {
		name := typ.Field(i).Tag.Get("json")
		if !slices.ContainsFunc(flagDefs, func(d flagDef) bool { return d.field == name }) {
			t.Errorf("Update.%s (%s) has no command-line flag in flagDefs", typ.Field(i).Name, name)
		}
	}
}

func TestFlagError(t *testing.T) {
	err := FlagError((&Update{DefaultRegion: new("ZZ")}).Apply(&store.Site{}))
	if err == nil || !strings.HasPrefix(err.Error(), "--default-region: ") {
		t.Errorf("FlagError = %v, want it to name --default-region", err)
	}
}

// TestWebhookRules: the webhook URL is https to a public address unless
// the site opts in; metadata stays refused; an opt-in cannot be turned off
// under a URL that needs it. The rule names the field for every front end.
func TestWebhookRules(t *testing.T) {
	on, off := true, false
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name   string
		site   store.Site
		u      Update
		wantOK bool
	}{
		{"https public", store.Site{}, Update{WebhookURL: str("https://hooks.example.com/l")}, true},
		{"http refused", store.Site{}, Update{WebhookURL: str("http://hooks.example.com/l")}, false},
		{"http allowed", store.Site{}, Update{WebhookURL: str("http://hooks.example.com/l"), WebhookAllowHTTP: &on}, true},
		{"loopback refused", store.Site{}, Update{WebhookURL: str("https://127.0.0.1/l")}, false},
		{"private allowed", store.Site{}, Update{WebhookURL: str("https://10.0.0.2/l"), WebhookAllowPrivate: &on}, true},
		{"metadata refused even opted in", store.Site{}, Update{WebhookURL: str("http://169.254.169.254/latest"), WebhookAllowHTTP: &on, WebhookAllowPrivate: &on}, false},
		{"opt-in off under a private URL", store.Site{WebhookURL: "https://10.0.0.2/l", WebhookAllowPrivate: true}, Update{WebhookAllowPrivate: &off}, false},
		{"opt-in off with the URL cleared", store.Site{WebhookURL: "https://10.0.0.2/l", WebhookAllowPrivate: true}, Update{WebhookURL: str(""), WebhookAllowPrivate: &off}, true},
	} {
		s := tc.site
		err := tc.u.Apply(&s)
		var se *Error
		switch {
		case tc.wantOK && err != nil:
			t.Errorf("%s: Apply = %v, want accepted", tc.name, err)
		case !tc.wantOK && (!errors.As(err, &se) || se.Field != "webhook_url"):
			t.Errorf("%s: Apply = %v, want an error naming webhook_url", tc.name, err)
		case !tc.wantOK && !reflect.DeepEqual(s, tc.site):
			t.Errorf("%s: a refused update changed the site", tc.name)
		}
	}
}
