// Package sitecfg holds the one set of rules for a site's settings. The
// command line (capirelay site …), the dashboard's forms, the admin API and
// the app's site creation all fill an Update and call Apply (or NewSite), so
// a domain, a pixel id or a region means the same thing whichever door the
// operator used.
//
// It lives apart from store (which persists a store.Site and must not know
// how operators phrase things) and from admin and app (app imports admin, and
// the CLI imports neither's internals), so every front end can import it.
//
// # Adding a setting
//
//  1. Add the field to store.Site (with its default in store.SiteDefaults)
//     and its column to both stores (a migration and sites.go in
//     store/sqlite and store/postgres; storetest's site round trip).
//  2. Add a pointer field to Update, tagged with its JSON name: the admin
//     API and the dashboard's form use that name, and Error.Field reports it.
//  3. Write its rule in Apply, next to the others: trim, check, store in one
//     canonical form.
//  4. Give it a command-line flag: a row in flagDefs (flags.go), so
//     `capirelay site add` and `site set` accept it.
//  5. Show it: the dashboard's form (admin.formInput and the site template),
//     the API's siteJSON, the CLI's publicSite.
//
// A test in sitecfg_test.go fails when a field of Update has no flag.
package sitecfg

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/capirelay/capirelay/internal/fbcookie"
	"github.com/capirelay/capirelay/internal/netguard"
	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/store"
)

// Update is an edit to a site's settings; a nil field stays as it is. The
// JSON names are the admin API's and the dashboard form's field names.
type Update struct {
	Name    *string   `json:"name"`
	Domains *[]string `json:"domains"`
	PixelID *string   `json:"pixel_id"`
	// AccessToken is set when a site is created and through the token
	// calls (store.Sites.SetAccessToken); store.Sites.UpdateSite ignores it.
	AccessToken        *string `json:"access_token"`
	TestEventCode      *string `json:"test_event_code"`
	Consent            *string `json:"consent"`
	DefaultRegion      *string `json:"default_region"`
	PartialLeads       *bool   `json:"partial_leads"`
	PartialLeadTimeout *int    `json:"partial_lead_timeout_minutes"`
	PartialLeadForward *bool   `json:"partial_lead_forward"`
	PartialLeadEvent   *string `json:"partial_lead_event"`
	WebhookURL         *string `json:"webhook_url"`
	// WebhookAllowHTTP and WebhookAllowPrivate relax the webhook URL's
	// rules (netguard.Policy): plain http, and private network addresses.
	WebhookAllowHTTP    *bool `json:"webhook_allow_http"`
	WebhookAllowPrivate *bool `json:"webhook_allow_private"`
	RetentionDays       *int  `json:"retention_days"`
	// Identity is how far identity stitching goes: full, visitor or off.
	Identity        *string `json:"identity"`
	ClickWindowDays *int    `json:"click_window_days"`
}

// Error is a refused setting. Field is the setting's JSON name.
type Error struct {
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Field + ": " + e.Message }

func bad(field, format string, args ...any) error {
	return &Error{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Limits of the settings, shared by the rules and their messages.
const (
	MaxNameLen            = 200
	MaxTestEventCodeLen   = 64
	MaxEventNameLen       = 100 // event.Validate's limit on event_name
	MaxPartialLeadMinutes = 24 * 60
	MaxRetentionDays      = 3650
	// MaxClickWindowDays is how long Meta keeps a click's fbc valid.
	MaxClickWindowDays = 90
)

var (
	pixelIDRe = regexp.MustCompile(`^[0-9]{5,20}$`)
	// domainRe is an ASCII host name of at least two labels ending in a
	// letter TLD or a punycode one, or localhost.
	domainRe  = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{1,59})$|^localhost$`)
	eventRe   = regexp.MustCompile(`^[A-Za-z0-9_ .-]+$`)
	consentOK = map[string]bool{store.ConsentNone: true, store.ConsentRequired: true, store.ConsentLDU: true}
)

// NewSite checks u as the settings of a new site and returns the site it
// describes, without keys: a name and a domain are required, and an access
// token needs a pixel id. Partial leads are captured unless u says otherwise.
func (u *Update) NewSite() (*store.Site, error) {
	if u.Name == nil || strings.TrimSpace(*u.Name) == "" {
		return nil, bad("name", "a site needs a name")
	}
	if u.Domains == nil {
		return nil, bad("domains", "a site needs at least one domain (example.com)")
	}
	s := &store.Site{PartialLeads: true}
	if err := u.Apply(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Apply checks every field of u and, only if all are valid, writes them
// into s in their canonical form and fills s's defaults. An access token
// needs a pixel id: setting one on a site without, or clearing the pixel id
// of a site with one, is refused (a site stored so before is left alone
// by edits that touch neither).
func (u *Update) Apply(s *store.Site) error {
	next := *s
	if err := u.apply(&next); err != nil {
		return err
	}
	if next.AccessToken != "" && next.PixelID == "" && (u.AccessToken != nil || u.PixelID != nil && s.PixelID != "") {
		return errTokenNeedsPixel
	}
	store.SiteDefaults(&next)
	*s = next
	return nil
}

// errTokenNeedsPixel: a token without a pixel would leave the site in the
// sandbox (store.Site.Sandbox) while it looks set up.
var errTokenNeedsPixel = bad("pixel_id", "a pixel id is required with an access token")

func (u *Update) apply(s *store.Site) error {
	if u.Name != nil {
		n := strings.TrimSpace(*u.Name)
		if n == "" || len(n) > MaxNameLen {
			return bad("name", "the name must have 1 to %d characters", MaxNameLen)
		}
		s.Name = n
	}
	if u.Domains != nil {
		d, err := Domains(*u.Domains)
		if err != nil {
			return err
		}
		s.Domains = d
	}
	if u.PixelID != nil {
		p := strings.TrimSpace(*u.PixelID)
		if p != "" && !pixelIDRe.MatchString(p) {
			return bad("pixel_id", "the pixel id is the 5 to 20 digit number shown in Events Manager")
		}
		s.PixelID = p
	}
	if u.AccessToken != nil {
		t, err := AccessToken(*u.AccessToken)
		if err != nil {
			return err
		}
		s.AccessToken = t
	}
	if u.TestEventCode != nil {
		c := strings.TrimSpace(*u.TestEventCode)
		if len(c) > MaxTestEventCodeLen || strings.ContainsAny(c, " \t\r\n") {
			return bad("test_event_code", "the test event code is a short code like TEST12345, without spaces")
		}
		s.TestEventCode = c
	}
	if u.Consent != nil {
		c := strings.TrimSpace(*u.Consent)
		if !consentOK[c] {
			return bad("consent", "consent must be none, required or ldu")
		}
		s.Consent = c
	}
	if u.DefaultRegion != nil {
		r, err := Region(*u.DefaultRegion)
		if err != nil {
			return err
		}
		s.DefaultRegion = r
	}
	if u.PartialLeads != nil {
		s.PartialLeads = *u.PartialLeads
	}
	if u.PartialLeadTimeout != nil {
		m := *u.PartialLeadTimeout
		if m < 1 || m > MaxPartialLeadMinutes {
			return bad("partial_lead_timeout_minutes", "the partial lead timeout is 1 to %d minutes", MaxPartialLeadMinutes)
		}
		s.PartialLeadTimeout = time.Duration(m) * time.Minute
	}
	if u.PartialLeadForward != nil {
		s.PartialLeadForward = *u.PartialLeadForward
	}
	if u.PartialLeadEvent != nil {
		e := strings.TrimSpace(*u.PartialLeadEvent)
		if e != "" && (len(e) > MaxEventNameLen || !eventRe.MatchString(e)) {
			return bad("partial_lead_event", "the event name has letters, digits, spaces, _ . - only (at most %d)", MaxEventNameLen)
		}
		s.PartialLeadEvent = e
	}
	if u.WebhookAllowHTTP != nil {
		s.WebhookAllowHTTP = *u.WebhookAllowHTTP
	}
	if u.WebhookAllowPrivate != nil {
		s.WebhookAllowPrivate = *u.WebhookAllowPrivate
	}
	if u.WebhookURL != nil {
		s.WebhookURL = strings.TrimSpace(*u.WebhookURL)
	}
	// The URL is checked against the policy it ends up with, also when
	// only the policy changed (turning an opt-in off under a URL that
	// needs it is refused).
	if (u.WebhookURL != nil || u.WebhookAllowHTTP != nil || u.WebhookAllowPrivate != nil) && s.WebhookURL != "" {
		p := netguard.Policy{AllowHTTP: s.WebhookAllowHTTP, AllowPrivate: s.WebhookAllowPrivate}
		if err := netguard.CheckURL(s.WebhookURL, p); err != nil {
			return bad("webhook_url", "%s", strings.TrimPrefix(err.Error(), netguard.ErrRefused.Error()+": "))
		}
	}
	if u.RetentionDays != nil {
		d := *u.RetentionDays
		if d < 1 || d > MaxRetentionDays {
			return bad("retention_days", "retention is 1 to %d days", MaxRetentionDays)
		}
		s.Retention = time.Duration(d) * 24 * time.Hour
	}
	if u.Identity != nil {
		m := strings.ToLower(strings.TrimSpace(*u.Identity))
		if !slices.Contains(store.IdentityModes, m) {
			return bad("identity", "identity must be full (link events by visitor id, external_id and email), visitor (same browser only) or off")
		}
		s.Identity = m
	}
	if u.ClickWindowDays != nil {
		d := *u.ClickWindowDays
		if d < 1 || d > MaxClickWindowDays {
			return bad("click_window_days", "the click window is 1 to %d days", MaxClickWindowDays)
		}
		s.ClickWindow = time.Duration(d) * 24 * time.Hour
	}
	return nil
}

// AccessToken returns a pasted access token trimmed; "" means the sandbox.
// It checks the token alone: to set one on a site, Apply an Update with
// AccessToken, which also asks for the site's pixel id.
func AccessToken(raw string) (string, error) {
	t := strings.TrimSpace(raw)
	if strings.ContainsAny(t, " \t\r\n") {
		return "", bad("access_token", "the access token must not contain whitespace")
	}
	return t, nil
}

// Region returns an operator's default region ("us", "Germany", "DE") as
// the upper-case ISO 3166-1 alpha-2 code it is stored as; "" clears it.
func Region(raw string) (string, error) {
	r := strings.TrimSpace(raw)
	if r == "" {
		return "", nil
	}
	cc, err := normalize.Normalize(normalize.Country, r, normalize.Options{})
	if err != nil || len(cc) != 2 {
		return "", bad("default_region", "%q is not a country; give a two-letter code such as US or DE", r)
	}
	return strings.ToUpper(cc), nil
}

// Domains cleans a site's domain list (see Domain), dropping blanks and
// repeats; at least one domain must remain.
func Domains(in []string) ([]string, error) {
	out := []string{}
	seen := map[string]bool{}
	for _, raw := range in {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		d, err := Domain(raw)
		if err != nil {
			return nil, err
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, bad("domains", "a site needs at least one domain (example.com)")
	}
	return out, nil
}

// errIP is why an address is refused as a site domain.
var errIP = errors.New("is an IP address: a site is identified by its domain name")

// Domain reduces what an operator pastes ("https://www.Shop.Example.com:8443/path")
// to the registrable form the relay matches browser origins against
// ("shop.example.com"): lower case, no scheme, port, path, trailing dot or
// leading "www." / "*.". A domain admits its subdomains, so dropping "www."
// loses nothing. Internationalized names are stored in punycode, the form
// browsers send in the Origin header; IP addresses are refused, and so are
// public suffixes (com, co.uk, github.io): anyone may register a name under
// one, so as a site's domain it would admit strangers' pages.
func Domain(raw string) (string, error) {
	d := strings.ToLower(strings.TrimSpace(raw))
	if i := strings.Index(d, "://"); i >= 0 {
		d = d[i+3:]
	}
	if i := strings.IndexAny(d, "/?#"); i >= 0 {
		d = d[:i]
	}
	if h, _, err := net.SplitHostPort(d); err == nil {
		d = h
	}
	d = strings.TrimSuffix(strings.Trim(d, "[]"), ".")
	if net.ParseIP(d) != nil {
		return "", bad("domains", "%q %v", d, errIP)
	}
	d = strings.TrimPrefix(d, "*.")
	ascii, err := idna.Lookup.ToASCII(d)
	if err != nil || !domainRe.MatchString(ascii) {
		return "", bad("domains", "%q is not a domain name (write it as example.com)", d)
	}
	if rest, ok := strings.CutPrefix(ascii, "www."); ok && !fbcookie.IsPublicSuffix(rest) {
		ascii = rest
	}
	if ascii != "localhost" && fbcookie.IsPublicSuffix(ascii) {
		return "", bad("domains", "%q is a public suffix, shared by unrelated sites (like com, co.uk or github.io): give the site's own domain, such as shop.%s", d, d)
	}
	return ascii, nil
}
