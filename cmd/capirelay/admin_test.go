package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/admin"
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
				env["CAPIRELAY_DATABASE_URL"] = freshPostgres(t)
			}
			getenv := func(k string) string { return env[k] }
			var out, errw bytes.Buffer
			if err := runAdmin(t.Context(), []string{"set-password"}, strings.NewReader("correct horse\n"), &out, &errw, getenv); err != nil {
				t.Fatalf("set-password: %v (%s)", err, errw.String())
			}
			out.Reset()
			if err := runAdmin(t.Context(), []string{"create-token", "deploy", "bot"}, nil, &out, &errw, getenv); err != nil {
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
