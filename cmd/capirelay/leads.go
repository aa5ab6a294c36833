package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/capirelay/capirelay/internal/leads"
	"github.com/capirelay/capirelay/internal/store"
)

const leadsUsage = `Usage:
  capirelay leads export --site KEY [--since T] [--state S]   CSV with raw values to stdout
  capirelay leads list --site KEY [--since T] [--state S]     leads without their values
  capirelay leads webhook-secret --site KEY                   the webhook signing secret

--since is RFC 3339, a date (2006-01-02) or an age (36h, 7d).
--state is partial, converted, submitted, open or all, comma separated;
export defaults to partial,converted, list to all.
`

func runLeadsEnv(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv getenvFunc) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, leadsUsage)
		return errUsage
	}
	switch args[0] {
	case "export", "list":
		return leadsExport(ctx, args[0], args[1:], stdout, stderr, getenv)
	case "webhook-secret":
		return leadsWebhookSecret(ctx, args[1:], stdout, stderr, getenv)
	}
	fmt.Fprintf(stderr, "capirelay leads: unknown subcommand %q\n\n%s", args[0], leadsUsage)
	return errUsage
}

// leadsStore is what the leads and forget commands need of the store.
type leadsStore interface {
	store.Sites
	store.Leads
	store.Identities
	store.Forgetter
	Close() error
}

// openLeadsStore opens the store as the other commands do and checks that
// it keeps leads.
func openLeadsStore(ctx context.Context, sf *storeFlags, getenv getenvFunc) (leadsStore, error) {
	st, err := sf.open(ctx, getenv)
	if err != nil {
		return nil, err
	}
	ls, ok := st.(leadsStore)
	if !ok {
		st.Close()
		return nil, errors.New("this store does not keep leads")
	}
	return ls, nil
}

func leadsExport(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("leads "+cmd, stderr, "leads "+cmd+" --site KEY [--since T] [--state S]")
	var sf storeFlags
	sf.register(fs, getenv)
	key := fs.String("site", "", "site key (required)")
	sinceFlag := fs.String("since", "", "only leads active since T: RFC 3339, 2006-01-02, or an age such as 36h or 7d")
	stateFlag := fs.String("state", "", "partial, converted, submitted, open or all, comma separated")
	if err := parseNoArgs(fs, args, stderr); err != nil {
		return err
	}
	if *key == "" {
		return fmt.Errorf("leads %s: --site is required", cmd)
	}
	since, err := parseSince(*sinceFlag, time.Now())
	if err != nil {
		return fmt.Errorf("leads %s: --since: %w", cmd, err)
	}
	states, err := parseStates(*stateFlag)
	if err != nil {
		return fmt.Errorf("leads %s: --state: %w", cmd, err)
	}
	st, err := openLeadsStore(ctx, &sf, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Site(ctx, *key); err != nil {
		return fmt.Errorf("leads %s: %w", cmd, err)
	}
	if cmd == "export" {
		n, err := leads.New(st, nil, nil).Export(ctx, stdout, *key, since, states)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "exported %d leads\n", n)
		return nil
	}
	ls, err := st.ListLeads(ctx, store.LeadFilter{SiteKey: *key, States: states, Since: since})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	// LEAD ID is the export's lead_id and the webhook's, not the row id.
	fmt.Fprintln(tw, "LEAD ID\tSTATE\tFORM\tVISITOR\tLAST ACTIVITY\tFIELDS\tFORWARD")
	for _, l := range ls {
		var names []string
		for _, k := range leads.FieldNames {
			if l.Data.Fields[k] != "" {
				names = append(names, k)
			}
		}
		fwd := l.ForwardState
		if fwd == "" {
			fwd = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.SessionID, l.State, l.FormID, l.VisitorID,
			l.UpdatedAt.UTC().Format(time.RFC3339), strings.Join(names, ","), fwd)
	}
	return tw.Flush()
}

func leadsWebhookSecret(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("leads webhook-secret", stderr, "leads webhook-secret --site KEY")
	var sf storeFlags
	sf.register(fs, getenv)
	key := fs.String("site", "", "site key (required)")
	if err := parseNoArgs(fs, args, stderr); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("leads webhook-secret: --site is required")
	}
	st, err := openLeadsStore(ctx, &sf, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Site(ctx, *key); err != nil {
		return fmt.Errorf("leads webhook-secret: %w", err)
	}
	secret, err := leads.New(st, nil, nil).WebhookSecret(ctx, *key)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
	return nil
}

// parseSince reads an instant, a date or an age before now; "" is zero.
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not RFC 3339, a date or an age", s)
}

var leadStates = []string{store.LeadOpen, store.LeadSubmitted, store.LeadPartial, store.LeadConverted}

func parseStates(s string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(s, ",") {
		v = strings.ToLower(strings.TrimSpace(v))
		switch {
		case v == "":
		case v == "all":
			return nil, nil
		case slices.Contains(leadStates, v):
			out = append(out, v)
		default:
			return nil, fmt.Errorf("unknown state %q", v)
		}
	}
	return out, nil
}
