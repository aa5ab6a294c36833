package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"golang.org/x/term"

	"github.com/capirelay/capirelay/internal/admin"
	"github.com/capirelay/capirelay/internal/store"
)

const adminUsage = `Usage:
  capirelay admin set-password [store flags]        read the dashboard password from stdin and store its hash
  capirelay admin create-token [store flags] [--scope read|write|webhooks] [--expires 90d|DATE|never] NAME
                                                    create an admin API token (printed once);
                                                    NAME is one argument: quote one with spaces
  capirelay admin list-tokens [store flags]         list API tokens (never the tokens themselves)
  capirelay admin revoke-token [store flags] NAME   revoke the active API token of that name at once
  capirelay admin revoke-token [store flags] --id ID   revoke the API token of that id (list-tokens)

Store flags: --data-dir D (CAPIRELAY_DATA_DIR), --database-url postgres://… (CAPIRELAY_DATABASE_URL);
the key that seals secrets comes from CAPIRELAY_SECRET_KEY or the data directory, as for serve.
`

// runAdmin manages dashboard access: the admin password and API tokens,
// in the store serve uses (SQLite in the data directory, or PostgreSQL).
func runAdmin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv getenvFunc) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage)
		return errUsage
	}
	switch args[0] {
	case "set-password":
		fs := newFlagSet("admin set-password", stderr, "admin set-password [--data-dir D | --database-url URL] < password-file")
		var sf storeFlags
		sf.register(fs, getenv)
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return usageError(stderr, func() { fmt.Fprint(stderr, adminUsage) }, "admin set-password: unexpected argument %q (the password is read from standard input)", fs.Arg(0))
		}
		pw, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		hash, err := admin.HashPassword(pw)
		if err != nil {
			return err
		}
		st, err := sf.open(ctx, getenv)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.SetAdminPasswordHash(ctx, hash); err != nil {
			return fmt.Errorf("store admin password: %w", err)
		}
		fmt.Fprintln(stdout, "Admin password set; existing dashboard sessions were logged out.")
		return nil
	case "create-token":
		return adminCreateToken(ctx, args[1:], stdout, stderr, getenv)
	case "list-tokens":
		return adminListTokens(ctx, args[1:], stdout, stderr, getenv)
	case "revoke-token":
		return adminRevokeToken(ctx, args[1:], stdout, stderr, getenv)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, adminUsage)
		return nil
	}
	fmt.Fprintf(stderr, "capirelay admin: unknown command %q\n\n%s", args[0], adminUsage)
	return errUsage
}

// parseInterleaved parses fs's flags wherever they stand among args and
// returns the other arguments, in order.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseExpiry reads --expires: "never", a number of days ("90d"), a Go
// duration ("36h") or a date or RFC 3339 time; the result is after now.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "never" {
		return time.Time{}, nil
	}
	var t time.Time
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			t = now.AddDate(0, 0, n)
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 {
		t = now.Add(d)
	} else if v, err := time.Parse(time.RFC3339, s); err == nil {
		t = v
	} else if v, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		t = v
	}
	if t.IsZero() || !t.After(now) {
		return time.Time{}, fmt.Errorf("--expires: %q is not a future date, an age such as 90d or 36h, or never", s)
	}
	return t, nil
}

func adminCreateToken(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("admin create-token", stderr, "admin create-token [--data-dir D | --database-url URL] [--scope S] [--expires E] NAME")
	var sf storeFlags
	sf.register(fs, getenv)
	scope := fs.String("scope", admin.ScopeWrite, "read (GET only), write (all but webhook settings) or webhooks (everything)")
	expires := fs.String("expires", fmt.Sprintf("%dd", int(admin.DefaultTokenTTL/(24*time.Hour))), "when the token stops working: 90d, 36h, 2027-01-31 or never")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if !admin.ValidScope(*scope) {
		return fmt.Errorf("--scope: %q is not one of %s", *scope, strings.Join(admin.Scopes, ", "))
	}
	exp, err := parseExpiry(*expires, time.Now())
	if err != nil {
		return err
	}
	if len(rest) != 1 || strings.TrimSpace(rest[0]) == "" {
		return usageError(stderr, func() { fmt.Fprint(stderr, adminUsage) }, "admin create-token: %s", oneArgument("NAME", rest))
	}
	name := strings.TrimSpace(rest[0])
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("admin create-token: NAME %q has a control character", name)
	}
	st, err := sf.open(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	tok, hash := admin.NewAPIToken()
	at := &store.AdminToken{Name: name, Hash: hash, Scope: *scope, ExpiresAt: exp}
	if err := st.CreateAdminToken(ctx, at); err != nil {
		return fmt.Errorf("store admin token: %w", err)
	}
	fmt.Fprintf(stderr, "Admin API token %q (id %d, scope %s, expires %s) created. It is shown only now; send it as \"Authorization: Bearer <token>\".\n",
		name, at.ID, at.Scope, expiryText(exp))
	fmt.Fprintln(stdout, tok)
	return nil
}

func expiryText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// openTokens opens the store of sf and lists its admin tokens; the
// caller closes the store.
func openTokens(ctx context.Context, sf *storeFlags, getenv getenvFunc) (store.Store, []store.AdminToken, error) {
	st, err := sf.open(ctx, getenv)
	if err != nil {
		return nil, nil, err
	}
	toks, err := st.ListAdminTokens(ctx)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, toks, nil
}

func adminListTokens(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("admin list-tokens", stderr, "admin list-tokens [--data-dir D | --database-url URL]")
	var sf storeFlags
	sf.register(fs, getenv)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(stderr, func() { fmt.Fprint(stderr, adminUsage) }, "admin list-tokens: unexpected argument %q", fs.Arg(0))
	}
	st, toks, err := openTokens(ctx, &sf, getenv)
	if err != nil {
		return err
	}
	st.Close()
	now := time.Now()
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	// One word or date per cell: the revocation has its own column.
	fmt.Fprintln(w, "ID\tNAME\tSCOPE\tSTATE\tCREATED\tEXPIRES\tREVOKED\tLAST USED")
	for _, t := range toks {
		state, revoked := "active", "-"
		switch {
		case !t.RevokedAt.IsZero():
			state, revoked = "revoked", t.RevokedAt.UTC().Format(time.RFC3339)
		case !t.Active(now):
			state = "expired"
		}
		used := "never"
		if !t.LastUsedAt.IsZero() {
			used = t.LastUsedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Scope, state,
			t.CreatedAt.UTC().Format(time.RFC3339), expiryText(t.ExpiresAt), revoked, used)
	}
	return w.Flush()
}

// adminRevokeToken revokes by name (a bare argument, even one of digits)
// or by --id, never guessing which of the two was meant.
func adminRevokeToken(ctx context.Context, args []string, stdout, stderr io.Writer, getenv getenvFunc) error {
	fs := newFlagSet("admin revoke-token", stderr, "admin revoke-token [--data-dir D | --database-url URL] NAME | --id ID")
	var sf storeFlags
	sf.register(fs, getenv)
	id := fs.Int64("id", 0, "revoke the token of this id (capirelay admin list-tokens) instead of one by NAME")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	byID := false
	fs.Visit(func(f *flag.Flag) { byID = byID || f.Name == "id" })
	switch {
	case byID && len(rest) > 0:
		return usageError(stderr, func() { fmt.Fprint(stderr, adminUsage) }, "admin revoke-token: give NAME or --id ID, not both (got --id %d and %q)", *id, rest)
	case byID && *id <= 0:
		return usageError(stderr, func() { fmt.Fprint(stderr, adminUsage) }, "admin revoke-token: --id %d is not a token id (capirelay admin list-tokens)", *id)
	case !byID && len(rest) == 0:
		return usageError(stderr, func() { fmt.Fprint(stderr, adminUsage) }, "admin revoke-token: NAME or --id ID is required")
	case !byID && (len(rest) != 1 || strings.TrimSpace(rest[0]) == ""):
		return usageError(stderr, func() { fmt.Fprint(stderr, adminUsage) }, "admin revoke-token: %s", oneArgument("NAME", rest))
	}
	st, toks, err := openTokens(ctx, &sf, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	var match []store.AdminToken
	if byID {
		for _, t := range toks {
			if t.ID == *id {
				match = append(match, t)
			}
		}
		if len(match) == 0 {
			return fmt.Errorf("revoke-token: no token has the id %d (capirelay admin list-tokens)", *id)
		}
	} else {
		// A name that only one token not yet revoked carries.
		name := strings.TrimSpace(rest[0])
		for _, t := range toks {
			if t.Name == name && t.RevokedAt.IsZero() {
				match = append(match, t)
			}
		}
		switch len(match) {
		case 0:
			if n, err := strconv.ParseInt(name, 10, 64); err == nil {
				return fmt.Errorf("revoke-token: no active token is named %q; to revoke the token of id %d, use --id %d", name, n, n)
			}
			return fmt.Errorf("revoke-token: no active token is named %q (capirelay admin list-tokens)", name)
		case 1:
		default:
			return fmt.Errorf("revoke-token: %d tokens are named %q; revoke one with --id ID (capirelay admin list-tokens)", len(match), name)
		}
	}
	if err := st.RevokeAdminToken(ctx, match[0].ID, time.Now()); err != nil {
		return fmt.Errorf("revoke-token: %w", err)
	}
	fmt.Fprintf(stdout, "Admin API token %d (%s) revoked.\n", match[0].ID, match[0].Name)
	return nil
}

// readPassword reads one line: without echo when stdin is a terminal
// (asking twice), as-is when piped (capirelay admin set-password < file).
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "New admin password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on standard input")
	}
	return pw, nil
}
