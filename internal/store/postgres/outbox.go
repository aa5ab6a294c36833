package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/capirelay/capirelay/internal/store"
)

// Additional data for sealed values: the same as the SQLite store.
type enqueueReq struct {
	ctx  context.Context
	evs  []store.NewEvent
	res  []store.EnqueueResult
	err  error
	done chan struct{}
}

// maxGroup bounds the events one group-commit statement takes (arrays of
// this size are a few MB).
const maxGroup = 20000

// groupTimeout bounds one group commit, so a stalled database turns into
// errors for the callers instead of a wait without end.
const groupTimeout = 30 * time.Second

// SealPayload seals an outbox payload as Enqueue stores it.
func (db *DB) SealPayload(plaintext []byte) []byte {
	return db.box.Seal(plaintext, []byte(store.PayloadAD))
}

// Enqueue dedups and stores evs and returns once the statement holding
// them has committed. Concurrent callers share statements. It returns
// store.ErrUnavailable when the database cannot be reached or the store
// is closed. Text fields must be valid UTF-8 without NUL bytes
// (PostgreSQL refuses them), else the call fails alone.
func (db *DB) Enqueue(ctx context.Context, evs []store.NewEvent) ([]store.EnqueueResult, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	sealed := make([]store.NewEvent, len(evs))
	for i, ev := range evs {
		for _, f := range []string{ev.SiteKey, ev.EventName, ev.EventID, ev.Source, ev.VisitorID, ev.TestEventCode, ev.Params} {
			if !validText(f) {
				return nil, fmt.Errorf("enqueue: event %d: text field %q is not valid UTF-8 or holds a NUL byte", i, f)
			}
		}
		if !ev.Sealed {
			ev.Payload = db.SealPayload(ev.Payload)
		}
		sealed[i] = ev
	}
	r := &enqueueReq{ctx: ctx, evs: sealed, done: make(chan struct{})}
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return nil, fmt.Errorf("enqueue: %w: store closed", store.ErrUnavailable)
	}
	select {
	case db.reqs <- r:
		db.mu.RUnlock()
	case <-ctx.Done():
		db.mu.RUnlock()
		return nil, ctx.Err()
	}
	<-r.done // never abandon: the result says whether it was stored
	return r.res, r.err
}

func validText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// cleanText makes s storable in a text column.
func cleanText(s string) string {
	if validText(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// writer commits groups of queued requests until reqs is closed and empty.
func (db *DB) writer() {
	for r := range db.reqs {
		batch := []*enqueueReq{r}
		n := len(r.evs)
	gather:
		for n < maxGroup {
			select {
			case r, ok := <-db.reqs:
				if !ok {
					break gather
				}
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
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		if err = db.insertGroup(ctx, live); err == nil || attempt == 4 || !retryable(err) {
			break
		}
	}
	for _, r := range live {
		if err != nil {
			r.res, r.err = nil, fmt.Errorf("enqueue: %w", mapErr(err))
		}
		close(r.done)
	}
}

type dedupKey struct{ site, name, id string }

// insertGroupSQL dedups and inserts a group in one statement, so one round
// trip and one commit serve every caller in the group:
//
//   - fresh upserts the dedup keys. A key is fresh when it is new or its
//     last sighting is older than the window (the WHERE on DO UPDATE);
//     otherwise no row comes back. Another node inserting the same key
//     concurrently makes this statement wait for its commit and then see
//     the conflict, so exactly one of them accepts. Keys go in sorted
//     order so that concurrent groups lock them in the same order and
//     cannot deadlock.
//   - the outbox insert takes the events whose key came back, in arrival
//     order, so ids follow the order of the calls.
//   - their payloads go to outbox_payload under the same ids (a key is
//     in the input once: the group's repeats were left out).
const insertGroupSQL = `
WITH input AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bytea[], $6::text[], $7::text[], $8::text[],
		$11::text[], $12::text[], $13::text[])
		WITH ORDINALITY AS u(site_key, event_name, event_id, event_time, payload, state, source, visitor_id, enriched, test_event_code, params, ord)
), fresh AS (
	INSERT INTO seen (site_key, event_name, event_id, seen_at)
	SELECT site_key, event_name, event_id, $9 FROM input ORDER BY site_key, event_name, event_id
	ON CONFLICT (site_key, event_name, event_id) DO UPDATE SET seen_at = excluded.seen_at WHERE seen.seen_at < $10
	RETURNING site_key, event_name, event_id
), added AS (
	INSERT INTO outbox (site_key, event_name, event_id, event_time, state, next_attempt, source, visitor_id,
		test_event_code, params, created_at, enriched)
	SELECT i.site_key, i.event_name, i.event_id, i.event_time, i.state, $9, i.source, i.visitor_id,
		i.test_event_code, i.params, $9, i.enriched
	FROM input i JOIN fresh f USING (site_key, event_name, event_id)
	ORDER BY i.ord
	RETURNING id, site_key, event_name, event_id
), payloads AS (
	INSERT INTO outbox_payload (id, payload)
	SELECT a.id, i.payload FROM added a JOIN input i USING (site_key, event_name, event_id)
)
SELECT id, site_key, event_name, event_id FROM added`

func (db *DB) insertGroup(ctx context.Context, batch []*enqueueReq) error {
	var (
		sites, names, ids, states, sources, visitors, enriched []string
		codes, params                                          []string
		times                                                  []time.Time
		payloads                                               [][]byte
		first                                                  = map[dedupKey]bool{}
	)
	for _, r := range batch {
		r.res = make([]store.EnqueueResult, len(r.evs))
		for i, ev := range r.evs {
			r.res[i] = store.EnqueueResult{Status: store.Duplicate}
			k := dedupKey{ev.SiteKey, ev.EventName, ev.EventID}
			if first[k] {
				continue // a repeat inside the group: the first one decides
			}
			first[k] = true
			state := store.StatePending
			if ev.Held {
				state = store.StateHeld
			}
			sites, names, ids = append(sites, ev.SiteKey), append(names, ev.EventName), append(ids, ev.EventID)
			times, payloads, states = append(times, ev.EventTime), append(payloads, ev.Payload), append(states, state)
			sources, visitors = append(sources, ev.Source), append(visitors, ev.VisitorID)
			enriched = append(enriched, store.JoinKeys(ev.Enriched))
			codes, params = append(codes, ev.TestEventCode), append(params, ev.Params)
		}
	}
	now := db.now()
	rows, err := db.pool.Query(ctx, insertGroupSQL, sites, names, ids, times, payloads, states, sources, visitors,
		now, now.Add(-store.DedupWindow), enriched, codes, params)
	if err != nil {
		return err
	}
	accepted := make(map[dedupKey]int64, len(sites))
	var id int64
	var k dedupKey
	_, err = pgx.ForEachRow(rows, []any{&id, &k.site, &k.name, &k.id}, func() error {
		accepted[k] = id
		return nil
	})
	if err != nil {
		return err
	}
	clear(first)
	for _, r := range batch {
		for i, ev := range r.evs {
			k := dedupKey{ev.SiteKey, ev.EventName, ev.EventID}
			if id, ok := accepted[k]; ok && !first[k] {
				first[k] = true
				r.res[i] = store.EnqueueResult{Status: store.Accepted, ID: id}
			}
		}
	}
	return nil
}

// payloadOf is the sealed payload of the outbox row prefixed with p (an
// alias and its dot: unqualified, id would name outbox_payload's): in
// outbox_payload, or for a row written before migration 11 (or during a
// rolling upgrade, by a node of the version before) in the row itself.
func payloadOf(p string) string {
	return "coalesce((SELECT payload FROM outbox_payload WHERE outbox_payload.id = " + p + "id), " + p + "payload)"
}

// itemCols lists the columns scanItem reads of the outbox row "o"; the
// payload comes from outbox_payload (see payloadOf).
func itemCols() string {
	cols := []string{"id", "site_key", "event_name", "event_id", "event_time", "payload", "state", "attempts",
		"next_attempt", "last_error", "trace_id", "source", "visitor_id", "test_event_code", "params", "created_at", "delivered_at", "enriched"}
	for i, c := range cols {
		if c == "payload" {
			cols[i] = payloadOf("o.")
			continue
		}
		cols[i] = "o." + c
	}
	return strings.Join(cols, ", ")
}

func (db *DB) scanItem(row pgx.Row) (store.Item, error) {
	var it store.Item
	var payload []byte
	var delivered *time.Time
	var enriched string
	if err := row.Scan(&it.ID, &it.SiteKey, &it.EventName, &it.EventID, &it.EventTime, &payload, &it.State,
		&it.Attempts, &it.NextAttempt, &it.LastError, &it.TraceID, &it.Source, &it.VisitorID, &it.TestEventCode, &it.Params, &it.CreatedAt,
		&delivered, &enriched); err != nil {
		return it, mapErr(err)
	}
	it.Enriched = store.SplitKeys(enriched)
	pt, err := db.box.Open(payload, []byte(store.PayloadAD))
	if err != nil {
		return it, fmt.Errorf("outbox item %d: %w", it.ID, err)
	}
	it.Payload = pt
	it.DeliveredAt = fromNull(delivered)
	return it, nil
}

func (db *DB) scanItems(rows pgx.Rows) ([]store.Item, error) {
	defer rows.Close()
	var out []store.Item
	for rows.Next() {
		it, err := db.scanItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, mapErr(rows.Err())
}

// claimSQL leases due items of one site, oldest next attempt first:
// pending ones (outbox_pending) and those whose lease ran out
// (outbox_leased). SKIP LOCKED passes over rows another node is claiming
// right now; a row claimed and committed by another node after this
// statement's snapshot is re-checked against its WHERE clause when
// locked, and no longer matches (it is in flight, its lease in the
// future), so no item is handed out twice.
const claimSQL = `
WITH due AS (
	SELECT id, next_attempt FROM outbox
	WHERE site_key = $1 AND state = 'pending' AND next_attempt <= $2
	ORDER BY next_attempt, id
	LIMIT $3
	FOR UPDATE SKIP LOCKED
), expired AS (
	SELECT id, next_attempt FROM outbox
	WHERE site_key = $1 AND state = 'inflight' AND next_attempt <= $2
	ORDER BY next_attempt, id
	LIMIT $3
	FOR UPDATE SKIP LOCKED
), c AS (
	SELECT id FROM (SELECT * FROM due UNION ALL SELECT * FROM expired) d ORDER BY next_attempt, id LIMIT $3
)
UPDATE outbox o SET state = 'inflight', lease_owner = $4, next_attempt = $5, attempts = o.attempts + 1
FROM c WHERE o.id = c.id
RETURNING `

// Claim leases up to limit due items of a site to owner until now+lease,
// oldest first. Items whose lease ran out are due again.
func (db *DB) Claim(ctx context.Context, siteKey, owner string, limit int, now time.Time, lease time.Duration) ([]store.Item, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.pool.Query(ctx, claimSQL+itemCols(), siteKey, now, limit, owner, now.Add(lease))
	if err != nil {
		return nil, fmt.Errorf("claim for site %s: %w", siteKey, mapErr(err))
	}
	items, err := db.scanItems(rows)
	if err != nil {
		return nil, fmt.Errorf("claim for site %s: %w", siteKey, err)
	}
	// RETURNING has no order.
	slices.SortFunc(items, func(a, b store.Item) int { return cmpInt(a.ID, b.ID) })
	return items, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// The outcome statements find their rows by id in outbox_pkey, each for
// the outcomes of one kind that share a Graph trace (and, for retries, a
// reason), as a batch's mostly do; see outcomeGroup. Joined to an unnest of
// per-row values, a prepared statement's generic plan counted 10 rows of
// it and compared each of 1,000 rows with each of 1,000 values (235–347 ms
// a batch, seen with auto_explain). They do not name the state: a lease
// owner is set only by a claim and cleared by every way out of flight, so
// the owner alone says the row is still leased to owner; named, it let
// the planner take outbox_leased, whose entries of rows no longer in
// flight stay until a vacuum (a batch of 1,000 read 31,000 of them).
const (
	deliveredSQL = `UPDATE outbox SET state = 'delivered', trace_id = $2, delivered_at = $3, last_error = '', lease_owner = ''
	WHERE id = ANY($1) AND lease_owner = $4`
	retrySQL = `UPDATE outbox SET state = 'pending', next_attempt = ($2::timestamptz[])[array_position($1::bigint[], id)],
		last_error = $3, trace_id = $4, lease_owner = ''
	WHERE id = ANY($1) AND lease_owner = $5`
	deadSQL = `UPDATE outbox SET state = 'dead', last_error = ($2::text[])[array_position($1::bigint[], id)], trace_id = $3,
		lease_owner = '', delivered_at = $4
	WHERE id = ANY($1) AND lease_owner = $5`
	releaseSQL = `UPDATE outbox SET state = 'pending', next_attempt = $2, attempts = greatest(attempts - 1, 0), lease_owner = ''
	WHERE id = ANY($1) AND lease_owner = $3`
)

// outcomeGroup is the ids of outcomes of one kind that share their values
// and, for retries, each one's time (the dispatcher's backoff has jitter)
// and, for dead letters, each one's reason (an event isolated from its
// batch has its own); array_position finds them, a scan of the group's
// ids in C.
type outcomeGroup struct {
	kind          store.OutcomeKind
	trace, reason string
	ids           []int64
	at            []time.Time
	reasons       []string
}

// groupOutcomes groups outs by kind and values, in the order each group
// first appears.
func groupOutcomes(outs []store.Outcome) ([]*outcomeGroup, error) {
	type key struct {
		kind          store.OutcomeKind
		trace, reason string
	}
	var groups []*outcomeGroup
	index := map[key]*outcomeGroup{}
	for _, o := range outs {
		g := outcomeGroup{kind: o.Kind}
		switch o.Kind {
		case store.OutcomeDelivered:
			g.trace = cleanText(o.TraceID)
		case store.OutcomeRetry:
			g.trace, g.reason = cleanText(o.TraceID), cleanText(o.Reason)
		case store.OutcomeDead:
			g.trace = cleanText(o.TraceID)
		case store.OutcomeRelease:
		default:
			return nil, fmt.Errorf("complete item %d: unknown outcome kind %d", o.ID, o.Kind)
		}
		k := key{g.kind, g.trace, g.reason}
		found := index[k]
		if found == nil {
			found = &g
			index[k] = found
			groups = append(groups, found)
		}
		found.ids = append(found.ids, o.ID)
		switch o.Kind {
		case store.OutcomeRetry:
			found.at = append(found.at, o.RetryAt)
		case store.OutcomeDead:
			found.reasons = append(found.reasons, cleanText(o.Reason))
		}
	}
	return groups, nil
}

// Complete records outcomes for items leased to owner, one statement per
// kind of outcome and its values, all in one transaction. Outcomes for
// items that owner no longer holds (lease lost, already completed) change
// nothing.
func (db *DB) Complete(ctx context.Context, owner string, outs []store.Outcome, now time.Time) error {
	groups, err := groupOutcomes(outs)
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	for _, g := range groups {
		switch g.kind {
		case store.OutcomeDelivered:
			b.Queue(deliveredSQL, g.ids, g.trace, now, owner)
		case store.OutcomeRetry:
			b.Queue(retrySQL, g.ids, g.at, g.reason, g.trace, owner)
		case store.OutcomeDead:
			b.Queue(deadSQL, g.ids, g.reasons, g.trace, now, owner)
		case store.OutcomeRelease:
			b.Queue(releaseSQL, g.ids, now, owner)
		}
	}
	switch b.Len() {
	case 0:
		return nil
	case 1: // one statement is its own transaction
		err = db.pool.SendBatch(ctx, b).Close()
		if retryable(err) {
			err = db.transact(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
		}
	default:
		err = db.transact(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	}
	if err != nil {
		return fmt.Errorf("complete %d outcomes: %w", len(outs), mapErr(err))
	}
	return nil
}

// dueSitesSQL gives each site with queued items its earliest next
// attempt. It reads the first entry of each site in outbox_pending and in
// outbox_leased, a descent of the index each, where a GROUP BY read every
// queued row: with a backlog of 200,000 events that took 380 ms, and the
// dispatcher asks often.
const dueSitesSQL = `
WITH RECURSIVE pending AS (
	(SELECT site_key, next_attempt FROM outbox WHERE state = 'pending' ORDER BY site_key, next_attempt LIMIT 1)
	UNION ALL
	SELECT n.site_key, n.next_attempt FROM pending s, LATERAL (
		SELECT site_key, next_attempt FROM outbox WHERE state = 'pending' AND site_key > s.site_key
		ORDER BY site_key, next_attempt LIMIT 1) n
), leased AS (
	(SELECT site_key, next_attempt FROM outbox WHERE state = 'inflight' ORDER BY site_key, next_attempt LIMIT 1)
	UNION ALL
	SELECT n.site_key, n.next_attempt FROM leased s, LATERAL (
		SELECT site_key, next_attempt FROM outbox WHERE state = 'inflight' AND site_key > s.site_key
		ORDER BY site_key, next_attempt LIMIT 1) n
)
SELECT site_key, min(next_attempt) FROM (SELECT * FROM pending UNION ALL SELECT * FROM leased) q GROUP BY site_key`

// DueSites lists sites with items due at now and, among the others, the
// earliest next attempt (zero if none).
func (db *DB) DueSites(ctx context.Context, now time.Time) ([]string, time.Time, error) {
	rows, err := db.pool.Query(ctx, dueSitesSQL)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("due sites: %w", mapErr(err))
	}
	var due []string
	var next time.Time
	var key string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&key, &at}, func() error {
		if !at.After(now) {
			due = append(due, key)
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("due sites: %w", mapErr(err))
	}
	return due, next, nil
}

// Release gives back every claim of owner (shutdown), not counting them
// as attempts.
func (db *DB) Release(ctx context.Context, owner string) error {
	_, err := db.pool.Exec(ctx, `UPDATE outbox SET state = 'pending', next_attempt = $1, attempts = greatest(attempts - 1, 0),
		lease_owner = '' WHERE state = 'inflight' AND lease_owner = $2`, db.now(), owner)
	if err != nil {
		return fmt.Errorf("release claims: %w", mapErr(err))
	}
	return nil
}

// ReleaseHeld makes the held events of a visitor pending (granted) or
// deletes them (denied), and returns how many; a grant's fill rewrites
// their payloads in the same transaction.
func (db *DB) ReleaseHeld(ctx context.Context, siteKey, visitorID string, granted bool, fill store.HeldFill) (int, error) {
	q := `DELETE FROM outbox WHERE state = 'held' AND site_key = $1 AND visitor_id = $2`
	args := []any{siteKey, visitorID}
	if granted {
		q = `UPDATE outbox SET state = 'pending', next_attempt = $3 WHERE state = 'held' AND site_key = $1 AND visitor_id = $2`
		args = append(args, db.now())
	}
	var n int
	err := db.transact(ctx, func(tx pgx.Tx) error {
		if granted && fill != nil {
			if err := db.fillHeld(ctx, tx, siteKey, visitorID, fill); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, q, args...)
		n = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("release held events: %w", mapErr(err))
	}
	return n, nil
}

// fillHeld rewrites the sealed payloads of a visitor's held events with
// fill.
func (db *DB) fillHeld(ctx context.Context, tx pgx.Tx, siteKey, visitorID string, fill store.HeldFill) error {
	rows, err := tx.Query(ctx, `SELECT o.id, `+payloadOf("o.")+` FROM outbox o
		WHERE o.state = 'held' AND o.site_key = $1 AND o.visitor_id = $2 FOR UPDATE`, siteKey, visitorID)
	if err != nil {
		return err
	}
	ups, err := store.RefillPayloads(db.box, rows, fill)
	rows.Close()
	if err != nil {
		return err
	}
	for _, u := range ups {
		// A payload still in its row moves to outbox_payload.
		if _, err := tx.Exec(ctx, `INSERT INTO outbox_payload (id, payload) VALUES ($2, $1)
			ON CONFLICT (id) DO UPDATE SET payload = excluded.payload`, u.Payload, u.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE outbox SET payload = NULL WHERE id = $1 AND payload IS NOT NULL`, u.ID); err != nil {
			return err
		}
	}
	return nil
}

// Replay makes a dead item pending again; store.ErrNotFound if id is not
// a dead item.
func (db *DB) Replay(ctx context.Context, id int64, now time.Time) error {
	return db.exec1(ctx, "replay", `UPDATE outbox SET state = 'pending', next_attempt = $1, last_error = '', delivered_at = NULL
		WHERE id = $2 AND state = 'dead'`, now, id)
}

// Item returns one outbox item, or store.ErrNotFound.
func (db *DB) Item(ctx context.Context, id int64) (*store.Item, error) {
	it, err := db.scanItem(db.pool.QueryRow(ctx, `SELECT `+itemCols()+` FROM outbox o WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("item %d: %w", id, err)
	}
	return &it, nil
}

// Items lists the newest items, optionally of one site and state.
func (db *DB) Items(ctx context.Context, siteKey, state string, limit int) ([]store.Item, error) {
	q := `SELECT ` + itemCols() + ` FROM outbox o WHERE true`
	var args []any
	if siteKey != "" {
		args = append(args, siteKey)
		q += fmt.Sprintf(` AND site_key = $%d`, len(args))
	}
	if state != "" {
		args = append(args, state)
		q += fmt.Sprintf(` AND state = $%d`, len(args))
	}
	args = append(args, max(limit, 0))
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("items: %w", mapErr(err))
	}
	items, err := db.scanItems(rows)
	if err != nil {
		return nil, fmt.Errorf("items: %w", err)
	}
	return items, nil
}

// depthSQL counts each state apart, so that each count reads its own
// index (outbox_pending, outbox_leased): neither serves state IN (…), and
// the outbox, delivered history included, would be read whole.
const depthSQL = `SELECT site_key, sum(n)::bigint FROM (
	SELECT site_key, count(*) AS n FROM outbox WHERE state = 'pending' GROUP BY site_key
	UNION ALL
	SELECT site_key, count(*) FROM outbox WHERE state = 'inflight' GROUP BY site_key
) q GROUP BY site_key`

// Depth counts pending and in-flight items per site.
func (db *DB) Depth(ctx context.Context) (map[string]int, error) {
	rows, err := db.pool.Query(ctx, depthSQL)
	if err != nil {
		return nil, fmt.Errorf("queue depth: %w", mapErr(err))
	}
	out := map[string]int{}
	var k string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&k, &n}, func() error { out[k] = n; return nil }); err != nil {
		return nil, fmt.Errorf("queue depth: %w", mapErr(err))
	}
	return out, nil
}

// pruneChunk bounds the rows one pruning statement deletes, so retention
// on a large table runs as many short transactions instead of one that
// holds locks and bloats the WAL.
const pruneChunk = 10000

// Prune deletes delivered items older than deliveredBefore and dedup keys
// older than seenBefore; it returns how many items it deleted.
func (db *DB) Prune(ctx context.Context, deliveredBefore, seenBefore time.Time) (int, error) {
	total := 0
	for {
		tag, err := db.pool.Exec(ctx, `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
			WHERE state = 'delivered' AND delivered_at < $1 LIMIT $2)`, deliveredBefore, pruneChunk)
		if err != nil {
			return total, fmt.Errorf("prune outbox: %w", mapErr(err))
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < pruneChunk {
			break
		}
	}
	for {
		tag, err := db.pool.Exec(ctx, `DELETE FROM seen WHERE ctid = ANY(ARRAY(SELECT ctid FROM seen
			WHERE seen_at < $1 LIMIT $2))`, seenBefore, pruneChunk)
		if err != nil {
			return total, fmt.Errorf("prune dedup keys: %w", mapErr(err))
		}
		if tag.RowsAffected() < pruneChunk {
			break
		}
	}
	return total, nil
}

// RecordSandbox keeps a payload the sandbox destination received, sealed.
func (db *DB) RecordSandbox(ctx context.Context, siteKey string, at time.Time, payload []byte) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO sandbox (site_key, at, payload) VALUES ($1, $2, $3)`, siteKey, at,
		db.box.Seal(payload, []byte(store.SandboxAD)))
	if err != nil {
		return fmt.Errorf("record sandbox payload: %w", mapErr(err))
	}
	return nil
}

// SandboxRecords lists sandbox payloads of a site after afterID, oldest
// first.
func (db *DB) SandboxRecords(ctx context.Context, siteKey string, afterID int64, limit int) ([]store.SandboxRecord, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, site_key, at, payload FROM sandbox WHERE site_key = $1 AND id > $2
		ORDER BY id LIMIT $3`, siteKey, afterID, max(limit, 0))
	if err != nil {
		return nil, fmt.Errorf("sandbox records: %w", mapErr(err))
	}
	var out []store.SandboxRecord
	var r store.SandboxRecord
	var sealed []byte
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.SiteKey, &r.At, &sealed}, func() error {
		pt, err := db.box.Open(sealed, []byte(store.SandboxAD))
		if err != nil {
			return fmt.Errorf("sandbox record %d: %w", r.ID, err)
		}
		rec := r
		rec.Payload = pt
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox records: %w", mapErr(err))
	}
	return out, nil
}
