package sqlite

import (
	"database/sql"
	"testing"
)

// Learning checkpoints the identity file every few MB of WAL, so that the
// checkpoint's fsyncs never keep the disk from ingest's own fsync for
// long; the main file's writer waits for 40 MB (its checkpointer does the
// copying in the background).
func TestCheckpointSizes(t *testing.T) {
	db := openTestDB(t)
	for _, c := range []struct {
		file   string
		writer *sql.DB
		pages  int
	}{
		{FileName, db.w, 2500},
		{IdentityFileName, db.id.w, 256},
	} {
		var got int
		if err := c.writer.QueryRow("PRAGMA wal_autocheckpoint").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.pages {
			t.Errorf("%s: the writer checkpoints at %d pages of WAL, want %d", c.file, got, c.pages)
		}
	}
}

// Page caches are small (writerCacheKiB, readerCacheKiB): SQLite's memory
// is outside Go's heap limit, and under load the relay held several times
// the caches' nominal size.
func TestPageCacheSizes(t *testing.T) {
	db := openTestDB(t)
	for _, c := range []struct {
		name string
		pool *sql.DB
		kib  int
	}{
		{FileName + " writer", db.w, 512},
		{FileName + " reader", db.r, 128},
		{IdentityFileName + " writer", db.id.w, 512},
		{IdentityFileName + " reader", db.id.r, 128},
	} {
		var got int
		if err := c.pool.QueryRow("PRAGMA cache_size").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != -c.kib {
			t.Errorf("%s: cache_size %d, want %d (KiB)", c.name, got, -c.kib)
		}
	}
}
