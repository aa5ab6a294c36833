// Package sqlite is capirelay's embedded store: SQLite files in WAL mode.
// The main file is synchronous=FULL, so a committed transaction survives a
// crash or a power cut; its writes go through one connection, ingest's
// grouped into shared transactions (group commit) by a single writer
// goroutine. Identity stitching's tables live in a file of their own
// (identity_file.go), so learning never waits for that writer, nor it for
// learning.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// FileName is the database file inside the data directory.
const FileName = "capirelay.db"

// DB is the SQLite store.
type DB struct {
	path string
	w    *sql.DB // one connection: every write
	r    *sql.DB // readers
	box  *secret.Box

	reqs      chan *enqueueReq
	completes chan *completeReq // Complete calls, run by the writer
	stop      chan struct{}
	done      chan struct{}
	ckptDone  chan struct{}
	closeOne  sync.Once
	now       func() time.Time

	stmts stmtCache // hot reads on r
	id    *identityFile
	ins   *insertStmts

	leases leases
	dedup  dedup
	recent *recent // items just committed, for claims

	syncHook func() error // tests: runs before each fsync of the WAL
	sites    sync.Map     // cache key → cachedSite

	observer atomic.Pointer[CommitObserver]
}

// CommitObserver is told about the group commits of ingest, for metrics.
// Its functions run on the writer and the syncer: they must be quick.
type CommitObserver struct {
	// Commit: a group of events was written (not yet synced), in took.
	Commit func(events int, took time.Duration)
	// Sync: an fsync of the WAL, answering every group written before it.
	Sync func(took time.Duration)
}

// ObserveCommits sets o to be told about every group commit from now on.
func (db *DB) ObserveCommits(o *CommitObserver) { db.observer.Store(o) }

// stmtCache prepares hot read queries on a pool once, so their SQL is
// parsed once, not on every call.
type stmtCache struct {
	pool *sql.DB
	m    sync.Map // query → *sql.Stmt
}

func (c *stmtCache) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := c.m.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := c.pool.PrepareContext(ctx, q)
	if err != nil {
		return nil, mapErr(err)
	}
	if prev, loaded := c.m.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// row runs a hot single-row read through a cached statement.
func (c *stmtCache) row(ctx context.Context, q string, args ...any) *sql.Row {
	st, err := c.prepared(ctx, q)
	if err != nil {
		return c.pool.QueryRowContext(ctx, q, args...) // reports the same error
	}
	return st.QueryRowContext(ctx, args...)
}

// rows runs a hot read through a cached statement.
func (c *stmtCache) rows(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := c.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (c *stmtCache) close() {
	c.m.Range(func(_, st any) bool {
		st.(*sql.Stmt).Close()
		return true
	})
}

// readRow runs a hot single-row read on the readers.
func (db *DB) readRow(ctx context.Context, q string, args ...any) *sql.Row {
	return db.stmts.row(ctx, q, args...)
}

// readRows runs a hot read on the readers.
func (db *DB) readRows(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.stmts.rows(ctx, q, args...)
}

var _ store.Store = (*DB)(nil)

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string, box *secret.Box) (*DB, error) {
	if box == nil {
		return nil, errors.New("sqlite: a secret box is required")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	w, r, err := openFile(path, pageSize, "FULL", mainCheckpointPages)
	if err != nil {
		return nil, err
	}
	db := &DB{path: path, w: w, r: r, stmts: stmtCache{pool: r}, box: box,
		reqs: make(chan *enqueueReq, 4096), completes: make(chan *completeReq, 64), stop: make(chan struct{}), done: make(chan struct{}),
		ckptDone: make(chan struct{}), now: time.Now, leases: leases{m: map[int64]lease{}}, dedup: newDedup(), recent: newRecent(recentBudget)}
	fail := func(err error) (*DB, error) {
		if db.ins != nil {
			db.ins.close()
		}
		w.Close()
		r.Close()
		if db.id != nil {
			db.id.close()
		}
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		return fail(err)
	}
	if db.id, err = openIdentityFile(ctx, filepath.Join(filepath.Dir(path), IdentityFileName)); err != nil {
		return fail(err)
	}
	if err := db.adoptIdentities(ctx); err != nil {
		return fail(err)
	}
	if err := db.prepareInserts(ctx); err != nil {
		return fail(err)
	}
	// Load the dedup keys of the window before the first event arrives.
	load := func(after int64) (*sql.Rows, error) { return db.r.QueryContext(ctx, catchUpQuery, after) }
	if err := db.dedup.catchUp(load, ms(db.now().Add(-store.DedupWindow))); err != nil {
		return fail(fmt.Errorf("load dedup keys: %w", err))
	}
	go db.writer()
	go db.checkpointer()
	return db, nil
}

// openFile opens (creating and formatting if needed) a database file: one
// write connection and four readers, synchronous as given; the writer
// checkpoints once the WAL holds checkpointPages pages.
func openFile(path string, pageSize int, synchronous string, checkpointPages int) (w, r *sql.DB, err error) {
	// The file holds sealed secrets and hashed personal data: owner only.
	// SQLite gives the WAL and shared-memory files the same mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
		if err := format(path, pageSize); err != nil {
			os.Remove(path)
			return nil, nil, err
		}
	}
	w, err = sql.Open("sqlite", dsnSync(path, true, synchronous, checkpointPages))
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	r, err = sql.Open("sqlite", dsnSync(path, false, synchronous, 0))
	if err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	// Four readers with a small page cache each (readerCacheKiB): reads
	// are point lookups and short scans (the OS caches the file too), and
	// every cache is memory the relay keeps.
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4) // keep readers (and their prepared statements) warm
	r.SetConnMaxIdleTime(0)
	return w, r, nil
}

// pageSize is the page size of a new database file. SQLite writes the WAL
// one page per write call and copies it into the file one page per call, so
// on ingest's appends 16 KiB pages cut those system calls fourfold against
// 4 KiB (37,800 to 8,700 writes for 50,000 events) and the store's CPU per
// event by about a fifth; 64 KiB pages cost more for small groups (the tag's
// beacons), since every commit rewrites the last, partly filled page of each
// table. A file created with another page size keeps it.
const pageSize = 16384

// format gives a new, empty database file its page size and WAL mode. The
// driver runs a DSN's pragmas in alphabetical order, so journal_mode(WAL)
// would come first and fix the default page size before page_size ran.
func format(path string, pageSize int) error {
	conn, err := sql.Open("sqlite", "file:"+path+"?"+url.Values{"_pragma": {fmt.Sprintf("page_size(%d)", pageSize)}}.Encode())
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer conn.Close()
	if _, err := conn.Exec("PRAGMA journal_mode=WAL"); err != nil {
		return fmt.Errorf("create %s: %w", path, mapErr(err))
	}
	return nil
}

func dsn(path string, write bool) string { return dsnSync(path, write, "FULL", mainCheckpointPages) }

// mainCheckpointPages is when the main file's writer checkpoints itself:
// the checkpointer copies the WAL into the file in the background, and the
// writer's own checkpoint after a commit only backstops it (and lets the
// WAL restart), so it waits for 40 MB of WAL (2,500 pages of 16 KiB)
// instead of SQLite's 1,000 pages, which ingest writes in a fraction of a
// second.
const mainCheckpointPages = 2500

// writerCacheKiB and readerCacheKiB are the page caches of a file's writer
// and of each of its readers, as cache_size pragmas (negative: KiB). Each
// cached 16 KiB page is memory outside Go's heap and its limit, and the
// process kept much more of it than the caches' nominal sizes: under
// realistic /v1/events at full load, SQLite's allocator held 57.8 MB with
// SQLite's default of 2,000 KiB for the two writers and 1 MiB for each of
// the eight readers, and 20.1 MB with 512 and 128 KiB. The relay's peak
// RSS fell from 198–202 to 173–174 MiB (full load) and from 191–192 to
// 168–170 MiB (20,000 events/s), with no loss of throughput (29.9–32.4k
// events/s against 27.3–31.0k in alternating runs), learning (the identity
// writer's random inserts: 51–52k people in 25 s against 49–50k) or p99 at
// half rate (51–67 against 50–85 ms). A reader's cache helps little anyway:
// in WAL mode it is dropped whenever the file has changed since the
// reader's last transaction, which under ingest is always. Reads that miss
// go to the OS's cache of the file.
const (
	writerCacheKiB = -512
	readerCacheKiB = -128
)

// dsnSync is dsn with another synchronous setting; a writer checkpoints
// once the WAL holds checkpointPages pages.
func dsnSync(path string, write bool, synchronous string, checkpointPages int) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+synchronous+")")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "secure_delete(ON)")
	// Statement journals (multi-row inserts, upserts) stay in memory.
	q.Add("_pragma", "temp_store(MEMORY)")
	if write {
		q.Set("_txlock", "immediate")
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", checkpointPages))
		q.Add("_pragma", fmt.Sprintf("cache_size(%d)", writerCacheKiB))
	} else {
		q.Add("_pragma", fmt.Sprintf("cache_size(%d)", readerCacheKiB))
	}
	return "file:" + path + "?" + q.Encode()
}

func (db *DB) migrate(ctx context.Context) error {
	return migrateFile(ctx, db.w, migrations, "migrations")
}

// migrateFile runs the goose migrations in dir of fsys on the write pool w.
func migrateFile(ctx context.Context, w *sql.DB, fsys fs.FS, dir string) error {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, w, sub)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// preparer prepares statements on a pool until one fails: err keeps the
// first error, and every statement from it on is nil.
type preparer struct {
	ctx  context.Context
	pool *sql.DB
	err  error
}

func (p *preparer) prep(q string) *sql.Stmt {
	if p.err != nil {
		return nil
	}
	st, err := p.pool.PrepareContext(p.ctx, q)
	p.err = err
	return st
}

// SetMaxPages caps the database file at n pages (PRAGMA max_page_count on
// the writer; 0 lifts the cap, and a cap below the file's size is its
// size). A write that would grow the file past the cap is refused with
// SQLITE_FULL, as on a full disk: tests use it to make a real store refuse
// writes without filling a file system.
func (db *DB) SetMaxPages(ctx context.Context, n int64) error {
	if n <= 0 {
		n = 0xfffffffe // SQLite's largest
	}
	if _, err := db.w.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", n)); err != nil {
		return fmt.Errorf("max_page_count: %w", mapErr(err))
	}
	return nil
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping: %w", mapErr(err))
	}
	return nil
}

// Close stops the writer and closes the database. It is idempotent.
func (db *DB) Close() error {
	var err error
	db.closeOne.Do(func() {
		close(db.stop)
		<-db.done
		<-db.ckptDone
		db.ins.close()
		db.stmts.close()
		err = errors.Join(closeFile(db.w, db.r), db.id.close())
	})
	return err
}

// closeFile folds a file's WAL back into it, so that a copied data
// directory is complete, and closes its write pool w and readers r.
func closeFile(w, r *sql.DB) error {
	_, _ = w.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	return errors.Join(r.Close(), w.Close())
}

// Checkpoint folds the WALs into the database files and truncates them.
func (db *DB) Checkpoint(ctx context.Context) error {
	_, err := db.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	_, ierr := db.id.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return mapErr(errors.Join(err, ierr))
}

// mapErr translates driver errors into store errors.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("%w: %s", store.ErrDuplicate, constraintName(se.Error()))
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("%w: %s", store.ErrUnavailable, se.Error())
		}
	}
	return err
}

func constraintName(msg string) string {
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkpointInterval is how often the background checkpointer copies
// committed WAL frames into the database file.
const checkpointInterval = 100 * time.Millisecond

// checkpointer copies WAL frames into the database file off the ingest
// path. A passive checkpoint never blocks the writer; the writer's own
// automatic checkpoint then finds little left to copy and restarts the WAL,
// so the WAL stays small under sustained load.
func (db *DB) checkpointer() {
	defer close(db.ckptDone)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
			_, _ = db.r.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			db.recent.expire(ms(db.now()))
		}
	}
}
