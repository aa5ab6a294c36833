package sqlite

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

var _ store.Admin = (*DB)(nil)

const passwordSetting = "password_hash"

// AdminPasswordHash returns the stored admin password hash.
func (db *DB) AdminPasswordHash(ctx context.Context) (string, error) {
	var h string
	err := db.r.QueryRowContext(ctx, `SELECT value FROM admin_settings WHERE name=?`, passwordSetting).Scan(&h)
	if err != nil {
		return "", fmt.Errorf("admin password: %w", mapErr(err))
	}
	return h, nil
}

// SetAdminPasswordHash replaces the admin password hash and ends every
// session, so a changed password locks out whoever had the old one.
func (db *DB) SetAdminPasswordHash(ctx context.Context, hash string) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set admin password: %w", mapErr(err))
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO admin_settings (name, value) VALUES (?,?)
		ON CONFLICT (name) DO UPDATE SET value=excluded.value`, passwordSetting, hash); err != nil {
		return fmt.Errorf("set admin password: %w", mapErr(err))
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM admin_sessions`); err != nil {
		return fmt.Errorf("set admin password: end sessions: %w", mapErr(err))
	}
	return mapErr(tx.Commit())
}

// CreateAdminSession stores s and drops sessions that have expired.
func (db *DB) CreateAdminSession(ctx context.Context, s *store.AdminSession) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create admin session: %w", mapErr(err))
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM admin_sessions WHERE expires_at <= ?`, ms(s.CreatedAt)); err != nil {
		return fmt.Errorf("create admin session: %w", mapErr(err))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO admin_sessions (id_hash, csrf, created_at, expires_at) VALUES (?,?,?,?)`,
		s.IDHash, s.CSRF, ms(s.CreatedAt), ms(s.ExpiresAt)); err != nil {
		return fmt.Errorf("create admin session: %w", mapErr(err))
	}
	return mapErr(tx.Commit())
}

// AdminSession returns an unexpired session.
func (db *DB) AdminSession(ctx context.Context, idHash string, now time.Time) (*store.AdminSession, error) {
	s := store.AdminSession{IDHash: idHash}
	var created, expires int64
	err := db.r.QueryRowContext(ctx, `SELECT csrf, created_at, expires_at FROM admin_sessions WHERE id_hash=? AND expires_at > ?`,
		idHash, ms(now)).Scan(&s.CSRF, &created, &expires)
	if err != nil {
		return nil, fmt.Errorf("admin session: %w", mapErr(err))
	}
	s.CreatedAt, s.ExpiresAt = fromMS(created), fromMS(expires)
	return &s, nil
}

// DeleteAdminSession ends a session; ending an unknown one is not an error.
func (db *DB) DeleteAdminSession(ctx context.Context, idHash string) error {
	if _, err := db.w.ExecContext(ctx, `DELETE FROM admin_sessions WHERE id_hash=?`, idHash); err != nil {
		return fmt.Errorf("delete admin session: %w", mapErr(err))
	}
	return nil
}

// CreateAdminToken stores an API token hash.
func (db *DB) CreateAdminToken(ctx context.Context, t *store.AdminToken) error {
	t.CreatedAt = db.now()
	if t.Scope == "" {
		t.Scope = "write"
	}
	res, err := db.w.ExecContext(ctx, `INSERT INTO admin_tokens (name, hash, scope, created_at, expires_at) VALUES (?,?,?,?,?)`,
		t.Name, t.Hash, t.Scope, ms(t.CreatedAt), ms(t.ExpiresAt))
	if err != nil {
		return fmt.Errorf("create admin token: %w", mapErr(err))
	}
	t.ID, _ = res.LastInsertId()
	return nil
}

const adminTokenColumns = `id, name, hash, scope, created_at, last_used_at, expires_at, revoked_at`

func scanAdminToken(row interface{ Scan(...any) error }) (store.AdminToken, error) {
	var t store.AdminToken
	var created, used, expires, revoked int64
	if err := row.Scan(&t.ID, &t.Name, &t.Hash, &t.Scope, &created, &used, &expires, &revoked); err != nil {
		return t, mapErr(err)
	}
	t.CreatedAt, t.LastUsedAt = fromMS(created), fromMS(used)
	t.ExpiresAt, t.RevokedAt = fromMS(expires), fromMS(revoked)
	return t, nil
}

// AdminTokenByHash finds a token and records the use of an active one. The
// use is written at most once a minute per token, so API polling does not
// turn into writes.
func (db *DB) AdminTokenByHash(ctx context.Context, hash string, now time.Time) (*store.AdminToken, error) {
	t, err := scanAdminToken(db.r.QueryRowContext(ctx, `SELECT `+adminTokenColumns+` FROM admin_tokens WHERE hash=?`, hash))
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	if t.Active(now) && now.Sub(t.LastUsedAt) >= time.Minute {
		if _, err := db.w.ExecContext(ctx, `UPDATE admin_tokens SET last_used_at=? WHERE id=?`, ms(now), t.ID); err != nil {
			return nil, fmt.Errorf("admin token: record use: %w", mapErr(err))
		}
		t.LastUsedAt = now
	}
	return &t, nil
}

// ListAdminTokens lists tokens, oldest first (hashes included).
func (db *DB) ListAdminTokens(ctx context.Context) ([]store.AdminToken, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+adminTokenColumns+` FROM admin_tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list admin tokens: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.AdminToken
	for rows.Next() {
		t, err := scanAdminToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list admin tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, mapErr(rows.Err())
}

// RevokeAdminToken marks a token revoked.
func (db *DB) RevokeAdminToken(ctx context.Context, id int64, now time.Time) error {
	return db.exec1(ctx, "revoke admin token", `UPDATE admin_tokens SET revoked_at=CASE WHEN revoked_at=0 THEN ? ELSE revoked_at END WHERE id=?`, ms(now), id)
}

// Activity counts outbox items per minute. It reads two index ranges
// (outbox_created, outbox_delivered), so 24 hours cost one pass over that
// day's rows.
func (db *DB) Activity(ctx context.Context, since, until time.Time) ([]store.MinuteCount, error) {
	byMinute := map[int64]*store.MinuteCount{}
	get := func(m int64) *store.MinuteCount {
		c := byMinute[m]
		if c == nil {
			c = &store.MinuteCount{Minute: time.UnixMilli(m * 60000)}
			byMinute[m] = c
		}
		return c
	}
	rows, err := db.r.QueryContext(ctx, `SELECT created_at/60000, count(*) FROM outbox
		WHERE created_at >= ? AND created_at < ? GROUP BY 1`, ms(since), ms(until))
	if err != nil {
		return nil, fmt.Errorf("activity: %w", mapErr(err))
	}
	for rows.Next() {
		var m int64
		var n int
		if err := rows.Scan(&m, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("activity: %w", mapErr(err))
		}
		get(m).In = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("activity: %w", mapErr(err))
	}
	rows, err = db.r.QueryContext(ctx, `SELECT delivered_at/60000, state, count(*) FROM outbox
		WHERE delivered_at >= ? AND delivered_at < ? AND delivered_at > 0 AND state IN ('delivered','dead') GROUP BY 1, 2`,
		ms(since), ms(until))
	if err != nil {
		return nil, fmt.Errorf("activity: %w", mapErr(err))
	}
	defer rows.Close()
	for rows.Next() {
		var m int64
		var state string
		var n int
		if err := rows.Scan(&m, &state, &n); err != nil {
			return nil, fmt.Errorf("activity: %w", mapErr(err))
		}
		if state == store.StateDead {
			get(m).Dead = n
		} else {
			get(m).Delivered = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("activity: %w", mapErr(err))
	}
	out := make([]store.MinuteCount, 0, len(byMinute))
	for _, c := range byMinute {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b store.MinuteCount) int { return a.Minute.Compare(b.Minute) })
	return out, nil
}

// DeliveryLatencies returns queue-to-Meta durations of recent deliveries.
func (db *DB) DeliveryLatencies(ctx context.Context, since time.Time, limit int) ([]time.Duration, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT delivered_at - created_at FROM outbox
		WHERE delivered_at >= ? AND delivered_at > 0 AND state='delivered' ORDER BY delivered_at DESC LIMIT ?`, ms(since), limit)
	if err != nil {
		return nil, fmt.Errorf("delivery latencies: %w", mapErr(err))
	}
	defer rows.Close()
	var out []time.Duration
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("delivery latencies: %w", mapErr(err))
		}
		out = append(out, time.Duration(d)*time.Millisecond)
	}
	return out, mapErr(rows.Err())
}

// Errors groups recent items that carry an error.
func (db *DB) Errors(ctx context.Context, since time.Time, limit int) ([]store.ErrorCount, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT site_key, CASE state WHEN 'dead' THEN 'dead' ELSE 'pending' END, last_error, count(*),
		max(created_at) FROM outbox WHERE created_at >= ? AND last_error <> '' AND state IN ('pending','inflight','dead')
		GROUP BY 1, 2, 3 ORDER BY count(*) DESC, max(created_at) DESC LIMIT ?`, ms(since), limit)
	if err != nil {
		return nil, fmt.Errorf("errors: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.ErrorCount
	for rows.Next() {
		var e store.ErrorCount
		var last int64
		if err := rows.Scan(&e.SiteKey, &e.State, &e.Reason, &e.Count, &last); err != nil {
			return nil, fmt.Errorf("errors: %w", mapErr(err))
		}
		e.Last = fromMS(last)
		out = append(out, e)
	}
	return out, mapErr(rows.Err())
}
