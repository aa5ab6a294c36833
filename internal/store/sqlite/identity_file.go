package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
)

//go:embed migrations_identity/*.sql
var identityMigrations embed.FS

// IdentityFileName is identity stitching's database file, beside FileName
// in the data directory.
const IdentityFileName = "identity.db"

// identityPageSize is the page size of a new identity file, as the main
// file's. Learning inserts rows at random keys; in process, realistic
// /v1/events, learning took 2.6–2.9 s of CPU per 20 s at 16 KiB against
// 5.0 s at 4 KiB (a quarter of the bytes per dirty page, but more pages
// and splits; also with checkpoints as rare in bytes) and 3.9 s at 64 KiB,
// and ingest was fastest at 16 KiB (22.7–26.7k events/s against 18.4k and
// 18.7–20.6k). Measured again once identities became a rowid table
// (migration 2), whose rows fit a 4 KiB page: 4 KiB pages wrote 43 KB per
// new person against 101 KB (BenchmarkLearnIdentities, hashed keys), but
// ingest in process was slower (17.2–21.9k against 23.7–26.4k events/s).
const identityPageSize = 16384

// identityCheckpointPages is when learning checkpoints the identity file:
// at 256 pages, 4 MB of WAL. Its fsyncs then flush a few MB, not the 40 MB
// of the main file's setting (mainCheckpointPages), which kept the disk
// busy long enough to delay ingest's own fsync. Realistic /v1/events at
// 20,000 events/s, the binary on 2 CPUs, three alternating pairs: 2–5
// fsyncs of the main WAL over 32 ms per run against 15–18. Ingest's p99
// followed in the first five runs of each (43–61 ms against 77–94 ms), but
// not in the pairs run later on a slower box (72–104 ms against 87–92 ms)
// nor in make bench's half-rate phase (docs/scaling.md). At full load:
// 28.8–29.9k events/s against 24.3–28.2k in two pairs, with about a tenth
// fewer people learned (pages are copied into the file more often).
const identityCheckpointPages = 256

// identityFile is identity stitching's own SQLite file (identities,
// identity_keys). Learning writes every new customer's rows at random
// keys; in the main file it took the one write connection from ingest's
// group commits (under unique-customer load the writer waited a quarter of
// its time for it). Here it has its own write lock and connection, so ingest
// and learning write at once, on two CPUs. Identity data is enrichment:
// the file is synchronous=NORMAL, so a commit waits for no fsync (a power
// cut may lose the last moments of learning, never an event).
//
// Forget erases a person from both files in one transaction of the main
// writer with this file attached (withIdentities); the two files commit
// one after the other, the main file first, so a crash between leaves the
// identity to be found again by forget's next run.
type identityFile struct {
	path  string
	w     *sql.DB // one connection: learning
	r     *sql.DB // readers: enrichment's look-ups, the filter's refresh
	stmts stmtCache
	learn learnStmts
}

func openIdentityFile(ctx context.Context, path string) (*identityFile, error) {
	w, r, err := openFile(path, identityPageSize, "NORMAL", identityCheckpointPages)
	if err != nil {
		return nil, err
	}
	f := &identityFile{path: path, w: w, r: r, stmts: stmtCache{pool: r}}
	if err := migrateFile(ctx, w, identityMigrations, "migrations_identity"); err != nil {
		f.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p := &preparer{ctx: ctx, pool: w}
	if f.learn = prepareLearn(p.prep); p.err != nil {
		f.close()
		return nil, fmt.Errorf("prepare learning: %w", mapErr(p.err))
	}
	return f, nil
}

// close closes the file's statements and the file (closeFile). f may be
// half open.
func (f *identityFile) close() error {
	for _, st := range f.learn.all() {
		if st != nil {
			st.Close()
		}
	}
	f.stmts.close()
	return closeFile(f.w, f.r)
}

// adoptIdentities moves the identities a relay before the identity file
// kept in the main file into it, then drops them there (secure_delete
// zeroes their pages). Copies are INSERT OR IGNORE, so a run cut short is
// simply run again at the next start.
func (db *DB) adoptIdentities(ctx context.Context) error {
	var n int
	if err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('identities', 'identity_keys')`).Scan(&n); err != nil {
		return fmt.Errorf("adopt identities: %w", mapErr(err))
	}
	if n == 0 {
		return nil
	}
	conn, err := db.id.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("adopt identities: %w", mapErr(err))
	}
	defer conn.Close()
	return attached(ctx, conn, db.path, "old", func() error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return mapErr(err)
		}
		defer tx.Rollback()
		for _, q := range []string{
			`INSERT OR IGNORE INTO main.identities (vk, site_key, visitor_id, hashes, device, created_at, updated_at)
				SELECT capirelay_key(site_key, visitor_id), site_key, visitor_id, hashes, device, created_at, updated_at FROM old.identities`,
			`INSERT OR IGNORE INTO main.identity_keys (k, id)
				SELECT capirelay_key(o.kind, o.hash), i.id FROM old.identity_keys o
				JOIN main.identities i ON i.vk = capirelay_key(o.site_key, o.visitor_id) AND i.site_key = o.site_key AND i.visitor_id = o.visitor_id`,
			`DROP TABLE old.identity_keys`,
			`DROP TABLE old.identities`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("adopt identities: %w", mapErr(err))
			}
		}
		return mapErr(tx.Commit())
	})
}

// withIdentities runs fn on a connection of pool (the main file's writer or
// readers) with the identity file attached, so that its statements name
// identities and identity_keys beside the main file's tables: forget's
// look-ups and erasure, in one transaction.
func (db *DB) withIdentities(ctx context.Context, pool *sql.DB, fn func(*sql.Conn) error) error {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer conn.Close()
	return attached(ctx, conn, db.id.path, "ident", func() error { return fn(conn) })
}

// attached runs fn with the file at path attached to conn as schema, then
// detaches it. A connection that stays attached is discarded: the main
// writer's immediate transactions would take the other file's write lock
// too.
func attached(ctx context.Context, conn *sql.Conn, path, schema string, fn func() error) error {
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS `+schema, path); err != nil {
		return fmt.Errorf("attach %s: %w", path, mapErr(err))
	}
	ferr := fn()
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE `+schema); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		return errors.Join(ferr, fmt.Errorf("detach %s: %w", path, mapErr(err)))
	}
	return ferr
}
