package identity

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store/sqlite"
)

// benchSQLite opens a real SQLite store in a temporary directory.
func benchSQLite(b *testing.B) *sqlite.DB {
	box, err := secret.New(bytes.Repeat([]byte{3}, secret.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	db, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), sqlite.FileName), box)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}
