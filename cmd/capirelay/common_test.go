package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/secret"
)

// TestCLIHidesDatabasePassword: neither -h nor a refused database URL
// prints the URL's password.
func TestCLIHidesDatabasePassword(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"postgres://relay:s3cret-pw@127.0.0.1:1/relay", "postgress://relay:s3cret-pw@db.example/relay"} {
		getenv := func(k string) string {
			if k == "CAPIRELAY_DATABASE_URL" {
				return url
			}
			return ""
		}
		for _, args := range [][]string{{"site", "list", "-h"}, {"admin", "list-tokens", "-h"}, {"serve", "-h"}, {"site", "list"}} {
			var out, errw bytes.Buffer
			err := run(t.Context(), args, strings.NewReader(""), &out, &errw, getenv)
			msg := out.String() + errw.String()
			if err != nil {
				msg += err.Error()
			}
			if strings.Contains(msg, "s3cret-pw") {
				t.Errorf("capirelay %q with CAPIRELAY_DATABASE_URL=%s printed the password:\n%s", args, url, msg)
			}
		}
	}
}

// TestCommandsCreateNoStore: only serve and migrate create a data
// directory; every other command against one without relay data fails,
// naming the directory, and creates nothing (no store, no secret key).
func TestCommandsCreateNoStore(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "typo")
	commands := [][]string{
		{"site", "list"},
		{"site", "add", "--name", "T", "--domain", "t.example.com"},
		{"site", "set", "--site", "s", "--name", "T"},
		{"site", "set-token", "--site", "s", "--access-token", "EAAB"},
		{"sandbox", "tail", "--site", "s"},
		{"leads", "list", "--site", "s"},
		{"leads", "export", "--site", "s"},
		{"leads", "webhook-secret", "--site", "s"},
		{"forget", "--visitor", "v"},
		{"admin", "set-password"},
		{"admin", "create-token", "ci"},
		{"admin", "list-tokens"},
		{"admin", "revoke-token", "ci"},
		{"import", "--site", "s", filepath.Join(missing, "orders.csv")},
	}
	cliRun := func(getenv getenvFunc, args ...string) (string, error) {
		var out, errw bytes.Buffer
		err := run(t.Context(), args, strings.NewReader("a long enough password\n"), &out, &errw, getenv)
		return out.String() + errw.String(), err
	}
	none := func(string) string { return "" }
	for _, args := range commands {
		out, err := cliRun(none, append(args, "--data-dir", missing)...)
		want := "no relay data in " + missing + " "
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--data-dir") {
			t.Errorf("capirelay %q --data-dir %s = %v (%s), want an error saying %q", args, missing, err, out, want)
		}
		if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("capirelay %q created %s", args, missing)
		}
	}

	// The default data directory is ./data, named as an absolute path.
	cwd := t.TempDir()
	t.Chdir(cwd)
	if out, err := cliRun(none, "site", "list"); err == nil || !strings.Contains(err.Error(), "no relay data in "+filepath.Join(cwd, "data")+" ") {
		t.Errorf("site list without a data directory = %v (%s)", err, out)
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Errorf("site list created %v in the working directory", entries)
	}

	// With PostgreSQL, a command needs the relay's key: from the
	// environment or the data directory, never a new one.
	pg := func(k string) string {
		if k == "CAPIRELAY_DATABASE_URL" {
			return "postgres://relay:pw@127.0.0.1:1/relay"
		}
		return ""
	}
	if out, err := cliRun(pg, "site", "list", "--data-dir", missing); err == nil || !strings.Contains(err.Error(), "CAPIRELAY_SECRET_KEY") {
		t.Errorf("site list with PostgreSQL and no secret key = %v (%s), want an error naming CAPIRELAY_SECRET_KEY", err, out)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("site list with PostgreSQL created %s", missing)
	}

	// migrate creates the store; then the commands work.
	dir := filepath.Join(t.TempDir(), "relay")
	if out, err := cliRun(none, "migrate", "--data-dir", dir); err != nil {
		t.Fatalf("migrate = %v (%s)", err, out)
	}
	if out, err := cliRun(none, "site", "list", "--data-dir", dir); err != nil {
		t.Fatalf("site list after migrate = %v (%s)", err, out)
	}
	// A store whose key file is gone is not opened with a new key, which
	// would seal new values serve cannot read.
	key := filepath.Join(dir, secret.KeyFileName)
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if out, err := cliRun(none, "site", "add", "--name", "T", "--domain", "t.example.com", "--data-dir", dir); err == nil ||
		!strings.Contains(err.Error(), "no secret key in "+dir) || !strings.Contains(err.Error(), "CAPIRELAY_SECRET_KEY") {
		t.Errorf("site add without the key file = %v (%s), want an error naming the key", err, out)
	}
	if _, err := os.Stat(key); !errors.Is(err, fs.ErrNotExist) {
		t.Error("site add created a new secret key")
	}
}

// cliMain runs capirelay ARGS… as main does: it returns what the command
// wrote to standard output and standard error, and the exit status.
func cliMain(t *testing.T, getenv getenvFunc, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errw bytes.Buffer
	if err := run(t.Context(), args, strings.NewReader(""), &out, &errw, getenv); err != nil {
		code = report(&errw, err)
	}
	return out.String(), errw.String(), code
}

// TestBadFlagSaidOnce: a flag that does not parse is reported once, then
// the usage, with exit status 2.
func TestBadFlagSaidOnce(t *testing.T) {
	t.Parallel()
	getenv := dataDirEnv(newDataDir(t))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"site", "set", "--site", "s", "--partial-lead-timeout", "abc"}, `invalid value "abc" for flag -partial-lead-timeout`},
		{[]string{"site", "set", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"site", "list", "--json=maybe"}, `invalid boolean value "maybe" for -json`},
		{[]string{"admin", "create-token", "--expires"}, "flag needs an argument: -expires"},
		{[]string{"import", "--bogus", "x.csv"}, "flag provided but not defined: -bogus"},
		{[]string{"serve", "--bogus"}, "flag provided but not defined: -bogus"},
	} {
		_, stderr, code := cliMain(t, getenv, tc.args...)
		if code != 2 || strings.Count(stderr, tc.want) != 1 || !strings.Contains(stderr, "Usage") {
			t.Errorf("capirelay %q: exit %d, stderr:\n%s\nwant %q once, the usage, exit 2", tc.args, code, stderr, tc.want)
		}
	}
}
