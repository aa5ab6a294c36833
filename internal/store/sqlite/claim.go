package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
)

// The dispatch path (a claim of up to 1000 items and its outcomes) runs
// prepared statements with few columns and few arguments: reading a row
// through database/sql and the driver costs per column, parsing an IN list
// of 900 placeholders cost more than the update it ran, and binding costs
// per argument.

// claimCols selects a claimed item: the outbox row and its payload. The
// site key is the claim's, and the state and next attempt are the lease's,
// so they are not read.
const claimCols = `SELECT o.id, o.event_name, o.event_id, o.event_time, o.attempts, o.last_error, o.trace_id,
	o.source, o.visitor_id, o.test_event_code, o.params, o.created_at, o.delivered_at, p.payload
	FROM outbox o JOIN outbox_payload p ON p.id = o.id`

// claimDueQuery reads the due items of a site when none of them is leased.
const claimDueQuery = claimCols + ` WHERE o.state IN ('pending','inflight') AND o.site_key=? AND o.next_attempt<=?
	ORDER BY o.next_attempt LIMIT ?`

// claimRangeQuery reads the items of a run of consecutive ids.
const claimRangeQuery = claimCols + ` WHERE o.id BETWEEN ? AND ? ORDER BY o.id`

// dueIDsQuery lists the due ids of a site.
const dueIDsQuery = `SELECT id FROM outbox WHERE state IN ('pending','inflight') AND site_key=? AND next_attempt<=?
	ORDER BY next_attempt LIMIT ?`

// minRun is the shortest run of consecutive ids read or written with one
// BETWEEN statement; shorter runs go into an IN list. A run costs a
// statement execution, an id in a list costs a bound argument.
const minRun = 8

// scanClaimed appends the items of rows (of claimCols) of site to items and
// closes rows. Payloads are opened on another goroutine while rows are
// read: opening (AES-GCM) is about a quarter of a claim's work and needs no
// connection, so a second CPU takes it off the dispatch path.
func (db *DB) scanClaimed(rows *sql.Rows, site string, items []store.Item) ([]store.Item, error) {
	defer rows.Close()
	// The driver reads each blob into a new slice of its own, and a
	// RawBytes destination is given that slice (database/sql's
	// convertAssign): the sealed payloads are the rows' own, which nothing
	// else holds, and are opened in place. (A copy of each was 9 % of the
	// bytes the relay allocates at full load.) TestRawBlobsAreTheRowsOwn
	// checks the driver still does so.
	op := db.newOpener(true)
	defer op.stop()
	base := len(items)
	var et, created, delivered int64
	var sealed sql.RawBytes
	var chunk [][]byte
	for rows.Next() {
		// Scanned in place: a store.Item of its own would escape to the
		// heap through Scan, one per row.
		items = append(items, store.Item{SiteKey: site})
		it := &items[len(items)-1]
		if err := rows.Scan(&it.ID, &it.EventName, &it.EventID, &et, &it.Attempts, &it.LastError, &it.TraceID,
			&it.Source, &it.VisitorID, &it.TestEventCode, &it.Params, &created, &delivered, &sealed); err != nil {
			return nil, mapErr(err)
		}
		it.EventTime, it.CreatedAt, it.DeliveredAt = fromMS(et), fromMS(created), fromMS(delivered)
		if chunk == nil {
			chunk = make([][]byte, 0, openChunk)
		}
		chunk = append(chunk, sealed)
		if len(chunk) == openChunk {
			op.open(chunk)
			chunk = nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	op.open(chunk)
	if err := op.wait(items[base:]); err != nil {
		return nil, err
	}
	return items, nil
}

// openPayloads opens the sealed payloads of items in place, on the opener
// so that a second CPU shares the work.
func (db *DB) openPayloads(items []store.Item) error {
	if len(items) == 0 {
		return nil
	}
	// The payloads come from recent's entries, which the request that
	// enqueued them shared: each opens into new memory.
	op := db.newOpener(false)
	defer op.stop()
	half := len(items) / 2
	chunk := make([][]byte, half)
	for i := range chunk {
		chunk[i] = items[i].Payload
	}
	op.open(chunk)
	ad := []byte(store.PayloadAD)
	for i := half; i < len(items); i++ {
		pt, err := db.box.Open(items[i].Payload, ad)
		if err != nil {
			return fmt.Errorf("outbox item %d: %w", items[i].ID, err)
		}
		items[i].Payload = pt
	}
	return op.wait(items)
}

// openChunk is how many payloads are handed to the opener at a time.
const openChunk = 64

// opener opens sealed payloads in order on its own goroutine.
type opener struct {
	box *secret.Box
	in  chan [][]byte
	out chan openResult
}

type openResult struct {
	plain [][]byte
	err   error // opening payload len(plain) failed
}

// newOpener starts an opener. With inPlace, the payloads handed to it are
// the caller's own copies, which it decrypts where they are
// (secret.Box.OpenInPlace) instead of allocating each plaintext.
func (db *DB) newOpener(inPlace bool) *opener {
	op := &opener{box: db.box, in: make(chan [][]byte, 4), out: make(chan openResult, 1)}
	open := op.box.Open
	if inPlace {
		open = op.box.OpenInPlace
	}
	go func(in <-chan [][]byte) {
		var res openResult
		ad := []byte(store.PayloadAD)
		for chunk := range in {
			for _, sealed := range chunk {
				if res.err != nil {
					break
				}
				pt, err := open(sealed, ad)
				if err != nil {
					res.err = err
					break
				}
				res.plain = append(res.plain, pt)
			}
		}
		op.out <- res
	}(op.in)
	return op
}

func (op *opener) open(chunk [][]byte) {
	if len(chunk) > 0 && op.in != nil {
		op.in <- chunk
	}
}

// wait puts the opened payloads into items, the i-th handed over into
// items[i], or names the item of the first that failed.
func (op *opener) wait(items []store.Item) error {
	close(op.in)
	op.in = nil
	res := <-op.out
	if res.err != nil {
		return fmt.Errorf("outbox item %d: %w", items[len(res.plain)].ID, res.err)
	}
	for i, pt := range res.plain {
		items[i].Payload = pt
	}
	return nil
}

// stop ends the goroutine if wait was not reached.
func (op *opener) stop() {
	if op.in != nil {
		close(op.in)
		op.in = nil
		<-op.out
	}
}

// dueItems reads the due items of a site, when none of them is leased.
func (db *DB) dueItems(ctx context.Context, siteKey string, nowMS int64, limit int) ([]store.Item, error) {
	rows, err := db.readRows(ctx, claimDueQuery, siteKey, nowMS, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	items, err := db.scanClaimed(rows, siteKey, make([]store.Item, 0, limit))
	if err != nil {
		return nil, err
	}
	sortItems(items)
	return items, nil
}

// dueIDs lists up to limit due ids of a site that are not leased. Leased
// items are still pending in the file: it asks for enough to skip them.
func (db *DB) dueIDs(ctx context.Context, tx *sql.Tx, siteKey string, nowMS int64, limit int) ([]int64, error) {
	st, err := db.stmts.prepared(ctx, dueIDsQuery)
	if err != nil {
		return nil, err
	}
	rows, err := tx.StmtContext(ctx, st).QueryContext(ctx, siteKey, nowMS, limit+len(db.leases.m))
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

// itemsByID reads the items of site with the given ids (ascending), payload
// opened, in id order; ids that are gone (forgotten meanwhile) are left
// out. A run of consecutive ids is one range read; the scattered rest is
// read with IN lists.
func (db *DB) itemsByID(ctx context.Context, tx *sql.Tx, site string, ids []int64) ([]store.Item, error) {
	items := make([]store.Item, 0, len(ids))
	long, scattered := splitRuns(ids)
	for _, r := range long {
		st, err := db.stmts.prepared(ctx, claimRangeQuery)
		if err != nil {
			return nil, err
		}
		rows, err := tx.StmtContext(ctx, st).QueryContext(ctx, r.lo, r.hi)
		if err != nil {
			return nil, mapErr(err)
		}
		if items, err = db.scanClaimed(rows, site, items); err != nil {
			return nil, err
		}
	}
	args := make([]any, 0, min(len(scattered), 900))
	for lo := 0; lo < len(scattered); lo += 900 {
		part := scattered[lo:min(lo+900, len(scattered))]
		args = args[:0]
		for _, id := range part {
			args = append(args, id)
		}
		rows, err := tx.QueryContext(ctx, claimCols+` WHERE o.id IN (`+placeholders(len(part))+`)`, args...)
		if err != nil {
			return nil, mapErr(err)
		}
		if items, err = db.scanClaimed(rows, site, items); err != nil {
			return nil, err
		}
	}
	sortItems(items)
	return items, nil
}

// splitRuns sorts ids and splits them into the runs of at least minRun
// consecutive ids, each read or written with one BETWEEN, and the rest.
func splitRuns(ids []int64) (long []idRun, rest []int64) {
	slices.Sort(ids)
	for _, r := range runs(ids) {
		if r.hi-r.lo+1 >= minRun {
			long = append(long, r)
			continue
		}
		for id := r.lo; id <= r.hi; id++ {
			rest = append(rest, id)
		}
	}
	return long, rest
}

// idRun is the ids lo..hi, all included.
type idRun struct{ lo, hi int64 }

// runs splits ascending ids into runs of consecutive ids.
func runs(ids []int64) []idRun {
	var out []idRun
	for i := 0; i < len(ids); {
		j := i + 1
		for j < len(ids) && ids[j] == ids[j-1]+1 {
			j++
		}
		out = append(out, idRun{ids[i], ids[j-1]})
		i = j
	}
	return out
}

// completeStmts are Complete's prepared statements on the write connection.
type completeStmts struct {
	deliveredRange, retry, dead *sql.Stmt
}

// completeStmts prepares Complete's statements once; db.leases.mu is held.
// They are prepared before the write connection is pinned: preparing on
// the pool waits for that one connection.
func (db *DB) completeStmts(ctx context.Context) (*completeStmts, error) {
	if db.leases.stmts != nil {
		return db.leases.stmts, nil
	}
	st := &completeStmts{}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&st.deliveredRange, `UPDATE outbox SET state='delivered', trace_id=?, delivered_at=?, attempts=?, last_error='', lease_owner=''
			WHERE id BETWEEN ? AND ? AND state IN ('pending','inflight')`},
		{&st.retry, `UPDATE outbox SET state='pending', next_attempt=?, last_error=?, trace_id=?, attempts=?, lease_owner=''
			WHERE id=? AND state IN ('pending','inflight')`},
		{&st.dead, `UPDATE outbox SET state='dead', last_error=?, trace_id=?, delivered_at=?, attempts=?, lease_owner=''
			WHERE id=? AND state IN ('pending','inflight')`},
	} {
		s, err := db.w.PrepareContext(ctx, p.q)
		if err != nil {
			for _, s := range []*sql.Stmt{st.deliveredRange, st.retry, st.dead} {
				if s != nil {
					s.Close()
				}
			}
			return nil, mapErr(err)
		}
		*p.dst = s
	}
	db.leases.stmts = st
	return st, nil
}
