package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/admin"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// TestAdminCommandsReachEitherStore: admin set-password and create-token
// write to the store serve uses, SQLite in the data directory or the
// PostgreSQL of --database-url / CAPIRELAY_DATABASE_URL.
func TestAdminCommandsReachEitherStore(t *testing.T) {
	var key [32]byte
	rand.Read(key[:])
	secretKey := base64.StdEncoding.EncodeToString(key[:])
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			env := map[string]string{"CAPIRELAY_DATA_DIR": t.TempDir(), "CAPIRELAY_SECRET_KEY": secretKey}
			if backend == "postgres" {
				env["CAPIRELAY_DATABASE_URL"] = storetest.PostgresDatabase(t)
			}
			getenv := func(k string) string { return env[k] }
			migrate(t, getenv)
			var out, errw bytes.Buffer
			if err := runAdmin(t.Context(), []string{"set-password"}, strings.NewReader("correct horse\n"), &out, &errw, getenv); err != nil {
				t.Fatalf("set-password: %v (%s)", err, errw.String())
			}
			out.Reset()
			if err := runAdmin(t.Context(), []string{"create-token", "deploy bot"}, nil, &out, &errw, getenv); err != nil {
				t.Fatalf("create-token: %v (%s)", err, errw.String())
			}
			tok := strings.TrimSpace(out.String())

			var sf storeFlags
			sf.dataDir, sf.databaseURL = env["CAPIRELAY_DATA_DIR"], env["CAPIRELAY_DATABASE_URL"]
			st, err := sf.open(t.Context(), getenv)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			hash, err := st.AdminPasswordHash(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := admin.CheckPassword(hash, "correct horse"); !ok || err != nil {
				t.Errorf("the stored password hash does not match the password (%v)", err)
			}
			got, err := st.AdminTokenByHash(t.Context(), admin.TokenHash(tok), time.Now())
			if err != nil || got.Name != "deploy bot" {
				t.Errorf("token by hash = %+v, %v", got, err)
			}
		})
	}
}

func TestAdminTokensCLI(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	getenv := dataDirEnv(dir)
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := runAdmin(t.Context(), args, strings.NewReader(""), &out, &errOut, getenv)
		return out.String(), errOut.String(), err
	}
	ro, info, err := run("create-token", "--scope", "read", "grafana board", "--expires", "30d")
	if err != nil || !strings.HasPrefix(ro, "cra_") {
		t.Fatalf("create-token = %q, %v", ro, err)
	}
	want := time.Now().AddDate(0, 0, 30).UTC().Format(time.DateOnly)
	if !strings.Contains(info, `"grafana board"`) || !strings.Contains(info, "scope read") || !strings.Contains(info, want) {
		t.Errorf("create-token said %q, want the name, scope read and the expiry %s", info, want)
	}
	if _, info, err = run("create-token", "ci"); err != nil || !strings.Contains(info, "scope write") ||
		!strings.Contains(info, time.Now().AddDate(0, 0, 90).UTC().Format(time.DateOnly)) {
		t.Fatalf("create-token with defaults said %q, %v; want scope write, 90 days", info, err)
	}
	for _, bad := range [][]string{
		{"create-token", "--scope", "root", "x"},
		{"create-token", "--expires", "yesterday", "x"},
		{"create-token", "--expires", "2001-01-01", "x"},
		{"revoke-token", "nobody"},
		{"revoke-token"},
	} {
		if _, _, err := run(bad...); err == nil {
			t.Errorf("admin %q succeeded, want an error", bad)
		}
	}
	if _, _, err := run("revoke-token", "grafana board"); err != nil {
		t.Fatalf("revoke-token by name = %v", err)
	}
	list, _, err := run("list-tokens")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], "grafana board") || !strings.Contains(lines[1], "revoked") ||
		!strings.Contains(lines[2], "ci") || !strings.Contains(lines[2], "active") {
		t.Fatalf("list-tokens =\n%s\nwant the revoked read token and the active ci one", list)
	}
	if strings.Contains(list, ro) || strings.Contains(list, strings.TrimSpace(ro)[4:12]) {
		t.Error("list-tokens shows a token")
	}
}

// TestAdminTokenNamesAndIDs: create-token takes exactly one NAME;
// revoke-token takes a NAME (digits too) or --id, never mistaking one for
// the other; list-tokens keeps one value per column.
func TestAdminTokenNamesAndIDs(t *testing.T) {
	t.Parallel()
	getenv := dataDirEnv(newDataDir(t))
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := runAdmin(t.Context(), args, strings.NewReader(""), &out, &errOut, getenv)
		return out.String(), errOut.String(), err
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"create-token"}, "create-token: NAME is required"},
		{[]string{"create-token", "--scope", "read"}, "create-token: NAME is required"},
		{[]string{"create-token", "a", "b"}, `create-token: one NAME, got 2 arguments ["a" "b"]`},
		{[]string{"create-token", "a\tb"}, "control character"},
		{[]string{"revoke-token"}, "revoke-token: NAME or --id ID is required"},
		{[]string{"revoke-token", "a", "b"}, "revoke-token: one NAME, got 2"},
		{[]string{"revoke-token", "--id", "1", "first"}, "not both"},
		{[]string{"revoke-token", "--id", "0"}, "--id 0 is not a token id"},
		{[]string{"list-tokens", "extra"}, `unexpected argument "extra"`},
	} {
		_, errOut, err := run(tc.args...)
		if err == nil || !strings.Contains(errOut+err.Error(), tc.want) {
			t.Errorf("admin %q = %v (%s), want an error saying %q", tc.args, err, errOut, tc.want)
		}
		if strings.Count(errOut, tc.want) > 1 {
			t.Errorf("admin %q said %q more than once:\n%s", tc.args, tc.want, errOut)
		}
	}
	if list, _, _ := run("list-tokens"); strings.Count(list, "\n") != 1 {
		t.Fatalf("refused create-token commands created tokens:\n%s", list)
	}

	if _, _, err := run("create-token", "first"); err != nil { // id 1
		t.Fatal(err)
	}
	if _, _, err := run("create-token", "1"); err != nil { // id 2
		t.Fatal(err)
	}
	if out, _, err := run("revoke-token", "1"); err != nil || !strings.Contains(out, "token 2 (1) revoked") {
		t.Fatalf("revoke-token 1 = %q, %v; want the token named 1 (id 2) revoked", out, err)
	}
	if _, _, err := run("revoke-token", "1"); err == nil || !strings.Contains(err.Error(), "use --id 1") {
		t.Errorf("revoke-token 1 with no active token named 1 = %v, want an error pointing to --id 1", err)
	}
	list, _, _ := run("list-tokens")
	if !regexp.MustCompile(`(?m)^1 +first +write +active `).MatchString(list) {
		t.Fatalf("revoke-token 1 revoked token id 1 (first):\n%s", list)
	}
	if out, _, err := run("revoke-token", "--id", "1"); err != nil || !strings.Contains(out, "token 1 (first) revoked") {
		t.Fatalf("revoke-token --id 1 = %q, %v", out, err)
	}
	if _, _, err := run("revoke-token", "--id", "9"); err == nil || !strings.Contains(err.Error(), "no token has the id 9") {
		t.Errorf("revoke-token --id 9 = %v", err)
	}

	// One value per cell, under its header.
	list, _, _ = run("list-tokens")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	header := lines[0]
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 8 || f[3] != "revoked" || !strings.HasPrefix(f[6], "20") || f[7] != "never" {
			t.Errorf("list-tokens row %q, want ID NAME SCOPE revoked CREATED EXPIRES REVOKED-AT never", line)
		}
		for _, col := range []string{"STATE", "REVOKED", "LAST USED"} {
			i := strings.Index(header, col)
			if i < 0 || i >= len(line) || line[i] == ' ' || line[i-1] != ' ' {
				t.Errorf("list-tokens: %q does not start a cell under %s:\n%s", line, col, list)
			}
		}
	}
}
