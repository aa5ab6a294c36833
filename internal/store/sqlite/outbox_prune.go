package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

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
