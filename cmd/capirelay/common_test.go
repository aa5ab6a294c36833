package main

import (
	"bytes"
	"strings"
	"testing"
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
