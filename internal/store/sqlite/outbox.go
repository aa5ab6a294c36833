package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

type enqueueReq struct {
	ctx  context.Context
	evs  []store.NewEvent
	res  []store.EnqueueResult
	err  error
	done chan struct{}
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
	for i, ev := range evs {
		ev.Payload = db.box.Seal(ev.Payload, []byte(store.PayloadAD))
		sealed[i] = ev
	}
	r := &enqueueReq{ctx: ctx, evs: sealed, done: make(chan struct{})}
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

func (db *DB) writer() {
	defer close(db.done)
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
					db.commitGroup([]*enqueueReq{r})
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
			default:
				break gather
			}
		}
		db.commitGroup(batch)
	}
}

func (db *DB) commitGroup(batch []*enqueueReq) {
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
		return
	}
	err := db.insertGroup(live)
	for _, r := range live {
		if err != nil {
			r.res, r.err = nil, fmt.Errorf("enqueue: %w", err)
		}
		close(r.done)
	}
}

// chunk bounds the rows of one multi-row statement (SQLite allows 32766
// bound variables; the outbox insert takes 11 per row).
const chunk = 500

type dedupKey struct{ site, name, id string }

func (db *DB) insertGroup(batch []*enqueueReq) (err error) {
	ctx := context.Background()
	conn, err := db.durable(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	type ref struct {
		r *enqueueReq
		i int
	}
	var all []ref
	for _, r := range batch {
		r.res = make([]store.EnqueueResult, len(r.evs))
		for i := range r.evs {
			all = append(all, ref{r, i})
		}
	}
	now := db.now()
	nowMS, cutoff := ms(now), ms(now.Add(-store.DedupWindow))
	// Dedup: a key is new (inserted) or stale (older than the window, so
	// updated); RETURNING names exactly those. A repeat inside the batch
	// conflicts with its twin's fresh row and is not returned.
	fresh := make(map[dedupKey]bool, len(all))
	var sb strings.Builder
	args := make([]any, 0, chunk*11)
	for lo := 0; lo < len(all); lo += chunk {
		part := all[lo:min(lo+chunk, len(all))]
		sb.Reset()
		args = args[:0]
		sb.WriteString(`INSERT INTO seen (site_key, event_name, event_id, seen_at) VALUES `)
		for j, rf := range part {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?)")
			ev := &rf.r.evs[rf.i]
			args = append(args, ev.SiteKey, ev.EventName, ev.EventID, nowMS)
		}
		sb.WriteString(` ON CONFLICT (site_key, event_name, event_id) DO UPDATE SET seen_at = excluded.seen_at WHERE seen.seen_at < ?
			RETURNING site_key, event_name, event_id`)
		args = append(args, cutoff)
		rows, err := tx.QueryContext(ctx, sb.String(), args...)
		if err != nil {
			return mapErr(err)
		}
		for rows.Next() {
			var k dedupKey
			if err := rows.Scan(&k.site, &k.name, &k.id); err != nil {
				rows.Close()
				return mapErr(err)
			}
			fresh[k] = true
		}
		if err := rows.Close(); err != nil {
			return mapErr(err)
		}
	}
	accepted := all[:0:0]
	for _, rf := range all {
		ev := &rf.r.evs[rf.i]
		k := dedupKey{ev.SiteKey, ev.EventName, ev.EventID}
		if fresh[k] {
			delete(fresh, k) // a second copy in this batch is a duplicate
			accepted = append(accepted, rf)
		} else {
			rf.r.res[rf.i] = store.EnqueueResult{Status: store.Duplicate}
		}
	}
	ids := make(map[dedupKey]int64, len(accepted))
	for lo := 0; lo < len(accepted); lo += chunk {
		part := accepted[lo:min(lo+chunk, len(accepted))]
		sb.Reset()
		args = args[:0]
		sb.WriteString(`INSERT INTO outbox (site_key, event_name, event_id, event_time, payload, state,
			next_attempt, source, visitor_id, test_event_code, created_at) VALUES `)
		for j, rf := range part {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,?,?,?,?,?)")
			ev := &rf.r.evs[rf.i]
			state := store.StatePending
			if ev.Held {
				state = store.StateHeld
			}
			args = append(args, ev.SiteKey, ev.EventName, ev.EventID, ms(ev.EventTime), ev.Payload, state,
				nowMS, ev.Source, ev.VisitorID, ev.TestEventCode, nowMS)
		}
		sb.WriteString(` RETURNING id, site_key, event_name, event_id`)
		rows, err := tx.QueryContext(ctx, sb.String(), args...)
		if err != nil {
			return mapErr(err)
		}
		for rows.Next() {
			var k dedupKey
			var id int64
			if err := rows.Scan(&id, &k.site, &k.name, &k.id); err != nil {
				rows.Close()
				return mapErr(err)
			}
			ids[k] = id
		}
		if err := rows.Close(); err != nil {
			return mapErr(err)
		}
	}
	for _, rf := range accepted {
		ev := &rf.r.evs[rf.i]
		rf.r.res[rf.i] = store.EnqueueResult{Status: store.Accepted, ID: ids[dedupKey{ev.SiteKey, ev.EventName, ev.EventID}]}
	}
	return mapErr(tx.Commit())
}

// durable pins the write connection with synchronous=FULL: the commit is
// fsynced before it returns. Ingest uses it: an acknowledged event is on disk.
func (db *DB) durable(ctx context.Context) (*sql.Conn, error) {
	return db.pin(ctx, "PRAGMA synchronous=FULL")
}

// relaxed pins the write connection with synchronous=NORMAL: in WAL mode a
// commit survives a process crash but may be lost with the OS. Dispatch
// bookkeeping uses it: a lost claim or outcome only means an event is sent
// again with the same event_id, which Meta deduplicates; the next durable
// commit fsyncs these frames too.
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

const itemCols = `id, site_key, event_name, event_id, event_time, payload, state, attempts, next_attempt, last_error,
	trace_id, source, visitor_id, test_event_code, created_at, delivered_at`

func (db *DB) scanItem(row interface{ Scan(...any) error }) (store.Item, error) {
	var it store.Item
	var et, next, created, delivered int64
	var payload []byte
	if err := row.Scan(&it.ID, &it.SiteKey, &it.EventName, &it.EventID, &et, &payload, &it.State, &it.Attempts,
		&next, &it.LastError, &it.TraceID, &it.Source, &it.VisitorID, &it.TestEventCode, &created, &delivered); err != nil {
		return it, mapErr(err)
	}
	pt, err := db.box.Open(payload, []byte(store.PayloadAD))
	if err != nil {
		return it, fmt.Errorf("outbox item %d: %w", it.ID, err)
	}
	it.Payload = pt
	it.EventTime, it.NextAttempt, it.CreatedAt, it.DeliveredAt = fromMS(et), fromMS(next), fromMS(created), fromMS(delivered)
	return it, nil
}

// Claim leases up to limit due items of a site to owner.
func (db *DB) Claim(ctx context.Context, siteKey, owner string, limit int, now time.Time, lease time.Duration) ([]store.Item, error) {
	conn, release, err := db.relaxed(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim for site %s: %w", siteKey, err)
	}
	defer release()
	rows, err := conn.QueryContext(ctx, `UPDATE outbox SET state='inflight', lease_owner=?, next_attempt=?, attempts=attempts+1
		WHERE id IN (SELECT id FROM outbox WHERE state IN ('pending','inflight') AND site_key=? AND next_attempt<=? ORDER BY next_attempt LIMIT ?)
		RETURNING `+itemCols, owner, ms(now.Add(lease)), siteKey, ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim for site %s: %w", siteKey, mapErr(err))
	}
	defer rows.Close()
	items := make([]store.Item, 0, limit)
	for rows.Next() {
		it, err := db.scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("claim for site %s: %w", siteKey, err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim for site %s: %w", siteKey, mapErr(err))
	}
	sortItems(items)
	return items, nil
}

// Complete records outcomes for items leased to owner. Delivered items that
// share a trace id are written with one statement.
func (db *DB) Complete(ctx context.Context, owner string, outs []store.Outcome, now time.Time) error {
	conn, release, err := db.relaxed(ctx)
	if err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	defer release()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("complete: %w", mapErr(err))
	}
	defer tx.Rollback()
	delivered := map[string][]any{}
	for _, o := range outs {
		var err error
		switch o.Kind {
		case store.OutcomeDelivered:
			delivered[o.TraceID] = append(delivered[o.TraceID], o.ID)
		case store.OutcomeRetry:
			_, err = tx.ExecContext(ctx, `UPDATE outbox SET state='pending', next_attempt=?, last_error=?, trace_id=?, lease_owner=''
				WHERE id=? AND lease_owner=? AND state='inflight'`, ms(o.RetryAt), o.Reason, o.TraceID, o.ID, owner)
		case store.OutcomeDead:
			_, err = tx.ExecContext(ctx, `UPDATE outbox SET state='dead', last_error=?, trace_id=?, lease_owner='', delivered_at=?
				WHERE id=? AND lease_owner=? AND state='inflight'`, o.Reason, o.TraceID, ms(now), o.ID, owner)
		case store.OutcomeRelease:
			_, err = tx.ExecContext(ctx, `UPDATE outbox SET state='pending', next_attempt=?, attempts=max(attempts-1,0), lease_owner=''
				WHERE id=? AND lease_owner=? AND state='inflight'`, ms(now), o.ID, owner)
		default:
			err = fmt.Errorf("unknown outcome kind %d", o.Kind)
		}
		if err != nil {
			return fmt.Errorf("complete item %d: %w", o.ID, mapErr(err))
		}
	}
	for trace, ids := range delivered {
		for len(ids) > 0 {
			n := min(len(ids), 900)
			chunk := ids[:n]
			ids = ids[n:]
			args := append([]any{trace, ms(now), owner}, chunk...)
			q := `UPDATE outbox SET state='delivered', trace_id=?, delivered_at=?, last_error='', lease_owner=''
				WHERE lease_owner=? AND state='inflight' AND id IN (` + placeholders(n) + `)`
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("complete delivered: %w", mapErr(err))
			}
		}
	}
	return mapErr(tx.Commit())
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// DueSites lists sites with due items and the next attempt time otherwise.
func (db *DB) DueSites(ctx context.Context, now time.Time) ([]string, time.Time, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT site_key, min(next_attempt) FROM outbox WHERE state IN ('pending','inflight') GROUP BY site_key`)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("due sites: %w", mapErr(err))
	}
	defer rows.Close()
	var due []string
	var next time.Time
	for rows.Next() {
		var key string
		var at int64
		if err := rows.Scan(&key, &at); err != nil {
			return nil, time.Time{}, mapErr(err)
		}
		t := fromMS(at)
		if !t.After(now) {
			due = append(due, key)
		} else if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return due, next, mapErr(rows.Err())
}

// Release gives back every claim of owner.
func (db *DB) Release(ctx context.Context, owner string) error {
	_, err := db.w.ExecContext(ctx, `UPDATE outbox SET state='pending', next_attempt=?, attempts=max(attempts-1,0), lease_owner=''
		WHERE state='inflight' AND lease_owner=?`, ms(db.now()), owner)
	if err != nil {
		return fmt.Errorf("release claims: %w", mapErr(err))
	}
	return nil
}

// ReleaseHeld releases or drops the held events of a visitor.
func (db *DB) ReleaseHeld(ctx context.Context, siteKey, visitorID string, granted bool) (int, error) {
	var res sql.Result
	var err error
	if granted {
		res, err = db.w.ExecContext(ctx, `UPDATE outbox SET state='pending', next_attempt=? WHERE state='held' AND site_key=? AND visitor_id=?`,
			ms(db.now()), siteKey, visitorID)
	} else {
		res, err = db.w.ExecContext(ctx, `DELETE FROM outbox WHERE state='held' AND site_key=? AND visitor_id=?`, siteKey, visitorID)
	}
	if err != nil {
		return 0, fmt.Errorf("release held events: %w", mapErr(err))
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Replay makes a dead item pending again.
func (db *DB) Replay(ctx context.Context, id int64, now time.Time) error {
	return db.exec1(ctx, "replay", `UPDATE outbox SET state='pending', next_attempt=?, last_error='', delivered_at=0 WHERE id=? AND state='dead'`, ms(now), id)
}

// Item returns one outbox item.
func (db *DB) Item(ctx context.Context, id int64) (*store.Item, error) {
	it, err := db.scanItem(db.r.QueryRowContext(ctx, `SELECT `+itemCols+` FROM outbox WHERE id=?`, id))
	if err != nil {
		return nil, fmt.Errorf("item %d: %w", id, err)
	}
	return &it, nil
}

// Items lists the newest items, optionally of one site and state.
func (db *DB) Items(ctx context.Context, siteKey, state string, limit int) ([]store.Item, error) {
	q := `SELECT ` + itemCols + ` FROM outbox WHERE 1=1`
	var args []any
	if siteKey != "" {
		q += ` AND site_key=?`
		args = append(args, siteKey)
	}
	if state != "" {
		q += ` AND state=?`
		args = append(args, state)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("items: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Item
	for rows.Next() {
		it, err := db.scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
		out = append(out, it)
	}
	return out, mapErr(rows.Err())
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
// (a scan of millions of rows held the write lock for seconds).
func (db *DB) Prune(ctx context.Context, deliveredBefore, seenBefore time.Time) (int, error) {
	total := 0
	for _, q := range []struct {
		what, sql string
		before    time.Time
		count     bool
	}{
		{"prune outbox", `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
			WHERE delivered_at > 0 AND delivered_at < ? AND state='delivered' LIMIT ?)`, deliveredBefore, true},
		{"prune dedup keys", `DELETE FROM seen WHERE (site_key, event_name, event_id) IN
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
	res, err := db.w.ExecContext(ctx, `UPDATE outbox SET state='pending', next_attempt=?, lease_owner=''
		WHERE state='inflight'`, ms(db.now()))
	if err != nil {
		return 0, fmt.Errorf("release orphaned claims: %w", mapErr(err))
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
