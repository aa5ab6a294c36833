package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

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
