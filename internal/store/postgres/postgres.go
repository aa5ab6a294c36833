// Package postgres is capirelay's store for several relay nodes sharing one
// PostgreSQL database (CAPIRELAY_DATABASE_URL=postgres://…). It keeps the
// semantics of the SQLite store (the storetest suite is the contract) and
// adds what several nodes need:
//
//   - Claim takes rows with FOR UPDATE SKIP LOCKED and leases them until
//     now+lease, so concurrent dispatchers never share an item and a dead
//     node's claims come back when the lease runs out.
//   - Dedup holds across nodes through the primary key of the seen table.
//   - Enqueue groups concurrent callers of one process into shared
//     single-statement transactions (group commit); nodes commit in parallel.
//   - Migrations run under an advisory lock, so nodes may start together.
//   - TryLock gives a job (lead sweeper, retention) to one node at a time.
//
// Driver types never leave this package. A DB is safe for concurrent use.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jackc/puddle/v2"
	"github.com/pressly/goose/v3"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the PostgreSQL store.
type DB struct {
	pool *pgxpool.Pool
	box  *secret.Box
	now  func() time.Time

	// Group commit: Enqueue hands requests to the writers over reqs.
	// mu guards closed; Enqueue sends under the read lock, so once Close
	// holds the write lock no request can slip in behind the drain.
	mu       sync.RWMutex
	closed   bool
	reqs     chan *enqueueReq
	writers  sync.WaitGroup
	closeOne sync.Once

	lockMu sync.Mutex
	locks  map[*pgx.Conn]bool // connections holding TryLock locks
}

var _ store.Store = (*DB)(nil)

// writers is how many group commits one process runs at once. PostgreSQL
// takes concurrent commits (unlike SQLite's single writer) and flushes
// their WAL together, so a few in flight beat one big one.
const writers = 4

// Open connects to the database at url (a postgres:// URL or DSN; pool
// settings such as pool_max_conns may be given in it), migrates it, and
// starts the group-commit writers. Close releases it.
func Open(ctx context.Context, url string, box *secret.Box) (*DB, error) {
	if box == nil {
		return nil, errors.New("postgres: a secret box is required")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", mapErr(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", mapErr(err))
	}
	db := &DB{pool: pool, box: box, now: time.Now, reqs: make(chan *enqueueReq, 4096)}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	for range writers {
		db.writers.Go(db.writer)
	}
	return db, nil
}

// migrateLock is the advisory lock key held while migrating.
var migrateLock = lockKey("migrate")

// migrate applies the embedded migrations. Nodes starting together take
// turns with a session advisory lock; the later ones find nothing left to
// do.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", mapErr(err))
	}
	defer conn.Release()
	// Waiting inside pg_advisory_lock would hold a snapshot the whole
	// time, and a migration that builds an index CONCURRENTLY waits for
	// every older snapshot: the nodes waiting for it. So a node asks, and
	// asks again after a pause, holding nothing in between.
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, migrateLock).Scan(&ok); err != nil {
			return fmt.Errorf("migrate: take lock: %w", mapErr(err))
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("migrate: take lock: %w", ctx.Err())
		case <-time.After(pause):
		}
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrateLock); err != nil {
			// Closing the session is what frees a session lock for sure.
			_ = conn.Conn().Close(ctx)
		}
	}()

	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(db.pool)
	defer sqlDB.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, sub)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", mapErr(err))
	}
	return nil
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", mapErr(err))
	}
	return nil
}

// Close stops taking events, commits those already handed over, waits for
// the writers, frees TryLock locks and closes the pool. It is idempotent.
func (db *DB) Close() error {
	db.closeOne.Do(func() {
		db.mu.Lock()
		db.closed = true
		close(db.reqs) // writers drain what is queued, then return
		db.mu.Unlock()
		db.writers.Wait()
		db.lockMu.Lock()
		for conn := range db.locks {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = conn.Close(ctx) // frees its advisory locks
			cancel()
		}
		db.locks = nil
		db.lockMu.Unlock()
		db.pool.Close()
	})
	return nil
}

// TryLock takes the session advisory lock name if no other session (on
// any node) holds it; ok is false when another holds it. The lock lives on
// a connection of its own until unlock (safe to call more than once) or
// Close. If that connection or this node dies, PostgreSQL frees the lock,
// so a job guarded by it must tolerate being picked up by another node.
func (db *DB) TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error) {
	key := lockKey("job:" + name)
	pc, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", name, mapErr(err))
	}
	if err := pc.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		pc.Release()
		return nil, false, fmt.Errorf("lock %s: %w", name, mapErr(err))
	}
	if !ok {
		pc.Release()
		return nil, false, nil
	}
	// Take the connection out of the pool: the pool must not hand the
	// session (and its lock) to anyone else, and closing the pool must
	// not wait for it.
	conn := pc.Hijack()
	db.lockMu.Lock()
	if db.locks == nil {
		db.locks = map[*pgx.Conn]bool{}
	}
	db.locks[conn] = true
	db.lockMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			db.lockMu.Lock()
			delete(db.locks, conn)
			db.lockMu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// Ending the session frees the lock even if the unlock fails.
			_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key)
			_ = conn.Close(ctx)
		})
	}, true, nil
}

// lockKey maps a name to an advisory lock key, stable across versions.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("capirelay:" + name))
	return int64(h.Sum64())
}

// transact runs fn in a transaction and commits it, running it again when
// PostgreSQL aborts it as a deadlock victim or for serialization.
func (db *DB) transact(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, db.pool, fn)
		if err == nil || attempt == 4 || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// mapErr translates driver errors into store errors, keeping the cause.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return fmt.Errorf("%w: %s", store.ErrDuplicate, pe.ConstraintName)
		case unavailable(pe.Code):
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return err
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	if errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, puddle.ErrClosedPool) || pgconn.SafeToRetry(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// unavailable reports whether an SQLSTATE means the database cannot take
// writes now, as opposed to a problem with the statement.
func unavailable(code string) bool {
	switch code[:2] {
	case "08": // connection exception
		return true
	case "53": // insufficient resources: disk full, out of memory, too many connections
		return true
	case "58": // system error (I/O)
		return true
	}
	switch code {
	case "25006": // read-only transaction: a standby, e.g. after a failover
		return true
	case "57P01", "57P02", "57P03": // admin shutdown, crash shutdown, cannot connect now
		return true
	}
	return false
}

// fromNull maps NULL to the zero time.
func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
