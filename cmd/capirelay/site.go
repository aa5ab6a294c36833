package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/capirelay/capirelay/internal/app"
	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/store"
)

func runSite(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, "Usage: capirelay site add|list|set|set-token [flags]\n")
		return errUsage
	}
	switch args[0] {
	case "add":
		return siteAdd(ctx, args[1:], stdout, stderr, getenv)
	case "list":
		return siteList(ctx, args[1:], stdout, stderr, getenv)
	case "set-token":
		return siteSetToken(ctx, args[1:], stdout, stderr, getenv)
	case "set":
		return siteSet(ctx, args[1:], stdout, stderr, getenv)
	}
	fmt.Fprintf(stderr, "capirelay site: unknown subcommand %q (add, list, set, set-token)\n", args[0])
	return errUsage
}

func siteAdd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("site add", stderr, "site add --name N --domain D [--domain D2 …] [--pixel-id P --access-token T] [--test-event-code C]")
	var sf storeFlags
	sf.register(fs, getenv)
	var in app.SiteInput
	var domains multiFlag
	fs.StringVar(&in.Name, "name", "", "site name (required)")
	fs.Var(&domains, "domain", "a domain of the site; repeat for more (required)")
	fs.StringVar(&in.PixelID, "pixel-id", "", "Meta pixel (dataset) id")
	fs.StringVar(&in.AccessToken, "access-token", "", "Conversions API access token (without one the site uses the sandbox)")
	fs.StringVar(&in.TestEventCode, "test-event-code", "", "Meta test_event_code sent with every event")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("site add: unexpected argument %q", fs.Arg(0))
	}
	in.Domains = domains
	if err := app.ValidateSite(&in); err != nil {
		return fmt.Errorf("site add: %w", err)
	}
	st, err := sf.open(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	site, apiKey, err := app.CreateSite(ctx, st, in)
	if err != nil {
		return fmt.Errorf("site add: %w", err)
	}
	return json.NewEncoder(stdout).Encode(map[string]string{"site_key": site.Key, "api_key": apiKey})
}

func siteList(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("site list", stderr, "site list [--json]")
	var sf storeFlags
	sf.register(fs, getenv)
	asJSON := fs.Bool("json", false, "print JSON lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := sf.open(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	sites, err := st.ListSites(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, s := range sites {
			if err := enc.Encode(publicSite(s)); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE KEY\tNAME\tDOMAINS\tPIXEL\tDESTINATION\tSTATUS")
	for _, s := range sites {
		p := publicSite(s)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Key, s.Name, strings.Join(s.Domains, ","), dash(s.PixelID), p["destination"], p["status"])
	}
	return tw.Flush()
}

// publicSite is what the CLI shows of a site: never the token or api key.
func publicSite(s *store.Site) map[string]any {
	dest, status := "meta", "active"
	if s.Sandbox() {
		dest = "sandbox"
	}
	if s.Paused {
		status = "paused: " + s.PauseReason
	}
	return map[string]any{"site_key": s.Key, "name": s.Name, "domains": s.Domains, "pixel_id": s.PixelID,
		"access_token_set": s.AccessToken != "", "test_event_code": s.TestEventCode, "consent": s.Consent,
		"default_region": s.DefaultRegion, "destination": dest, "status": status, "paused": s.Paused}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func siteSetToken(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("site set-token", stderr, "site set-token --site KEY --access-token T")
	var sf storeFlags
	sf.register(fs, getenv)
	key := fs.String("site", "", "site key (required)")
	token := fs.String("access-token", "", "new Conversions API access token (required)")
	pixel := fs.String("pixel-id", "", "also set the pixel id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("site set-token: --site is required")
	}
	if strings.TrimSpace(*token) == "" {
		return errors.New("site set-token: --access-token is required")
	}
	st, err := sf.open(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	site, err := st.Site(ctx, *key)
	if err != nil {
		return fmt.Errorf("site set-token: %w", err)
	}
	if *pixel != "" {
		in := app.SiteInput{Name: site.Name, Domains: site.Domains, PixelID: *pixel}
		if err := app.ValidateSite(&in); err != nil {
			return fmt.Errorf("site set-token: %w", err)
		}
		site.PixelID = in.PixelID
		if err := st.UpdateSite(ctx, site); err != nil {
			return err
		}
	}
	if site.PixelID == "" {
		return errors.New("site set-token: the site has no pixel id; add --pixel-id")
	}
	if err := st.SetAccessToken(ctx, *key, strings.TrimSpace(*token)); err != nil {
		return fmt.Errorf("site set-token: %w", err)
	}
	was := ""
	if site.Paused {
		was = " (delivery resumed)"
	}
	fmt.Fprintf(stdout, "access token set for site %s%s\n", *key, was)
	return nil
}

func siteSet(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("site set", stderr, "site set --site KEY [--partial-lead-timeout D] [--partial-leads capture|off] [--partial-lead-forward on|off] [--partial-lead-event NAME] [--webhook-url URL] [--default-region CC] [--consent none|required|ldu] [--name N] [--domain D …] [--test-event-code C] [--retention D]")
	var sf storeFlags
	sf.register(fs, getenv)
	key := fs.String("site", "", "site key (required)")
	timeout := fs.String("partial-lead-timeout", "", "idle time before an unsubmitted form becomes a partial lead (e.g. 20m, 30s)")
	capture := fs.String("partial-leads", "", "capture or off")
	forward := fs.String("partial-lead-forward", "", "on or off: send partial leads to Meta (needs consent)")
	evName := fs.String("partial-lead-event", "", "event name for forwarded partial leads")
	webhook := fs.String("webhook-url", "", "URL that receives partial leads (\"\" to keep, \"none\" to clear)")
	region := fs.String("default-region", "", "ISO country code for phones without one (e.g. us, gb)")
	consent := fs.String("consent", "", "none, required or ldu")
	name := fs.String("name", "", "site name")
	tec := fs.String("test-event-code", "", "Meta test_event_code (\"none\" to clear)")
	retention := fs.String("retention", "", "how long partial leads are kept (e.g. 720h)")
	var domains multiFlag
	fs.Var(&domains, "domain", "replace the domains; repeat for more")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("site set: --site is required")
	}
	st, err := sf.open(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := st.Site(ctx, *key)
	if err != nil {
		return fmt.Errorf("site set: %w", err)
	}
	if err := applySiteSettings(s, siteSettings{timeout: *timeout, capture: *capture, forward: *forward, event: *evName,
		webhook: *webhook, region: *region, consent: *consent, name: *name, testCode: *tec, retention: *retention, domains: domains}); err != nil {
		return fmt.Errorf("site set: %w", err)
	}
	if err := st.UpdateSite(ctx, s); err != nil {
		return fmt.Errorf("site set: %w", err)
	}
	return json.NewEncoder(stdout).Encode(publicSite(s))
}

type siteSettings struct {
	timeout, capture, forward, event, webhook, region, consent, name, testCode, retention string
	domains                                                                               []string
}

func applySiteSettings(s *store.Site, in siteSettings) error {
	if in.timeout != "" {
		d, err := time.ParseDuration(in.timeout)
		if err != nil || d < time.Second {
			return errors.New("--partial-lead-timeout: must be a duration of at least 1s, such as 30s or 20m")
		}
		s.PartialLeadTimeout = d
	}
	if in.retention != "" {
		d, err := time.ParseDuration(in.retention)
		if err != nil || d < time.Hour {
			return errors.New("--retention: must be a duration of at least 1h, such as 720h")
		}
		s.Retention = d
	}
	switch in.capture {
	case "":
	case "capture", "on":
		s.PartialLeads = true
	case "off":
		s.PartialLeads = false
	default:
		return errors.New("--partial-leads: must be capture or off")
	}
	switch in.forward {
	case "":
	case "on":
		s.PartialLeadForward = true
	case "off":
		s.PartialLeadForward = false
	default:
		return errors.New("--partial-lead-forward: must be on or off")
	}
	if in.event != "" {
		if len(in.event) > 100 || strings.ContainsAny(in.event, " \t\n") {
			return errors.New("--partial-lead-event: must be an event name without spaces")
		}
		s.PartialLeadEvent = in.event
	}
	switch in.webhook {
	case "":
	case "none":
		s.WebhookURL = ""
	default:
		if !strings.HasPrefix(in.webhook, "https://") && !strings.HasPrefix(in.webhook, "http://") {
			return errors.New("--webhook-url: must be an http(s) URL")
		}
		s.WebhookURL = in.webhook
	}
	if in.region != "" {
		cc, err := normalize.Normalize(normalize.Country, in.region, normalize.Options{})
		if err != nil {
			return fmt.Errorf("--default-region: %q is not a country", in.region)
		}
		s.DefaultRegion = cc
	}
	switch in.consent {
	case "":
	case store.ConsentNone, store.ConsentRequired, store.ConsentLDU:
		s.Consent = in.consent
	default:
		return errors.New("--consent: must be none, required or ldu")
	}
	if in.name != "" {
		s.Name = in.name
	}
	switch in.testCode {
	case "":
	case "none":
		s.TestEventCode = ""
	default:
		s.TestEventCode = in.testCode
	}
	if len(in.domains) > 0 {
		si := app.SiteInput{Name: s.Name, Domains: in.domains}
		if err := app.ValidateSite(&si); err != nil {
			return err
		}
		s.Domains = si.Domains
	}
	return nil
}
