package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/store"
)

func runForgetEnv(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("forget", stderr, "forget --email X | --phone X | --visitor ID [--site KEY] [--region CC]")
	var sf storeFlags
	sf.register(fs, getenv)
	email := fs.String("email", "", "the person's email address")
	phone := fs.String("phone", "", "the person's phone number (international, or national with --region or --site)")
	visitor := fs.String("visitor", "", "a browser visitor id")
	key := fs.String("site", "", "only this site (default every site)")
	region := fs.String("region", "", "ISO country of a national phone number (default the site's, else every site's)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	given := 0
	for _, v := range []string{*email, *phone, *visitor} {
		if strings.TrimSpace(v) != "" {
			given++
		}
	}
	switch {
	case fs.NArg() > 0:
		// Not echoed: it may be part of an address or a name.
		return usageError(stderr, fs.Usage, "forget: %d unexpected arguments after the flags (quote a value with spaces)", fs.NArg())
	case given != 1:
		return usageError(stderr, fs.Usage, "forget: give one of --email, --phone or --visitor (%d given)", given)
	}
	st, err := openLeadsStore(ctx, &sf, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	req := store.ForgetRequest{SiteKey: *key}
	var regions []string
	if *key != "" {
		site, err := st.Site(ctx, *key)
		if err != nil {
			return fmt.Errorf("forget: %w", err)
		}
		regions = append(regions, site.DefaultRegion)
	} else {
		sites, err := st.ListSites(ctx)
		if err != nil {
			return fmt.Errorf("forget: %w", err)
		}
		for _, s := range sites {
			regions = append(regions, s.DefaultRegion)
		}
	}
	if *region != "" {
		regions = []string{*region}
	}
	switch {
	case *email != "":
		h, err := normalize.Hash(normalize.Email, *email, normalize.Options{})
		if err != nil {
			return fmt.Errorf("forget: --email: %w", err)
		}
		req.Hashes = []string{h}
	case *phone != "":
		// A national number hashes differently per region: try each.
		seen := map[string]bool{}
		var lastErr error
		for _, r := range append(regions, "") {
			h, err := normalize.Hash(normalize.Phone, *phone, normalize.Options{Region: r})
			if err != nil {
				lastErr = err
				continue
			}
			if !seen[h] {
				seen[h] = true
				req.Hashes = append(req.Hashes, h)
			}
		}
		if len(req.Hashes) == 0 {
			return fmt.Errorf("forget: --phone: %w (give it in international format or pass --region)", lastErr)
		}
	default:
		req.VisitorIDs = []string{strings.TrimSpace(*visitor)}
	}
	res, err := st.Forget(ctx, req)
	if err != nil {
		return err
	}
	for _, kind := range []struct {
		name string
		n    int
	}{
		{"visitors", res.Visitors}, {"identities", res.Identities}, {"identity_keys", res.IdentityKeys},
		{"leads", res.Leads}, {"lead_sessions", res.Sessions}, {"webhook_jobs", res.WebhookJobs},
		{"outbox_events", res.OutboxEvents}, {"dedup_keys", res.DedupKeys}, {"sandbox_events", res.SandboxEvents},
	} {
		fmt.Fprintf(stdout, "%s\t%d\n", kind.name, kind.n)
	}
	if res == (store.ForgetResult{}) {
		fmt.Fprintln(stderr, "nothing found for that person")
	}
	return nil
}
