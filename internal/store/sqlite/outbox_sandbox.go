package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

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
