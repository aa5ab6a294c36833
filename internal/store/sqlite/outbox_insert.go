package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	"github.com/capirelay/capirelay/internal/store"
)

// rowSizes are the row counts of the prepared multi-row insert statements.
// A group is cut greedily into pieces of these sizes, so every statement
// the writer runs is parsed once, at Open (SQLite allows 32766 bound
// variables; the outbox insert takes 13 per row). Powers of two cut a
// group into few statements (a group of 37 tag beacons is 3 per table, not
// 20), and every size below 8 has its own, so the small groups of the tag
// at moderate load (a handful of beacons) take one statement per table: a
// statement's execution costs about as much as inserting a few rows.
var rowSizes = [...]int{512, 256, 128, 64, 32, 16, 8, 7, 6, 5, 4, 3, 2, 1}

// orNull is s, or nil (bound as NULL) for "". The driver copies every
// text argument into memory of SQLite's allocator and frees it after the
// statement: most events leave four of the outbox's text columns empty,
// and a NULL, which the insert turns into an empty string, costs no
// copy. The state is a flag for the same reason.
func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// insertStmts are the writer's prepared statements, one per row size.
type insertStmts struct {
	state, seenRow, catchUp *sql.Stmt
	overflow                [len(rowSizes)]*sql.Stmt
	// The inserts of every group run on the writer's driver connection
	// directly (raw).
	raw rawInserts
}

// The kinds of raw insert.
const (
	insertSeen = iota
	insertOutbox
	insertPayload
	insertKinds
)

// rawInserts are the group's inserts, prepared on the writer's driver
// connection and run there without database/sql, which for every
// execution copied each argument into a new []driver.NamedValue (40
// bytes an argument, 6,656 arguments for an outbox insert of 512 events:
// 8 % of the bytes the relay allocated at full load) and checked each
// one, on the writer's goroutine, which every ingest request waits for.
type rawInserts struct {
	text  [insertKinds][len(rowSizes)]string
	conn  any // the driver connection stmts were prepared on
	stmts [insertKinds][len(rowSizes)]rawStmt
	nv    []driver.NamedValue
}

// rawStmt is a driver statement that executes with a context.
type rawStmt interface {
	driver.Stmt
	driver.StmtExecContext
}

// exec runs the insert of kind and size (an index in rowSizes) with args
// on conn, preparing it first if conn's driver connection has not. Only
// the writer calls it.
func (ri *rawInserts) exec(ctx context.Context, conn *sql.Conn, kind, size int, args []any) error {
	return conn.Raw(func(dc any) error {
		if dc != ri.conn {
			// Another driver connection than the one prepared on: the
			// pool replaced it, which it does only once the driver has
			// closed it (with this driver, never while the store is
			// open). Its statements can be neither used nor finalized
			// any more: they are dropped.
			ri.conn, ri.stmts = dc, [insertKinds][len(rowSizes)]rawStmt{}
		}
		st := ri.stmts[kind][size]
		if st == nil {
			var err error
			if st, err = prepareRaw(ctx, dc, ri.text[kind][size]); err != nil {
				return err
			}
			ri.stmts[kind][size] = st
		}
		nv := ri.nv[:0]
		for i, a := range args {
			nv = append(nv, driver.NamedValue{Ordinal: i + 1, Value: a})
		}
		ri.nv = nv
		defer clear(nv) // let the payloads go
		_, err := st.ExecContext(ctx, nv)
		return err
	})
}

func prepareRaw(ctx context.Context, dc any, q string) (rawStmt, error) {
	p, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("sqlite: driver connection %T cannot prepare with a context", dc)
	}
	st, err := p.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	rs, ok := st.(rawStmt)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("sqlite: driver statement %T cannot execute with a context", st)
	}
	return rs, nil
}

// prepare prepares every raw insert on conn, so that a statement that
// does not compile fails Open.
func (ri *rawInserts) prepare(ctx context.Context, conn *sql.Conn) error {
	return conn.Raw(func(dc any) error {
		ri.conn = dc
		for k := range ri.text {
			for i, q := range ri.text[k] {
				st, err := prepareRaw(ctx, dc, q)
				if err != nil {
					return err
				}
				ri.stmts[k][i] = st
			}
		}
		return nil
	})
}

// close finalizes the statements; the writer has stopped, and their
// connection is still open.
func (ri *rawInserts) close() {
	for k := range ri.stmts {
		for i, st := range ri.stmts[k] {
			if st != nil {
				st.Close()
				ri.stmts[k][i] = nil
			}
		}
	}
}

func (db *DB) prepareInserts(ctx context.Context) error {
	p := &preparer{ctx: ctx, pool: db.w}
	prep := p.prep
	st := &insertStmts{}
	// What a group needs to know first, in one statement: whether the
	// overflow table holds keys, the last outbox id handed out, and the
	// last dedup key appended (by anyone).
	st.state = prep(`SELECT EXISTS (SELECT 1 FROM seen), coalesce((SELECT seq FROM sqlite_sequence WHERE name='outbox'), 0),
		coalesce((SELECT max(id) FROM seen_log), 0)`)
	st.seenRow = prep(`SELECT site_key, event_name, event_id, seen_at FROM seen_log WHERE id=?`)
	st.catchUp = prep(catchUpQuery)
	for i, n := range rowSizes {
		st.raw.text[insertSeen][i] = `INSERT INTO seen_log (id, site_key, event_name, event_id, seen_at) VALUES ` + tuples(n, "(?,?,?,?,?)")
		// A key is new (inserted) or stale (older than the window, so
		// updated); RETURNING names exactly those.
		st.overflow[i] = prep(`INSERT INTO seen (site_key, event_name, event_id, seen_at) VALUES ` + tuples(n, "(?,?,?,?)") +
			` ON CONFLICT (site_key, event_name, event_id) DO UPDATE SET seen_at = excluded.seen_at WHERE seen.seen_at < ?
			RETURNING site_key, event_name, event_id`)
		st.raw.text[insertOutbox][i] = `INSERT INTO outbox (id, site_key, event_name, event_id, event_time, state,
			next_attempt, source, visitor_id, test_event_code, params, created_at, enriched) VALUES ` +
			tuples(n, "(?,?,?,?,?,CASE WHEN ? THEN 'held' ELSE 'pending' END,?,?,coalesce(?,''),coalesce(?,''),coalesce(?,''),?,coalesce(?,''))")
		st.raw.text[insertPayload][i] = `INSERT INTO outbox_payload (id, payload) VALUES ` + tuples(n, "(?,?)")
	}
	if p.err == nil {
		var conn *sql.Conn
		if conn, p.err = db.w.Conn(ctx); p.err == nil {
			p.err = st.raw.prepare(ctx, conn)
			conn.Close()
		}
	}
	if p.err != nil {
		st.close()
		return fmt.Errorf("prepare inserts: %w", mapErr(p.err))
	}
	db.ins = st
	return nil
}

func (st *insertStmts) close() {
	st.raw.close()
	all := []*sql.Stmt{st.state, st.seenRow, st.catchUp}
	all = append(all, st.overflow[:]...)
	for _, s := range all {
		if s != nil {
			s.Close()
		}
	}
}

// pieces calls f for consecutive pieces of n rows, each of a prepared size
// (rowSizes[size]).
func pieces(n int, f func(lo, size int) error) error { return piecesOf(rowSizes[:], n, f) }

// piecesOf calls f for consecutive pieces of n rows, each of a size of
// sizes (largest first, ending with 1), given by its index.
func piecesOf(sizes []int, n int, f func(lo, size int) error) error {
	for lo := 0; lo < n; {
		for i, rs := range sizes {
			if n-lo >= rs {
				if err := f(lo, i); err != nil {
					return err
				}
				lo += rs
				break
			}
		}
	}
	return nil
}

type dedupKey struct{ site, name, id string }

// ref is one event of a group: request r's event i.
type ref struct {
	r *enqueueReq
	i int
}

// upsertOverflow decides the keys of evs with the overflow table: a key it
// inserts or refreshes is accepted (appended to accepted), any other one,
// including a repeat within evs, is a duplicate.
func (db *DB) upsertOverflow(ctx context.Context, tx *sql.Tx, evs, accepted []ref, keyOf func(ref) dedupKey, nowMS, cutoff int64, args []any) ([]ref, error) {
	fresh := make(map[dedupKey]bool, len(evs))
	err := pieces(len(evs), func(lo, size int) error {
		args = args[:0]
		for _, rf := range evs[lo : lo+rowSizes[size]] {
			k := keyOf(rf)
			args = append(args, k.site, k.name, k.id, nowMS)
		}
		args = append(args, cutoff)
		rows, err := tx.StmtContext(ctx, db.ins.overflow[size]).QueryContext(ctx, args...)
		if err != nil {
			return mapErr(err)
		}
		defer rows.Close()
		for rows.Next() {
			var k dedupKey
			if err := rows.Scan(&k.site, &k.name, &k.id); err != nil {
				return mapErr(err)
			}
			fresh[k] = true
		}
		return mapErr(rows.Close())
	})
	if err != nil {
		return nil, err
	}
	for _, rf := range evs {
		if k := keyOf(rf); fresh[k] {
			delete(fresh, k) // a second copy in this group is a duplicate
			accepted = append(accepted, rf)
		} else {
			rf.r.res[rf.i] = store.EnqueueResult{Status: store.Duplicate}
		}
	}
	return accepted, nil
}

func (db *DB) insertGroup(batch []*enqueueReq) (err error) {
	ctx := context.Background()
	conn, tx, done, err := db.relaxedConnTx(ctx) // the syncer makes it durable
	if err != nil {
		return err
	}
	defer done()
	var all []ref
	for _, r := range batch {
		r.res = make([]store.EnqueueResult, len(r.evs))
		for i := range r.evs {
			all = append(all, ref{r, i})
		}
	}
	now := db.now()
	nowMS, cutoff := ms(now), ms(now.Add(-store.DedupWindow))
	st := db.ins
	args := make([]any, 0, min(len(all), rowSizes[0])*11)

	// Dedup (dedup.go), under the write lock: first the keys other
	// processes appended, then each event against committed and pending
	// keys. A failed transaction leaves the index reset.
	d := &db.dedup
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() {
		if err != nil {
			d.reset()
		}
	}()
	// Past the index's bound, or while the overflow table still holds
	// keys of the window, new keys go to the overflow table (by upsert)
	// instead of the index; the index is still asked first. The writer
	// is the only one inserting outbox rows while it holds the write lock,
	// so it numbers them itself from seq instead of reading them back.
	var overflow bool
	var seq, lastSeen int64
	if err := tx.StmtContext(ctx, st.state).QueryRowContext(ctx).Scan(&overflow, &seq, &lastSeen); err != nil {
		return mapErr(err)
	}
	// Keys appended since the index last looked (by another process, or
	// all of them after a reset) are read first.
	if lastSeen > d.last {
		caughtUp := func(after int64) (*sql.Rows, error) { return tx.StmtContext(ctx, st.catchUp).QueryContext(ctx, after) }
		if err := d.catchUp(caughtUp, cutoff); err != nil {
			return err
		}
	}
	overflow = overflow || d.full()
	base := d.last
	accepted := all[:0:0]
	keyOf := func(rf ref) dedupKey {
		ev := &rf.r.evs[rf.i]
		return dedupKey{ev.SiteKey, ev.EventName, ev.EventID}
	}
	pending := func(id int64) dedupKey { return keyOf(accepted[id-base-1]) }
	var toOverflow []ref
	for _, rf := range all {
		k := keyOf(rf)
		fp := d.fingerprint(k)
		fresh, err := d.fresh(ctx, tx, st.seenRow, fp, k, cutoff, base, pending)
		if err != nil {
			return err
		}
		switch {
		case !fresh:
			rf.r.res[rf.i] = store.EnqueueResult{Status: store.Duplicate}
		case overflow:
			toOverflow = append(toOverflow, rf)
		default:
			accepted = append(accepted, rf)
			d.put(fp, base+int64(len(accepted)))
		}
	}
	if len(toOverflow) > 0 {
		if accepted, err = db.upsertOverflow(ctx, tx, toOverflow, accepted, keyOf, nowMS, cutoff, args); err != nil {
			return err
		}
	}
	indexed := accepted
	if overflow {
		indexed = nil // every accepted key went to the overflow table
	}
	d.last = base + int64(len(indexed))
	err = pieces(len(indexed), func(lo, size int) error {
		args = args[:0]
		for j, rf := range indexed[lo : lo+rowSizes[size]] {
			ev := &rf.r.evs[rf.i]
			args = append(args, base+int64(lo+j+1), ev.SiteKey, ev.EventName, ev.EventID, nowMS)
		}
		return mapErr(st.raw.exec(ctx, conn, insertSeen, size, args))
	})
	if err != nil {
		return err
	}
	if len(accepted) == 0 {
		return mapErr(tx.Commit())
	}
	for j, rf := range accepted {
		rf.r.res[rf.i] = store.EnqueueResult{Status: store.Accepted, ID: seq + 1 + int64(j)}
	}
	err = pieces(len(accepted), func(lo, size int) error {
		args = args[:0]
		for _, rf := range accepted[lo : lo+rowSizes[size]] {
			ev := &rf.r.evs[rf.i]
			args = append(args, rf.r.res[rf.i].ID, ev.SiteKey, ev.EventName, ev.EventID, ms(ev.EventTime), ev.Held,
				nowMS, ev.Source, orNull(ev.VisitorID), orNull(ev.TestEventCode), orNull(ev.Params), nowMS, orNull(store.JoinKeys(ev.Enriched)))
		}
		if err := st.raw.exec(ctx, conn, insertOutbox, size, args); err != nil {
			return mapErr(err)
		}
		args = args[:0]
		for _, rf := range accepted[lo : lo+rowSizes[size]] {
			args = append(args, rf.r.res[rf.i].ID, rf.r.evs[rf.i].Payload)
		}
		return mapErr(st.raw.exec(ctx, conn, insertPayload, size, args))
	})
	if err != nil {
		return err
	}
	// Claims take the new items from memory (recent.go); they are put
	// there before the commit makes them visible.
	ids := make([]int64, 0, len(accepted))
	fresh := make([]*recentItem, 0, len(accepted))
	for _, rf := range accepted {
		if it := rf.r.fresh[rf.i]; it != nil {
			ids = append(ids, rf.r.res[rf.i].ID)
			fresh = append(fresh, it)
		}
	}
	db.recent.add(ids, fresh, nowMS)
	if err := tx.Commit(); err != nil {
		db.recent.remove(ids)
		return mapErr(err)
	}
	return nil
}

// relaxedTx begins a transaction on the relaxed write connection (see
// relaxed); done rolls it back unless it was committed, then gives the
// connection back.
func (db *DB) relaxedTx(ctx context.Context) (tx *sql.Tx, done func(), err error) {
	_, tx, done, err = db.relaxedConnTx(ctx)
	return tx, done, err
}

// relaxedConnTx is relaxedTx, also giving the connection the transaction
// runs on (for rawInserts).
func (db *DB) relaxedConnTx(ctx context.Context) (conn *sql.Conn, tx *sql.Tx, done func(), err error) {
	conn, release, err := db.relaxed(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	if tx, err = conn.BeginTx(ctx, nil); err != nil {
		release()
		return nil, nil, nil, mapErr(err)
	}
	return conn, tx, func() {
		_ = tx.Rollback() // sql.ErrTxDone after a commit
		release()
	}, nil
}

// relaxed pins the write connection with synchronous=NORMAL: in WAL mode a
// commit survives a process crash but may be lost with the OS. Ingest uses
// it and answers only after the syncer's fsync of the WAL. Dispatch
// bookkeeping uses it as it is: a lost outcome only means an event is sent
// again with the same event_id, which Meta deduplicates; the next fsync
// covers these frames too.
// release restores synchronous=FULL, the connection's default, so every
// other write stays durable.
func (db *DB) relaxed(ctx context.Context) (conn *sql.Conn, release func(), err error) {
	conn, err = db.pin(ctx, "PRAGMA synchronous=NORMAL")
	if err != nil {
		return nil, nil, err
	}
	return conn, func() {
		_, _ = conn.ExecContext(context.Background(), "PRAGMA synchronous=FULL")
		conn.Close()
	}, nil
}

func (db *DB) pin(ctx context.Context, pragma string) (*sql.Conn, error) {
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	if _, err := conn.ExecContext(ctx, pragma); err != nil {
		conn.Close()
		return nil, mapErr(err)
	}
	return conn, nil
}
