package sqlite

import (
	"database/sql"
	"testing"
)

// The files' connections are set up as their comments say:
//   - learning checkpoints the identity file every few MB of WAL, so that
//     the checkpoint's fsyncs never keep the disk from ingest's own fsync
//     for long; the main file's writer waits for 40 MB (its checkpointer
//     does the copying in the background);
//   - page caches are small (writerCacheKiB, readerCacheKiB): SQLite's
//     memory is outside Go's heap limit, and under load the relay held
//     several times the caches' nominal size.
func TestConnectionPragmas(t *testing.T) {
	db := openTestDB(t)
	for _, c := range []struct {
		name   string
		pool   *sql.DB
		pragma string
		want   int
	}{
		{FileName + " writer", db.w, "wal_autocheckpoint", 2500},
		{IdentityFileName + " writer", db.id.w, "wal_autocheckpoint", 256},
		{FileName + " writer", db.w, "cache_size", -512},
		{FileName + " reader", db.r, "cache_size", -128},
		{IdentityFileName + " writer", db.id.w, "cache_size", -512},
		{IdentityFileName + " reader", db.id.r, "cache_size", -128},
	} {
		var got int
		if err := c.pool.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s: %s is %d, want %d", c.name, c.pragma, got, c.want)
		}
	}
}
