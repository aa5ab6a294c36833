package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAccessTokenFromFileAndStdin: site add and site set-token take the
// token from a file or standard input, never needing it on the command
// line, and refuse an empty or ambiguous one.
func TestAccessTokenFromFileAndStdin(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	getenv := dataDirEnv(dir)
	site := func(stdin string, args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := runSite(t.Context(), args, strings.NewReader(stdin), &out, &errOut, getenv)
		return out.String(), errOut.String(), err
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("EAABfromfile123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, warn, err := site("", "add", "--name", "Shop", "--domain", "shop.example.com", "--pixel-id", "1234567890", "--access-token-file", file)
	if err != nil {
		t.Fatalf("site add --access-token-file = %v", err)
	}
	if warn != "" {
		t.Errorf("site add with a file warned: %q", warn)
	}
	var added struct {
		SiteKey string `json:"site_key"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatal(err)
	}
	token := func() string {
		t.Helper()
		st, err := (&storeFlags{dataDir: dir}).open(t.Context(), getenv)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		s, err := st.Site(t.Context(), added.SiteKey)
		if err != nil {
			t.Fatal(err)
		}
		return s.AccessToken
	}
	if got := token(); got != "EAABfromfile123" {
		t.Fatalf("stored token = %q, want the file's", got)
	}
	if _, _, err := site("EAABfromstdin456\n", "set-token", "--site", added.SiteKey, "--access-token", "-"); err != nil {
		t.Fatalf("set-token --access-token - = %v", err)
	}
	if got := token(); got != "EAABfromstdin456" {
		t.Fatalf("stored token = %q, want standard input's", got)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, tc := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"set-token", "--site", added.SiteKey, "--access-token", "-"}},
		{"two words\n", []string{"set-token", "--site", added.SiteKey, "--access-token", "-"}},
		{"", []string{"set-token", "--site", added.SiteKey, "--access-token-file", empty}},
		{"", []string{"set-token", "--site", added.SiteKey, "--access-token-file", filepath.Join(dir, "missing")}},
		{"", []string{"set-token", "--site", added.SiteKey, "--access-token", "x", "--access-token-file", file}},
		{"", []string{"set-token", "--site", added.SiteKey}},
	} {
		if _, _, err := site(tc.stdin, tc.args...); err == nil {
			t.Errorf("site %q with stdin %q succeeded, want an error", tc.args, tc.stdin)
		}
	}
	if got := token(); got != "EAABfromstdin456" {
		t.Fatalf("a refused call changed the token to %q", got)
	}
	if _, warn, err := site("", "set-token", "--site", added.SiteKey, "--access-token", "EAABinline789"); err != nil || !strings.Contains(warn, "--access-token-file") {
		t.Errorf("set-token with the token inline = %v, warned %q; want it set with a warning", err, warn)
	}
}
