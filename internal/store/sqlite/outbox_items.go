package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

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
