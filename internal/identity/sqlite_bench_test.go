package identity

import (
	"testing"

	"github.com/capirelay/capirelay/internal/store/sqlite"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// benchSQLite opens a real SQLite store in a temporary directory.
func benchSQLite(b *testing.B) *sqlite.DB { return storetest.OpenSQLite(b) }
