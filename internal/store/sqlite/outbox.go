package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

type enqueueReq struct {
	ctx   context.Context
	evs   []store.NewEvent // payloads sealed
	fresh []*recentItem    // for claims (recent.go); nil: not kept
	res   []store.EnqueueResult
	err   error
	done  chan struct{}
}

// maxGroup bounds the events one group-commit transaction takes.
const maxGroup = 20000

// Enqueue dedups and stores evs; it returns once the transaction holding them
// has committed durably. Concurrent callers share transactions.
func (db *DB) Enqueue(ctx context.Context, evs []store.NewEvent) ([]store.EnqueueResult, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	// Seal outside the writer so that work runs in parallel.
	sealed := make([]store.NewEvent, len(evs))
	fresh := make([]*recentItem, len(evs))
	for i, ev := range evs {
		ev.Payload = db.box.Seal(ev.Payload, []byte(store.PayloadAD))
		sealed[i] = ev
		fresh[i] = db.recent.newItem(&sealed[i])
	}
	r := &enqueueReq{ctx: ctx, evs: sealed, fresh: fresh, done: make(chan struct{})}
	select {
	case db.reqs <- r:
	case <-db.stop:
		return nil, fmt.Errorf("enqueue: %w: store closed", store.ErrUnavailable)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Never abandon a request the writer may be committing: its result
	// says whether it was stored. If the writer has exited (Close raced
	// this send), nobody will.
	select {
	case <-r.done:
	case <-db.done:
		select {
		case <-r.done:
		default:
			return nil, fmt.Errorf("enqueue: %w: store closed", store.ErrUnavailable)
		}
	}
	return r.res, r.err
}

// The writer commits a group with synchronous=NORMAL, which writes the WAL
// without waiting for the disk, and hands the group to the syncer; the
// syncer fsyncs the WAL and only then answers the group's callers. So the
// next group is built while the disk flushes the last one, and one fsync
// covers every group committed before it. An answered event is on disk: a
// checkpoint (which could let the WAL be rewritten) syncs the WAL first.
func (db *DB) writer() {
	synced := make(chan []*enqueueReq, 64)
	syncDone := make(chan struct{})
	var syncing atomic.Int64       // groups handed to the syncer, not yet answered
	idle := make(chan struct{}, 1) // the syncer answered a group
	go db.syncer(synced, syncDone, &syncing, idle)
	defer func() {
		close(synced)
		<-syncDone
		close(db.done)
	}()
	commit := func(batch []*enqueueReq) {
		if live := db.commitGroup(batch); len(live) > 0 {
			syncing.Add(1)
			synced <- live
		}
	}
	for {
		var batch []*enqueueReq
		select {
		case r := <-db.reqs:
			batch = append(batch, r)
		case <-db.stop:
			// Drain what is already queued so no caller waits forever.
			for {
				select {
				case r := <-db.reqs:
					commit([]*enqueueReq{r})
				default:
					return
				}
			}
		}
		n := len(batch[0].evs)
	gather:
		for n < maxGroup {
			select {
			case r := <-db.reqs:
				batch = append(batch, r)
				n += len(r.evs)
				continue
			default:
			}
			// While an fsync runs, a small group waits for it (or for
			// more events): committing it now would only add a commit's
			// fixed cost, since its callers wait for the next fsync anyway.
			if n >= minPipelined || syncing.Load() == 0 {
				break gather
			}
			select {
			case r := <-db.reqs:
				batch = append(batch, r)
				n += len(r.evs)
			case <-idle:
			case <-db.stop:
				break gather
			}
		}
		commit(batch)
	}
}

// minPipelined is the smallest group committed while the previous one is
// still being synced.
const minPipelined = 1000

// commitGroup stores a group. Callers whose context ended, or whose group
// failed, are answered at once; the committed ones are returned, to be
// answered once the WAL is synced.
func (db *DB) commitGroup(batch []*enqueueReq) []*enqueueReq {
	live := batch[:0:0]
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.err = r.ctx.Err()
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return nil
	}
	start := time.Now()
	if err := db.insertGroup(live); err != nil {
		for _, r := range live {
			r.res, r.err = nil, fmt.Errorf("enqueue: %w", err)
			close(r.done)
		}
		return nil
	}
	if o := db.observer.Load(); o != nil && o.Commit != nil {
		n := 0
		for _, r := range live {
			n += len(r.evs)
		}
		o.Commit(n, time.Since(start))
	}
	// Committed: the sealed payloads (and the strings that hold their
	// request bodies) need not wait for the fsync in memory.
	for _, r := range live {
		r.evs, r.fresh = nil, nil
	}
	return live
}

// syncer answers committed groups once an fsync of the WAL that started
// after their commit has returned.
func (db *DB) syncer(in <-chan []*enqueueReq, done chan<- struct{}, syncing *atomic.Int64, idle chan<- struct{}) {
	defer close(done)
	var wal *os.File
	defer func() {
		if wal != nil {
			wal.Close()
		}
	}()
	for first := range in {
		groups := [][]*enqueueReq{first}
	more:
		for {
			select {
			case g, ok := <-in:
				if !ok {
					break more
				}
				groups = append(groups, g)
			default:
				break more
			}
		}
		var err error
		if db.syncHook != nil {
			err = db.syncHook()
		}
		if err == nil {
			start := time.Now()
			wal, err = db.syncWAL(wal)
			if o := db.observer.Load(); o != nil && o.Sync != nil && err == nil {
				o.Sync(time.Since(start))
			}
		}
		for _, g := range groups {
			for _, r := range g {
				if err != nil {
					r.res, r.err = nil, fmt.Errorf("enqueue: %w: sync the WAL: %v", store.ErrUnavailable, err)
				}
				close(r.done)
			}
		}
		syncing.Add(-int64(len(groups)))
		select {
		case idle <- struct{}{}:
		default:
		}
	}
}

// syncWAL fsyncs the WAL file, (re)opening it if needed.
func (db *DB) syncWAL(f *os.File) (*os.File, error) {
	path := db.path + "-wal"
	if f != nil {
		// SQLite keeps the file while connections are open; if it was
		// replaced anyway, sync the new one.
		a, errA := f.Stat()
		b, errB := os.Stat(path)
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			f.Close()
			f = nil
		}
	}
	if f == nil {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
	}
	if err := datasync(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// rowSizes are the row counts of the prepared multi-row insert statements.
// A group is cut greedily into pieces of these sizes, so every statement
// the writer runs is parsed once, at Open (SQLite allows 32766 bound
// variables; the outbox insert takes 11 per row). Powers of two cut a
// group into few statements (a group of 37 tag beacons is 3 per table, not
// 20), and every size below 8 has its own, so the small groups of the tag
// at moderate load (a handful of beacons) take one statement per table: a
// statement's execution costs about as much as inserting a few rows.
var rowSizes = [...]int{512, 256, 128, 64, 32, 16, 8, 7, 6, 5, 4, 3, 2, 1}

// insertStmts are the writer's prepared statements, one per row size.
type insertStmts struct {
	state, seenRow, catchUp         *sql.Stmt
	seen, overflow, outbox, payload [len(rowSizes)]*sql.Stmt
	learn                           learnStmts
}

func (db *DB) prepareInserts(ctx context.Context) error {
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = db.w.PrepareContext(ctx, q)
		return st
	}
	st := &insertStmts{}
	// What a group needs to know first, in one statement: whether the
	// overflow table holds keys, the last outbox id handed out, and the
	// last dedup key appended (by anyone).
	st.state = prep(`SELECT EXISTS (SELECT 1 FROM seen), coalesce((SELECT seq FROM sqlite_sequence WHERE name='outbox'), 0),
		coalesce((SELECT max(id) FROM seen_log), 0)`)
	st.seenRow = prep(`SELECT site_key, event_name, event_id, seen_at FROM seen_log WHERE id=?`)
	st.catchUp = prep(catchUpQuery)
	for i, n := range rowSizes {
		st.seen[i] = prep(`INSERT INTO seen_log (id, site_key, event_name, event_id, seen_at) VALUES ` + tuples(n, "(?,?,?,?,?)"))
		// A key is new (inserted) or stale (older than the window, so
		// updated); RETURNING names exactly those.
		st.overflow[i] = prep(`INSERT INTO seen (site_key, event_name, event_id, seen_at) VALUES ` + tuples(n, "(?,?,?,?)") +
			` ON CONFLICT (site_key, event_name, event_id) DO UPDATE SET seen_at = excluded.seen_at WHERE seen.seen_at < ?
			RETURNING site_key, event_name, event_id`)
		st.outbox[i] = prep(`INSERT INTO outbox (id, site_key, event_name, event_id, event_time, state,
			next_attempt, source, visitor_id, test_event_code, params, created_at, enriched) VALUES ` + tuples(n, "(?,?,?,?,?,?,?,?,?,?,?,?,?)"))
		st.payload[i] = prep(`INSERT INTO outbox_payload (id, payload) VALUES ` + tuples(n, "(?,?)"))
	}
	st.learn = prepareLearn(prep)
	if err != nil {
		return fmt.Errorf("prepare inserts: %w", mapErr(err))
	}
	db.ins = st
	return nil
}

func (st *insertStmts) close() {
	all := []*sql.Stmt{st.state, st.seenRow, st.catchUp}
	for i := range rowSizes {
		all = append(all, st.seen[i], st.overflow[i], st.outbox[i], st.payload[i])
	}
	all = append(all, st.learn.all()...)
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
	conn, release, err := db.relaxed(ctx) // the syncer makes it durable
	if err != nil {
		return err
	}
	defer release()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
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
		_, err := tx.StmtContext(ctx, st.seen[size]).ExecContext(ctx, args...)
		return mapErr(err)
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
			state := store.StatePending
			if ev.Held {
				state = store.StateHeld
			}
			args = append(args, rf.r.res[rf.i].ID, ev.SiteKey, ev.EventName, ev.EventID, ms(ev.EventTime), state,
				nowMS, ev.Source, ev.VisitorID, ev.TestEventCode, ev.Params, nowMS, store.JoinKeys(ev.Enriched))
		}
		if _, err := tx.StmtContext(ctx, st.outbox[size]).ExecContext(ctx, args...); err != nil {
			return mapErr(err)
		}
		args = args[:0]
		for _, rf := range accepted[lo : lo+rowSizes[size]] {
			args = append(args, rf.r.res[rf.i].ID, rf.r.evs[rf.i].Payload)
		}
		_, err := tx.StmtContext(ctx, st.payload[size]).ExecContext(ctx, args...)
		return mapErr(err)
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

// itemQuery selects whole items: the outbox row and its payload.
const itemQuery = `SELECT o.id, o.site_key, o.event_name, o.event_id, o.event_time, o.state, o.attempts, o.next_attempt,
	o.last_error, o.trace_id, o.source, o.visitor_id, o.test_event_code, o.params, o.created_at, o.delivered_at, o.enriched, p.payload
	FROM outbox o JOIN outbox_payload p ON p.id = o.id`

// scanItem reads a row of itemQuery and opens its payload.
func (db *DB) scanItem(row interface{ Scan(...any) error }) (store.Item, error) {
	var it store.Item
	var et, next, created, delivered int64
	var payload []byte
	var enriched string
	if err := row.Scan(&it.ID, &it.SiteKey, &it.EventName, &it.EventID, &et, &it.State, &it.Attempts,
		&next, &it.LastError, &it.TraceID, &it.Source, &it.VisitorID, &it.TestEventCode, &it.Params, &created, &delivered, &enriched, &payload); err != nil {
		return it, mapErr(err)
	}
	it.Enriched = store.SplitKeys(enriched)
	pt, err := db.box.Open(payload, []byte(store.PayloadAD))
	if err != nil {
		return it, fmt.Errorf("outbox item %d: %w", it.ID, err)
	}
	it.Payload = pt
	it.EventTime, it.NextAttempt, it.CreatedAt, it.DeliveredAt = fromMS(et), fromMS(next), fromMS(created), fromMS(delivered)
	return it, nil
}

// scanItems appends the items of rows (of itemQuery) to items and closes rows.
func (db *DB) scanItems(rows *sql.Rows, items []store.Item) ([]store.Item, error) {
	defer rows.Close()
	for rows.Next() {
		it, err := db.scanItem(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	return items, mapErr(rows.Err())
}

// tuples is n copies of one, comma-separated: the VALUES rows or IN list
// of a statement.
func tuples(n int, one string) string {
	return strings.TrimSuffix(strings.Repeat(one+",", n), ",")
}

func placeholders(n int) string { return tuples(n, "?") }

// DueSites lists sites with due items and the next attempt time otherwise.
// A claimed item counts as due when its lease runs out. Each site costs a
// seek in the due index, not a scan of its queue.
func (db *DB) DueSites(ctx context.Context, now time.Time) ([]string, time.Time, error) {
	keys, err := db.siteKeys(ctx)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("due sites: %w", err)
	}
	db.leases.mu.Lock()
	defer db.leases.mu.Unlock()
	at := map[string]int64{}
	leased := map[string]int{}
	for _, l := range db.leases.m {
		leased[l.site]++
		if cur, ok := at[l.site]; !ok || l.until < cur {
			at[l.site] = l.until
		}
	}
	for _, key := range keys {
		rows, err := db.readRows(ctx, `SELECT id, next_attempt FROM outbox WHERE state IN ('pending','inflight') AND site_key=?
			ORDER BY next_attempt LIMIT ?`, key, leased[key]+1)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("due sites: %w", mapErr(err))
		}
		for rows.Next() {
			var id, next int64
			if err := rows.Scan(&id, &next); err != nil {
				rows.Close()
				return nil, time.Time{}, fmt.Errorf("due sites: %w", mapErr(err))
			}
			if _, ok := db.leases.m[id]; ok {
				continue
			}
			if cur, ok := at[key]; !ok || next < cur {
				at[key] = next
			}
			break
		}
		if err := rows.Close(); err != nil {
			return nil, time.Time{}, fmt.Errorf("due sites: %w", mapErr(err))
		}
	}
	var due []string
	var next time.Time
	for key, v := range at {
		t := fromMS(v)
		if !t.After(now) {
			due = append(due, key)
		} else if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	slices.Sort(due)
	return due, next, nil
}

// siteKeys lists the sites with queued items, one index seek per site (a
// loose index scan of outbox_due).
func (db *DB) siteKeys(ctx context.Context) ([]string, error) {
	rows, err := db.readRows(ctx, `WITH RECURSIVE k(site) AS (
			SELECT min(site_key) FROM outbox WHERE state IN ('pending','inflight')
			UNION ALL
			SELECT (SELECT min(site_key) FROM outbox WHERE state IN ('pending','inflight') AND site_key > k.site)
			FROM k WHERE k.site IS NOT NULL)
		SELECT site FROM k WHERE site IS NOT NULL`)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, mapErr(err)
		}
		keys = append(keys, k)
	}
	return keys, mapErr(rows.Err())
}

// ReleaseHeld releases or drops the held events of a visitor; a grant's
// fill rewrites their payloads in the same transaction.
func (db *DB) ReleaseHeld(ctx context.Context, siteKey, visitorID string, granted bool, fill store.HeldFill) (int, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("release held events: %w", mapErr(err))
	}
	defer tx.Rollback()
	if granted && fill != nil {
		if err := db.fillHeld(ctx, tx, siteKey, visitorID, fill); err != nil {
			return 0, fmt.Errorf("release held events: %w", err)
		}
	}
	var res sql.Result
	if granted {
		res, err = tx.ExecContext(ctx, `UPDATE outbox SET state='pending', next_attempt=? WHERE state='held' AND site_key=? AND visitor_id=?`,
			ms(db.now()), siteKey, visitorID)
	} else {
		res, err = tx.ExecContext(ctx, `DELETE FROM outbox WHERE state='held' AND site_key=? AND visitor_id=?`, siteKey, visitorID)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return 0, fmt.Errorf("release held events: %w", mapErr(err))
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// fillHeld rewrites the sealed payloads of a visitor's held events with
// fill. Held events are never kept in memory (recent.go), so the table is
// the only copy.
func (db *DB) fillHeld(ctx context.Context, tx *sql.Tx, siteKey, visitorID string, fill store.HeldFill) error {
	rows, err := tx.QueryContext(ctx, `SELECT o.id, p.payload FROM outbox o JOIN outbox_payload p ON p.id = o.id
		WHERE o.state='held' AND o.site_key=? AND o.visitor_id=?`, siteKey, visitorID)
	if err != nil {
		return mapErr(err)
	}
	ups, err := store.RefillPayloads(db.box, rows, fill)
	rows.Close()
	if err != nil {
		return mapErr(err)
	}
	for _, u := range ups {
		if _, err := tx.ExecContext(ctx, `UPDATE outbox_payload SET payload=? WHERE id=?`, u.Payload, u.ID); err != nil {
			return mapErr(err)
		}
	}
	return nil
}

// Replay makes a dead item pending again.
func (db *DB) Replay(ctx context.Context, id int64, now time.Time) error {
	return db.exec1(ctx, "replay", `UPDATE outbox SET state='pending', next_attempt=?, last_error='', delivered_at=0 WHERE id=? AND state='dead'`, ms(now), id)
}

// Item returns one outbox item.
func (db *DB) Item(ctx context.Context, id int64) (*store.Item, error) {
	it, err := db.scanItem(db.r.QueryRowContext(ctx, itemQuery+` WHERE o.id=?`, id))
	if err != nil {
		return nil, fmt.Errorf("item %d: %w", id, err)
	}
	one := []store.Item{it}
	db.overlayLeases(one)
	return &one[0], nil
}

// Items lists the newest items, optionally of one site and state.
func (db *DB) Items(ctx context.Context, siteKey, state string, limit int) ([]store.Item, error) {
	q := itemQuery + ` WHERE 1=1`
	var args []any
	if siteKey != "" {
		q += ` AND o.site_key=?`
		args = append(args, siteKey)
	}
	// Claims live in memory (lease.go): pending rows may be in flight.
	fetch := limit
	switch state {
	case "":
	case store.StateInflight:
		leased := db.leasedIDs(900)
		q += ` AND (o.state='inflight' OR o.id IN (` + placeholders(len(leased)) + `))`
		for _, id := range leased {
			args = append(args, id)
		}
	case store.StatePending:
		q += ` AND o.state=?`
		args = append(args, state)
		db.leases.mu.Lock()
		fetch += len(db.leases.m)
		db.leases.mu.Unlock()
	default:
		q += ` AND o.state=?`
		args = append(args, state)
	}
	q += ` ORDER BY o.id DESC LIMIT ?`
	args = append(args, fetch)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("items: %w", mapErr(err))
	}
	out, err := db.scanItems(rows, nil)
	if err != nil {
		return nil, fmt.Errorf("items: %w", err)
	}
	db.overlayLeases(out)
	if state != "" {
		out = slices.DeleteFunc(out, func(it store.Item) bool { return it.State != state })
	}
	return out[:min(len(out), limit)], nil
}

// Depth counts pending and in-flight items per site.
func (db *DB) Depth(ctx context.Context) (map[string]int, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT site_key, count(*) FROM outbox WHERE state IN ('pending','inflight') GROUP BY site_key`)
	if err != nil {
		return nil, fmt.Errorf("queue depth: %w", mapErr(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, mapErr(err)
		}
		out[k] = n
	}
	return out, mapErr(rows.Err())
}

// pruneChunk bounds the rows one prune statement deletes, so the write lock
// is never held long enough to stall ingest.
const pruneChunk = 2000

// Prune deletes delivered items older than deliveredBefore and dedup keys
// older than seenBefore, a chunk at a time. "delivered_at > 0" lets SQLite
// use the partial index on delivered_at instead of scanning the outbox
// (a scan of millions of rows held the write lock for seconds). Dedup keys
// are appended in time order, so the old ones are at the start of seen_log.
func (db *DB) Prune(ctx context.Context, deliveredBefore, seenBefore time.Time) (int, error) {
	total := 0
	for _, q := range []struct {
		what, sql string
		before    time.Time
		count     bool
	}{
		{"prune outbox", `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
			WHERE delivered_at > 0 AND delivered_at < ? AND state='delivered' LIMIT ?)`, deliveredBefore, true},
		{"prune dedup keys", `DELETE FROM seen_log WHERE id IN (SELECT id FROM
			(SELECT id, seen_at FROM seen_log ORDER BY id LIMIT ?2) WHERE seen_at < ?1)`, seenBefore, false},
		{"prune overflow dedup keys", `DELETE FROM seen WHERE (site_key, event_name, event_id) IN
			(SELECT site_key, event_name, event_id FROM seen WHERE seen_at < ? LIMIT ?)`, seenBefore, false},
	} {
		for {
			res, err := db.w.ExecContext(ctx, q.sql, ms(q.before), pruneChunk)
			if err != nil {
				return total, fmt.Errorf("%s: %w", q.what, mapErr(err))
			}
			n, _ := res.RowsAffected()
			if q.count {
				total += int(n)
			}
			if n < pruneChunk {
				break
			}
		}
	}
	var first sql.NullInt64
	if err := db.r.QueryRowContext(ctx, `SELECT min(id) FROM seen_log`).Scan(&first); err != nil {
		return total, fmt.Errorf("prune dedup keys: %w", mapErr(err))
	}
	db.dedup.mu.Lock()
	if first.Valid {
		db.dedup.forgetBefore(first.Int64)
	} else {
		db.dedup.forgetBefore(db.dedup.last + 1)
	}
	db.dedup.mu.Unlock()
	return total, nil
}

// RecordSandbox keeps a payload the sandbox destination received.
func (db *DB) RecordSandbox(ctx context.Context, siteKey string, at time.Time, payload []byte) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO sandbox (site_key, at, payload) VALUES (?,?,?)`, siteKey, ms(at),
		db.box.Seal(payload, []byte(store.SandboxAD)))
	if err != nil {
		return fmt.Errorf("record sandbox payload: %w", mapErr(err))
	}
	return nil
}

// SandboxRecords lists sandbox payloads after afterID, oldest first.
func (db *DB) SandboxRecords(ctx context.Context, siteKey string, afterID int64, limit int) ([]store.SandboxRecord, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, site_key, at, payload FROM sandbox WHERE site_key=? AND id>? ORDER BY id LIMIT ?`,
		siteKey, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("sandbox records: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.SandboxRecord
	for rows.Next() {
		var r store.SandboxRecord
		var at int64
		var sealed []byte
		if err := rows.Scan(&r.ID, &r.SiteKey, &at, &sealed); err != nil {
			return nil, mapErr(err)
		}
		if r.Payload, err = db.box.Open(sealed, []byte(store.SandboxAD)); err != nil {
			return nil, fmt.Errorf("sandbox record %d: %w", r.ID, err)
		}
		r.At = fromMS(at)
		out = append(out, r)
	}
	return out, mapErr(rows.Err())
}

// ReleaseOrphans gives back every claim. SQLite serves one relay process
// per data directory (serve holds a lock), so at start any in-flight item
// was claimed by a process that died: it is due again at once, instead of
// when its lease would have run out.
func (db *DB) ReleaseOrphans(ctx context.Context) (int, error) {
	db.leases.mu.Lock()
	n := len(db.leases.m)
	clear(db.leases.m)
	db.leases.mu.Unlock()
	res, err := db.w.ExecContext(ctx, `UPDATE outbox SET state='pending', next_attempt=?, lease_owner=''
		WHERE state='inflight'`, ms(db.now()))
	if err != nil {
		return 0, fmt.Errorf("release orphaned claims: %w", mapErr(err))
	}
	rows, _ := res.RowsAffected()
	return n + int(rows), nil
}
