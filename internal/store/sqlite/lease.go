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
// mu is held across a claim's read, and by Complete to read its leases
// and, only after the outcome is committed, to forget them: a claim never
// finds an item neither leased nor done (see complete).
type leases struct {
	mu    sync.Mutex
	m     map[int64]lease
	stmts *completeStmts // prepared on first use
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
	var items []store.Item
	if db.siteLeased(siteKey, nowMS) || db.recent.has(siteKey) {
		// Two reads of one snapshot: the due ids, then the items of those
		// not just committed (the others are in memory).
		tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return nil, mapErr(err)
		}
		defer tx.Rollback()
		ids, err := db.dueIDs(ctx, tx, siteKey, nowMS, limit)
		if err != nil || len(ids) == 0 {
			return nil, err
		}
		var missing []int64
		items, missing = db.recent.take(siteKey, ids)
		if err := db.openPayloads(items); err != nil {
			return nil, err
		}
		if len(missing) > 0 {
			read, err := db.itemsByID(ctx, tx, siteKey, missing)
			if err != nil {
				return nil, err
			}
			items = append(items, read...)
		}
		sortItems(items)
	} else {
		var err error
		if items, err = db.dueItems(ctx, siteKey, nowMS, limit); err != nil {
			return nil, err
		}
		// Committed since has looked: their entries go with the claim.
		ids := make([]int64, len(items))
		for i := range items {
			ids[i] = items[i].ID
		}
		db.recent.remove(ids)
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

// Complete records outcomes for items leased to owner; outcomes for items
// whose lease passed to another owner are ignored. Delivered items that
// share a trace id are written together: a run of consecutive ids with one
// ranged statement, the rest with IN lists.
//
// The outcomes are written by the writer goroutine, between two of
// ingest's group commits, in one transaction. The store has one write
// connection: when Complete took it for itself it queued behind the group
// being committed, and under full ingest load each of its transactions
// waited a whole group (about 100 ms), so delivery fell to 1.7k events/s
// while ingest acknowledged 20k. Outcomes need no fsync of their own: one
// lost with a crash only means that item is sent again with its event_id.
func (db *DB) Complete(ctx context.Context, owner string, outs []store.Outcome, now time.Time) error {
	c := &completeReq{ctx: ctx, owner: owner, outs: outs, now: now, done: make(chan struct{})}
	select {
	case db.completes <- c:
	case <-db.stop:
		return fmt.Errorf("complete: %w: store closed", store.ErrUnavailable)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-c.done:
	case <-db.done:
		select {
		case <-c.done:
		default:
			return fmt.Errorf("complete: %w: store closed", store.ErrUnavailable)
		}
	}
	return c.err
}

// completeReq is a Complete call handed to the writer.
type completeReq struct {
	ctx   context.Context
	owner string
	outs  []store.Outcome
	now   time.Time
	err   error
	done  chan struct{}
}

// complete runs a Complete call on the writer goroutine.
//
// db.leases.mu is held to read the call's leases and, after the commit, to
// forget them, but not across the writes: a claim holds it through its read
// of a thousand rows, which would stall the writer (and ingest) meanwhile.
// A claim never sends a completed item again: a claim that read before the
// commit still finds the item's lease (forgetting waits for the claim to
// let go of the lock), one that reads after it finds the item done.
func (db *DB) complete(c *completeReq) {
	defer close(c.done)
	db.leases.mu.Lock()
	st, err := db.completeStmts(c.ctx)
	held := make(map[int64]lease, len(c.outs))
	for _, o := range c.outs {
		if l, ok := db.leases.m[o.ID]; ok && l.owner == c.owner {
			held[o.ID] = l
		}
	}
	db.leases.mu.Unlock()
	if err != nil {
		c.err = fmt.Errorf("complete: %w", err)
		return
	}
	if c.err = db.completeSome(c.ctx, st, held, c.outs, c.now); c.err != nil {
		return
	}
	db.leases.mu.Lock()
	for id, l := range held {
		// Unless the lease ran out and was claimed anew meanwhile.
		if db.leases.m[id] == l {
			delete(db.leases.m, id)
		}
	}
	db.leases.mu.Unlock()
}

// completeSome records outs of the items in held (their leases, which this
// call holds) in one transaction.
func (db *DB) completeSome(ctx context.Context, st *completeStmts, held map[int64]lease, outs []store.Outcome, now time.Time) error {
	tx, done, err := db.relaxedTx(ctx)
	if err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	defer done()
	type group struct {
		trace    string
		attempts int
	}
	delivered := map[group][]int64{}
	var retry, dead *sql.Stmt
	for _, o := range outs {
		l, ok := held[o.ID]
		if !ok {
			continue
		}
		var err error
		switch o.Kind {
		case store.OutcomeDelivered:
			g := group{o.TraceID, l.attempts}
			delivered[g] = append(delivered[g], o.ID)
		case store.OutcomeRetry:
			if retry == nil {
				retry = tx.StmtContext(ctx, st.retry)
			}
			_, err = retry.ExecContext(ctx, ms(o.RetryAt), o.Reason, o.TraceID, l.attempts, o.ID)
		case store.OutcomeDead:
			if dead == nil {
				dead = tx.StmtContext(ctx, st.dead)
			}
			_, err = dead.ExecContext(ctx, o.Reason, o.TraceID, ms(now), l.attempts, o.ID)
		case store.OutcomeRelease:
			// Given back untouched: the item is due as it was.
		default:
			err = fmt.Errorf("unknown outcome kind %d", o.Kind)
		}
		if err != nil {
			return fmt.Errorf("complete item %d: %w", o.ID, mapErr(err))
		}
	}
	var ranged *sql.Stmt
	for g, ids := range delivered {
		// Every id of a run is in the group, so leased to owner: the
		// range names exactly the run's items.
		long, rest := splitRuns(ids)
		for _, r := range long {
			if ranged == nil {
				ranged = tx.StmtContext(ctx, st.deliveredRange)
			}
			if _, err := ranged.ExecContext(ctx, g.trace, ms(now), g.attempts, r.lo, r.hi); err != nil {
				return fmt.Errorf("complete delivered: %w", mapErr(err))
			}
		}
		for len(rest) > 0 {
			n := min(len(rest), 900)
			args := []any{g.trace, ms(now), g.attempts}
			for _, id := range rest[:n] {
				args = append(args, id)
			}
			rest = rest[n:]
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
