package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/capirelay/capirelay/internal/admin"
	"github.com/capirelay/capirelay/internal/store"
)

const adminUsage = `Usage:
  capirelay admin set-password [store flags]        read the dashboard password from stdin and store its hash
  capirelay admin create-token [store flags] NAME   create an admin API token (printed once)

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
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			fmt.Fprint(stderr, adminUsage)
			return errUsage
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
		fs := newFlagSet("admin create-token", stderr, "admin create-token [--data-dir D | --database-url URL] NAME")
		var sf storeFlags
		sf.register(fs, getenv)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		name := strings.TrimSpace(strings.Join(fs.Args(), " "))
		if name == "" {
			name = "api"
		}
		st, err := sf.open(ctx, getenv)
		if err != nil {
			return err
		}
		defer st.Close()
		tok, hash := admin.NewAPIToken()
		if err := st.CreateAdminToken(ctx, &store.AdminToken{Name: name, Hash: hash}); err != nil {
			return fmt.Errorf("store admin token: %w", err)
		}
		fmt.Fprintf(stderr, "Admin API token %q created. It is shown only now; send it as \"Authorization: Bearer <token>\".\n", name)
		fmt.Fprintln(stdout, tok)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, adminUsage)
		return nil
	}
	fmt.Fprintf(stderr, "capirelay admin: unknown command %q\n\n%s", args[0], adminUsage)
	return errUsage
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
