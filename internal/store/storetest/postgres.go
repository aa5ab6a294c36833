package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresEnv names the server the tests use; each test gets its own
// database on it, dropped afterwards, so the role needs CREATEDB.
const PostgresEnv = "CAPIRELAY_TEST_DATABASE_URL"

// PostgresServer returns the test server's URL, skipping the test when
// none is set, except in CI, where PostgreSQL is mandatory.
func PostgresServer(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(PostgresEnv)
	if u == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("set %s; .ci/run starts PostgreSQL", PostgresEnv)
		}
		tb.Skipf("install postgresql and set %s=postgres://user:password@localhost:5432/postgres?sslmode=disable", PostgresEnv)
	}
	return u
}

// PostgresDatabase creates an empty database on the test server
// (PostgresServer) and returns its URL; it is dropped when the test ends.
func PostgresDatabase(tb testing.TB) string {
	tb.Helper()
	server := PostgresServer(tb)
	var b [6]byte
	rand.Read(b[:])
	name := "t_capirelay_" + hex.EncodeToString(b[:])
	admin := func(q string) {
		tb.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			tb.Fatalf("connect to %s: %v", PostgresEnv, err)
		}
		defer conn.Close(ctx)
		for {
			_, err := conn.Exec(ctx, q)
			var pe *pgconn.PgError
			// 55006: a session of a closed store is still going away.
			if errors.As(err, &pe) && pe.Code == "55006" && ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if err != nil {
				tb.Fatalf("%s: %v", q, err)
			}
			return
		}
	}
	admin("CREATE DATABASE " + name)
	// Not WITH (FORCE): that needs the right to signal autovacuum workers.
	tb.Cleanup(func() { admin("DROP DATABASE IF EXISTS " + name) })
	return withDatabase(tb, server, name)
}

// withDatabase points a URL or key=value DSN at database name.
func withDatabase(tb testing.TB, server, name string) string {
	if strings.HasPrefix(server, "postgres://") || strings.HasPrefix(server, "postgresql://") {
		u, err := url.Parse(server)
		if err != nil {
			tb.Fatalf("parse %s: %v", PostgresEnv, err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return server + " dbname=" + name
}
