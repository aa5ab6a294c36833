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
	"github.com/capirelay/capirelay/internal/sitecfg"
	"github.com/capirelay/capirelay/internal/store"
)

func runSite(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv getenvFunc) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, "Usage: capirelay site add|list|set|set-token [flags]\n")
		return errUsage
	}
	switch args[0] {
	case "add":
		return siteAdd(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "list":
		return siteList(ctx, args[1:], stdout, stderr, getenv)
	case "set-token":
		return siteSetToken(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "set":
		return siteSet(ctx, args[1:], stdout, stderr, getenv)
	}
	fmt.Fprintf(stderr, "capirelay site: unknown subcommand %q (add, list, set, set-token)\n", args[0])
	return errUsage
}

func siteAdd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("site add", stderr, "site add --name N --domain D [--domain D2 …] [--pixel-id P --access-token-file PATH|--access-token -] [--test-event-code C] [any flag of site set]")
	var sf storeFlags
	sf.register(fs, getenv)
	var in sitecfg.Update
	in.Flags(fs)
	var tf accessTokenFlags
	tf.register(fs, "Conversions API access token (without one the site uses the sandbox)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("site add: unexpected argument %q", fs.Arg(0))
	}
	if tf.given() {
		tok, err := tf.read(stdin, stderr)
		if err != nil {
			return fmt.Errorf("site add: %w", err)
		}
		in.AccessToken = &tok
	}
	if _, err := in.NewSite(); err != nil {
		return fmt.Errorf("site add: %w", sitecfg.FlagError(err))
	}
	st, err := sf.open(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	site, apiKey, err := app.CreateSite(ctx, st, in)
	if err != nil {
		return fmt.Errorf("site add: %w", sitecfg.FlagError(err))
	}
	return json.NewEncoder(stdout).Encode(map[string]string{"site_key": site.Key, "api_key": apiKey})
}

func siteList(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("site list", stderr, "site list [--json]")
	var sf storeFlags
	sf.register(fs, getenv)
	asJSON := fs.Bool("json", false, "print JSON lines")
	if err := parseNoArgs(fs, args, stderr); err != nil {
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
		"default_region": s.DefaultRegion, "identity": s.IdentityMode(), "click_window_days": int(s.FbcWindow() / (24 * time.Hour)),
		"destination": dest, "status": status, "paused": s.Paused,
		"partial_leads": s.PartialLeads, "partial_lead_timeout_minutes": int(s.PartialLeadTimeout / time.Minute),
		"partial_lead_forward": s.PartialLeadForward, "partial_lead_event": s.PartialLeadEvent,
		"webhook_url": s.WebhookURL, "webhook_allow_http": s.WebhookAllowHTTP, "webhook_allow_private": s.WebhookAllowPrivate}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func siteSetToken(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("site set-token", stderr, "site set-token --site KEY --access-token-file PATH|--access-token - [--pixel-id P]")
	var sf storeFlags
	sf.register(fs, getenv)
	key := fs.String("site", "", "site key (required)")
	var in sitecfg.Update
	in.Flags(fs, "pixel_id")
	var tf accessTokenFlags
	tf.register(fs, "new Conversions API access token (this, or --access-token-file, is required)")
	if err := parseNoArgs(fs, args, stderr); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("site set-token: --site is required")
	}
	if !tf.given() {
		return errors.New("site set-token: --access-token-file PATH or --access-token - is required")
	}
	tok, err := tf.read(stdin, stderr)
	if err != nil {
		return fmt.Errorf("site set-token: %w", err)
	}
	in.AccessToken = &tok
	st, err := sf.open(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	site, err := st.Site(ctx, *key)
	if err != nil {
		return fmt.Errorf("site set-token: %w", err)
	}
	wasPaused := site.Paused
	// Apply refuses a token on a site without a pixel id (--pixel-id).
	if err := in.Apply(site); err != nil {
		return fmt.Errorf("site set-token: %w", sitecfg.FlagError(err))
	}
	if in.PixelID != nil {
		if err := st.UpdateSite(ctx, site); err != nil {
			return err
		}
	}
	if err := st.SetAccessToken(ctx, *key, site.AccessToken); err != nil {
		return fmt.Errorf("site set-token: %w", err)
	}
	was := ""
	if wasPaused {
		was = " (delivery resumed)"
	}
	fmt.Fprintf(stdout, "access token set for site %s%s\n", *key, was)
	return nil
}

func siteSet(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("site set", stderr, "site set --site KEY [--partial-lead-timeout D] [--partial-leads capture|off] [--partial-lead-forward on|off] [--partial-lead-event NAME] [--webhook-url URL] [--default-region CC] [--consent none|required|ldu] [--name N] [--domain D …] [--pixel-id P] [--test-event-code C] [--retention D]")
	var sf storeFlags
	sf.register(fs, getenv)
	key := fs.String("site", "", "site key (required)")
	var in sitecfg.Update
	in.Flags(fs)
	if err := parseNoArgs(fs, args, stderr); err != nil {
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
	if err := in.Apply(s); err != nil {
		return fmt.Errorf("site set: %w", sitecfg.FlagError(err))
	}
	if err := st.UpdateSite(ctx, s); err != nil {
		return fmt.Errorf("site set: %w", err)
	}
	return json.NewEncoder(stdout).Encode(publicSite(s))
}
