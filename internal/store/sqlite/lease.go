package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// leases are the SQLite store's claims. One process dispatches from a
// SQLite file (serve locks the data directory), so claims are kept in
// memory: claiming writes nothing, and only the outcome is written, once.
// A crash forgets every claim, which leaves the items due at once, as
// ReleaseOrphans makes them at start.
//
// mu is held across a claim's read and across an outcome's write and the
// forgetting of its lease, so a claim never sees one without the other.
type leases struct {
	mu sync.Mutex
	m  map[int64]lease
}

type lease struct {
	owner    string
	site     string
	until    int64 // ms
	attempts int   // this claim included
}

// Claim leases up to limit due items of a site to owner until now+lease.
// Items whose lease ran out are due again.
func (db *DB) Claim(ctx context.Context, siteKey, owner string, limit int, now time.Time, lease time.Duration) ([]store.Item, error) {
	items, err := db.claim(ctx, siteKey, owner, limit, now, lease)
	if err != nil {
		return nil, fmt.Errorf("claim for site %s: %w", siteKey, err)
	}
	return items, nil
}

func (db *DB) claim(ctx context.Context, siteKey, owner string, limit int, now time.Time, leaseFor time.Duration) ([]store.Item, error) {
	db.leases.mu.Lock()
	defer db.leases.mu.Unlock()
	nowMS := ms(now)
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, mapErr(err)
	}
	defer tx.Rollback()
	var items []store.Item
	if db.siteLeased(siteKey, nowMS) {
		ids, err := db.dueIDs(ctx, tx, siteKey, nowMS, limit)
		if err != nil || len(ids) == 0 {
			return nil, err
		}
		if items, err = db.itemsByID(ctx, tx, ids); err != nil {
			return nil, err
		}
	} else if items, err = db.dueItems(ctx, tx, siteKey, nowMS, limit); err != nil {
		return nil, err
	}
	until := now.Add(leaseFor)
	for i := range items {
		it := &items[i]
		attempts := it.Attempts + 1
		if l, ok := db.leases.m[it.ID]; ok { // its lease ran out
			attempts = l.attempts + 1
		}
		db.leases.m[it.ID] = lease{owner: owner, site: siteKey, until: ms(until), attempts: attempts}
		it.State, it.Attempts, it.NextAttempt = store.StateInflight, attempts, fromMS(ms(until))
	}
	return items, nil
}

// siteLeased reports whether some item of the site is claimed and its lease
// has not run out. Usually none is: a site has one dispatch worker, which
// records its outcomes before it claims again.
func (db *DB) siteLeased(siteKey string, nowMS int64) bool {
	for _, l := range db.leases.m {
		if l.site == siteKey && l.until > nowMS {
			return true
		}
	}
	return false
}

// dueItems reads the due items of a site, when none of them is leased.
func (db *DB) dueItems(ctx context.Context, tx *sql.Tx, siteKey string, nowMS int64, limit int) ([]store.Item, error) {
	rows, err := tx.QueryContext(ctx, itemQuery+` WHERE o.state IN ('pending','inflight') AND o.site_key=? AND o.next_attempt<=?
		ORDER BY o.next_attempt LIMIT ?`, siteKey, nowMS, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	items, err := db.scanItems(rows, make([]store.Item, 0, limit))
	if err != nil {
		return nil, err
	}
	sortItems(items)
	return items, nil
}

// dueIDs lists up to limit due ids of a site that are not leased. Leased
// items are still pending in the file: it asks for enough to skip them.
func (db *DB) dueIDs(ctx context.Context, tx *sql.Tx, siteKey string, nowMS int64, limit int) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM outbox WHERE state IN ('pending','inflight') AND site_key=? AND next_attempt<=?
		ORDER BY next_attempt LIMIT ?`, siteKey, nowMS, limit+len(db.leases.m))
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	ids := make([]int64, 0, limit)
	for rows.Next() && len(ids) < limit {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, mapErr(err)
		}
		if l, ok := db.leases.m[id]; ok && l.until > nowMS {
			continue
		}
		ids = append(ids, id)
	}
	return ids, mapErr(rows.Err())
}

// itemsByID reads whole items, payload opened, in id order; ids that are
// gone (forgotten meanwhile) are left out.
func (db *DB) itemsByID(ctx context.Context, tx *sql.Tx, ids []int64) ([]store.Item, error) {
	items := make([]store.Item, 0, len(ids))
	args := make([]any, 0, 900)
	for lo := 0; lo < len(ids); lo += 900 {
		part := ids[lo:min(lo+900, len(ids))]
		args = args[:0]
		for _, id := range part {
			args = append(args, id)
		}
		rows, err := tx.QueryContext(ctx, itemQuery+` WHERE o.id IN (`+placeholders(len(part))+`) ORDER BY o.id`, args...)
		if err != nil {
			return nil, mapErr(err)
		}
		if items, err = db.scanItems(rows, items); err != nil {
			return nil, err
		}
	}
	sortItems(items)
	return items, nil
}

// Complete records outcomes for items leased to owner; outcomes for items
// whose lease passed to another owner are ignored. Delivered items that
// share a trace id are written with one statement.
func (db *DB) Complete(ctx context.Context, owner string, outs []store.Outcome, now time.Time) error {
	db.leases.mu.Lock()
	defer db.leases.mu.Unlock()
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
	type group struct {
		trace    string
		attempts int
	}
	delivered := map[group][]any{}
	var mine []int64
	for _, o := range outs {
		l, ok := db.leases.m[o.ID]
		if !ok || l.owner != owner {
			continue
		}
		mine = append(mine, o.ID)
		var err error
		switch o.Kind {
		case store.OutcomeDelivered:
			g := group{o.TraceID, l.attempts}
			delivered[g] = append(delivered[g], o.ID)
		case store.OutcomeRetry:
			_, err = tx.ExecContext(ctx, `UPDATE outbox SET state='pending', next_attempt=?, last_error=?, trace_id=?, attempts=?, lease_owner=''
				WHERE id=? AND state IN ('pending','inflight')`, ms(o.RetryAt), o.Reason, o.TraceID, l.attempts, o.ID)
		case store.OutcomeDead:
			_, err = tx.ExecContext(ctx, `UPDATE outbox SET state='dead', last_error=?, trace_id=?, delivered_at=?, attempts=?, lease_owner=''
				WHERE id=? AND state IN ('pending','inflight')`, o.Reason, o.TraceID, ms(now), l.attempts, o.ID)
		case store.OutcomeRelease:
			// Given back untouched: the item is due as it was.
		default:
			err = fmt.Errorf("unknown outcome kind %d", o.Kind)
		}
		if err != nil {
			return fmt.Errorf("complete item %d: %w", o.ID, mapErr(err))
		}
	}
	for g, ids := range delivered {
		for len(ids) > 0 {
			n := min(len(ids), 900)
			chunk := ids[:n]
			ids = ids[n:]
			args := append([]any{g.trace, ms(now), g.attempts}, chunk...)
			q := `UPDATE outbox SET state='delivered', trace_id=?, delivered_at=?, attempts=?, last_error='', lease_owner=''
				WHERE state IN ('pending','inflight') AND id IN (` + placeholders(n) + `)`
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("complete delivered: %w", mapErr(err))
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("complete: %w", mapErr(err))
	}
	for _, id := range mine {
		delete(db.leases.m, id)
	}
	return nil
}

// Release gives back every claim of owner.
func (db *DB) Release(ctx context.Context, owner string) error {
	db.leases.mu.Lock()
	for id, l := range db.leases.m {
		if l.owner == owner {
			delete(db.leases.m, id)
		}
	}
	db.leases.mu.Unlock()
	// Claims written by versions that kept them in the file.
	_, err := db.w.ExecContext(ctx, `UPDATE outbox SET state='pending', next_attempt=?, attempts=max(attempts-1,0), lease_owner=''
		WHERE state='inflight' AND lease_owner=?`, ms(db.now()), owner)
	if err != nil {
		return fmt.Errorf("release claims: %w", mapErr(err))
	}
	return nil
}

// overlayLeases shows claimed items as in flight, as they would be read
// from a store that writes its claims.
func (db *DB) overlayLeases(items []store.Item) {
	db.leases.mu.Lock()
	defer db.leases.mu.Unlock()
	for i := range items {
		if l, ok := db.leases.m[items[i].ID]; ok && (items[i].State == store.StatePending || items[i].State == store.StateInflight) {
			items[i].State, items[i].Attempts, items[i].NextAttempt = store.StateInflight, l.attempts, fromMS(l.until)
		}
	}
}

// leasedIDs lists up to n claimed ids, newest first.
func (db *DB) leasedIDs(n int) []int64 {
	db.leases.mu.Lock()
	ids := make([]int64, 0, len(db.leases.m))
	for id := range db.leases.m {
		ids = append(ids, id)
	}
	db.leases.mu.Unlock()
	slices.Sort(ids)
	slices.Reverse(ids)
	return ids[:min(len(ids), n)]
}
