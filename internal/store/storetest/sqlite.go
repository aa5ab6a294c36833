package storetest

import (
	"bytes"
	"crypto/rand"
	"path/filepath"
	"testing"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store/sqlite"
)

// OpenSQLite opens a real SQLite store, under a fresh random key, in a
// temporary directory; it is closed when the test ends.
func OpenSQLite(tb testing.TB) *sqlite.DB {
	tb.Helper()
	key := make([]byte, secret.KeySize)
	rand.Read(key)
	box, err := secret.New(key)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), sqlite.FileName), box)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Box is a box under a fixed key, for tests that open again, or read, what
// a store sealed.
func Box(tb testing.TB) *secret.Box {
	tb.Helper()
	box, err := secret.New(bytes.Repeat([]byte{7}, secret.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	return box
}
