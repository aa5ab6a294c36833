package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/capirelay/capirelay/internal/admin"
	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
)

const adminUsage = `Usage:
  capirelay admin set-password        read the dashboard password from stdin and store its hash
  capirelay admin create-token NAME   create an admin API token (printed once)
`

// runAdmin manages dashboard access: the admin password and API tokens.
func runAdmin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage)
		return errUsage
	}
	switch args[0] {
	case "set-password":
		if len(args) != 1 {
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
		st, err := openAdminStore(ctx)
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
		name := strings.TrimSpace(strings.Join(args[1:], " "))
		if name == "" {
			name = "api"
		}
		st, err := openAdminStore(ctx)
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

// adminStore is what the admin subcommands need.
type adminStore interface {
	store.Admin
	Close() error
}

// openAdminStore opens the SQLite store of CAPIRELAY_DATA_DIR (default
// ./data) with the key of CAPIRELAY_SECRET_KEY or the data directory.
// TODO(admin): use storeFlags.open once it returns the admin tables for
// PostgreSQL too.
func openAdminStore(ctx context.Context) (adminStore, error) {
	dir := os.Getenv("CAPIRELAY_DATA_DIR")
	if dir == "" {
		dir = "./data"
	}
	key, err := secret.LoadOrCreateKey(os.Getenv("CAPIRELAY_SECRET_KEY"), dir)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	box, err := secret.New(key)
	if err != nil {
		return nil, err
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, sqlite.FileName), box)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return db, nil
}
