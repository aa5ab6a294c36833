package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

var (
	_ store.Identities = (*DB)(nil)
	_ store.Forgetter  = (*DB)(nil)
)

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readQuerier reads through the cached statements.
type readQuerier struct{ db *DB }

func (q readQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return q.db.readRow(ctx, query, args...)
}

func (db *DB) loadIdentity(ctx context.Context, q querier, siteKey, visitorID string) (*store.Identity, error) {
	id := store.Identity{SiteKey: siteKey, VisitorID: visitorID}
	var hashes string
	var sealed []byte
	var created, updated int64
	err := q.QueryRowContext(ctx, `SELECT hashes, device, created_at, updated_at FROM identities WHERE site_key=? AND visitor_id=?`,
		siteKey, visitorID).Scan(&hashes, &sealed, &created, &updated)
	if err != nil {
		return nil, mapErr(err)
	}
	if err := json.Unmarshal([]byte(hashes), &id.Hashes); err != nil {
		return nil, fmt.Errorf("identity hashes: %w", err)
	}
	if err := store.OpenDevice(db.box, sealed, &id); err != nil {
		return nil, err
	}
	id.CreatedAt, id.UpdatedAt = fromMS(created), fromMS(updated)
	return &id, nil
}

// Identity returns the identity of a visitor.
func (db *DB) Identity(ctx context.Context, siteKey, visitorID string) (*store.Identity, error) {
	id, err := db.loadIdentity(ctx, readQuerier{db}, siteKey, visitorID)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return id, nil
}

// VisitorsByHash lists visitors whose identity holds hash under key.
func (db *DB) VisitorsByHash(ctx context.Context, siteKey, key, hash string) ([]string, error) {
	rows, err := db.readRows(ctx, `SELECT visitor_id FROM identity_keys WHERE kind=? AND hash=? AND site_key=?
		ORDER BY updated_at DESC, visitor_id LIMIT 20`, key, hash, siteKey)
	if err != nil {
		return nil, fmt.Errorf("visitors by %s: %w", key, mapErr(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("visitors by %s: %w", key, mapErr(err))
		}
		out = append(out, v)
	}
	return out, mapErr(rows.Err())
}

// LearnIdentity merges id into the stored identity and indexes its hashes.
func (db *DB) LearnIdentity(ctx context.Context, id *store.Identity) error {
	return db.LearnIdentities(ctx, []*store.Identity{id})
}

// LearnIdentities merges each of ids in one transaction, without waiting
// for fsync (see store.Identities).
func (db *DB) LearnIdentities(ctx context.Context, ids []*store.Identity) error {
	if len(ids) == 0 {
		return nil
	}
	conn, release, err := db.relaxed(ctx)
	if err != nil {
		return fmt.Errorf("learn identity: %w", err)
	}
	defer release()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("learn identity: %w", mapErr(err))
	}
	defer tx.Rollback()
	var likelyNew, rest []*store.Identity
	for _, id := range ids {
		if id.LikelyNew {
			likelyNew = append(likelyNew, id)
		} else {
			rest = append(rest, id)
		}
	}
	existing, err := db.insertIdentities(ctx, tx, likelyNew)
	if err != nil {
		return err
	}
	for _, id := range append(rest, existing...) {
		if err := db.learnOne(ctx, tx, id); err != nil {
			return err
		}
	}
	return mapErr(tx.Commit())
}

// insertIdentities inserts identities believed new with multi-row
// statements and returns those that existed after all (to merge).
func (db *DB) insertIdentities(ctx context.Context, tx *sql.Tx, ids []*store.Identity) ([]*store.Identity, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	now := ms(db.now())
	var existing []*store.Identity
	const rowsPer = 200
	for lo := 0; lo < len(ids); lo += rowsPer {
		part := ids[lo:min(lo+rowsPer, len(ids))]
		var sb strings.Builder
		args := make([]any, 0, len(part)*6)
		sb.WriteString(`INSERT INTO identities (site_key, visitor_id, hashes, device, created_at, updated_at) VALUES `)
		curs := make(map[[2]string]*store.Identity, len(part))
		for i, id := range part {
			cur := &store.Identity{SiteKey: id.SiteKey, VisitorID: id.VisitorID, Hashes: map[string][]string{}}
			cur.Merge(id)
			curs[[2]string{cur.SiteKey, cur.VisitorID}] = cur
			hashes, err := json.Marshal(cur.Hashes)
			if err != nil {
				return nil, fmt.Errorf("learn identity: %w", err)
			}
			sealed := store.SealDevice(db.box, cur)
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?)")
			args = append(args, cur.SiteKey, cur.VisitorID, string(hashes), sealed, now, now)
		}
		sb.WriteString(` ON CONFLICT (site_key, visitor_id) DO NOTHING RETURNING site_key, visitor_id`)
		rows, err := tx.QueryContext(ctx, sb.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("learn identities: %w", mapErr(err))
		}
		inserted := map[[2]string]bool{}
		for rows.Next() {
			var k [2]string
			if err := rows.Scan(&k[0], &k[1]); err != nil {
				rows.Close()
				return nil, fmt.Errorf("learn identities: %w", mapErr(err))
			}
			inserted[k] = true
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("learn identities: %w", mapErr(err))
		}
		sb.Reset()
		args = args[:0]
		n := 0
		for _, id := range part {
			k := [2]string{id.SiteKey, id.VisitorID}
			if !inserted[k] {
				existing = append(existing, id)
				continue
			}
			cur := curs[k]
			for _, kind := range store.IndexedKeys {
				for _, h := range cur.Hashes[kind] {
					if n > 0 {
						sb.WriteByte(',')
					}
					sb.WriteString("(?,?,?,?,?)")
					args = append(args, kind, h, cur.SiteKey, cur.VisitorID, now)
					n++
				}
			}
		}
		if n > 0 {
			q := `INSERT INTO identity_keys (kind, hash, site_key, visitor_id, updated_at) VALUES ` + sb.String() + ` ON CONFLICT DO NOTHING`
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return nil, fmt.Errorf("learn identities: index: %w", mapErr(err))
			}
		}
	}
	return existing, nil
}

func (db *DB) learnOne(ctx context.Context, tx *sql.Tx, id *store.Identity) error {
	cur, err := db.loadIdentity(ctx, tx, id.SiteKey, id.VisitorID)
	isNew := errors.Is(err, store.ErrNotFound)
	switch {
	case isNew:
		cur = &store.Identity{SiteKey: id.SiteKey, VisitorID: id.VisitorID, Hashes: map[string][]string{}}
	case err != nil:
		return fmt.Errorf("learn identity: %w", err)
	}
	if !cur.Merge(id) && !isNew {
		return nil
	}
	now := ms(db.now())
	hashes, err := json.Marshal(cur.Hashes)
	if err != nil {
		return fmt.Errorf("learn identity: %w", err)
	}
	sealed := store.SealDevice(db.box, cur)
	if _, err := tx.ExecContext(ctx, `INSERT INTO identities (site_key, visitor_id, hashes, device, created_at, updated_at)
		VALUES (?,?,?,?,?,?) ON CONFLICT (site_key, visitor_id) DO UPDATE SET hashes=excluded.hashes, device=excluded.device,
		updated_at=excluded.updated_at`, cur.SiteKey, cur.VisitorID, string(hashes), sealed, now, now); err != nil {
		return fmt.Errorf("learn identity: %w", mapErr(err))
	}
	// The index mirrors the capped lists: hashes pushed out are unlinked.
	if !isNew {
		if _, err := tx.ExecContext(ctx, `DELETE FROM identity_keys WHERE site_key=? AND visitor_id=?`, cur.SiteKey, cur.VisitorID); err != nil {
			return fmt.Errorf("learn identity: index: %w", mapErr(err))
		}
	}
	for _, k := range store.IndexedKeys {
		for _, h := range cur.Hashes[k] {
			if _, err := tx.ExecContext(ctx, `INSERT INTO identity_keys (kind, hash, site_key, visitor_id, updated_at)
				VALUES (?,?,?,?,?)`, k, h, cur.SiteKey, cur.VisitorID, now); err != nil {
				return fmt.Errorf("learn identity: index: %w", mapErr(err))
			}
		}
	}
	return nil
}

// KnownKeys lists visitors and indexed hashes changed since a time.
func (db *DB) KnownKeys(ctx context.Context, since time.Time, fn func(siteKey, kind, value string)) (time.Time, error) {
	latest := since
	scan := func(q string) error {
		rows, err := db.r.QueryContext(ctx, q, ms(since))
		if err != nil {
			return mapErr(err)
		}
		defer rows.Close()
		for rows.Next() {
			var site, kind, value string
			var at int64
			if err := rows.Scan(&site, &kind, &value, &at); err != nil {
				return mapErr(err)
			}
			fn(site, kind, value)
			if t := fromMS(at); t.After(latest) {
				latest = t
			}
		}
		return mapErr(rows.Err())
	}
	if err := scan(`SELECT site_key, 'visitor', visitor_id, updated_at FROM identities WHERE updated_at >= ?`); err != nil {
		return since, fmt.Errorf("known identity keys: %w", err)
	}
	if err := scan(`SELECT site_key, kind, hash, updated_at FROM identity_keys WHERE updated_at >= ?`); err != nil {
		return since, fmt.Errorf("known identity keys: %w", err)
	}
	return latest, nil
}

// visitorRef is a visitor of a site; an empty site means every site.
type visitorRef struct{ site, visitor string }

// Forget erases a person (see store.Forgetter) in one transaction, then
// checkpoints the WAL so that, with secure_delete, no deleted bytes remain
// in the database files.
func (db *DB) Forget(ctx context.Context, req store.ForgetRequest) (store.ForgetResult, error) {
	var res store.ForgetResult
	defer db.recent.clear() // no erased payload stays in memory either
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("forget: %w", mapErr(err))
	}
	defer tx.Rollback()

	siteCond := func(col string) (string, []any) {
		if req.SiteKey == "" {
			return "", nil
		}
		return " AND " + col + "=?", []any{req.SiteKey}
	}
	refs := map[visitorRef]bool{}
	for _, v := range req.VisitorIDs {
		if v != "" {
			refs[visitorRef{req.SiteKey, v}] = true
		}
	}
	hashes := slices.Clone(req.Hashes)
	if len(req.Hashes) > 0 {
		in, args := inStrings(req.Hashes)
		cond, cargs := siteCond("site_key")
		qs := []struct {
			q    string
			args []any
		}{
			{`SELECT site_key, visitor_id FROM identity_keys WHERE kind IN ('em','ph') AND hash IN (` + in + `)` + cond,
				slices.Concat(args, cargs)},
			{`SELECT site_key, visitor_id FROM leads WHERE (em_hash IN (` + in + `) OR ph_hash IN (` + in + `))` + cond,
				slices.Concat(args, args, cargs)},
		}
		for _, q := range qs {
			if err := collectRefs(ctx, tx, q.q, q.args, refs); err != nil {
				return res, fmt.Errorf("forget: %w", err)
			}
		}
	}
	// A visitor named without a site is looked up in every site.
	for ref := range refs {
		if ref.site != "" {
			continue
		}
		delete(refs, ref)
		q := `SELECT site_key, visitor_id FROM identities WHERE visitor_id=?
			UNION SELECT site_key, visitor_id FROM leads WHERE visitor_id=?
			UNION SELECT site_key, visitor_id FROM outbox WHERE visitor_id=?`
		if err := collectRefs(ctx, tx, q, []any{ref.visitor, ref.visitor, ref.visitor}, refs); err != nil {
			return res, fmt.Errorf("forget: %w", err)
		}
	}
	res.Visitors = len(refs)

	for ref := range refs {
		id, err := db.loadIdentity(ctx, tx, ref.site, ref.visitor)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return res, fmt.Errorf("forget: %w", err)
		default:
			for _, k := range store.IndexedKeys {
				hashes = append(hashes, id.Hashes[k]...)
			}
		}
		exec := func(n *int, q string, args ...any) error {
			r, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return mapErr(err)
			}
			c, _ := r.RowsAffected()
			if n != nil {
				*n += int(c)
			}
			return nil
		}
		var jobs int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM lead_webhooks WHERE lead_id IN
			(SELECT id FROM leads WHERE site_key=? AND visitor_id=?)`, ref.site, ref.visitor).Scan(&jobs); err != nil {
			return res, fmt.Errorf("forget: %w", mapErr(err))
		}
		res.WebhookJobs += jobs
		for _, step := range []struct {
			n    *int
			q    string
			args []any
		}{
			{&res.IdentityKeys, `DELETE FROM identity_keys WHERE site_key=? AND visitor_id=?`, []any{ref.site, ref.visitor}},
			{&res.Identities, `DELETE FROM identities WHERE site_key=? AND visitor_id=?`, []any{ref.site, ref.visitor}},
			{&res.Sessions, `DELETE FROM leads WHERE site_key=? AND visitor_id=? AND state='open'`, []any{ref.site, ref.visitor}},
			{&res.Leads, `DELETE FROM leads WHERE site_key=? AND visitor_id=?`, []any{ref.site, ref.visitor}},
			{&res.OutboxEvents, `DELETE FROM outbox WHERE site_key=? AND visitor_id=? AND state IN ('pending','held','dead')`,
				[]any{ref.site, ref.visitor}},
		} {
			if err := exec(step.n, step.q, step.args...); err != nil {
				return res, fmt.Errorf("forget: %w", err)
			}
		}
	}
	// Unsent events of the person that carry no visitor id (server events)
	// are found by the hashes in their sealed payloads.
	if len(hashes) > 0 {
		n, err := db.forgetPayloads(ctx, tx, req.SiteKey, hashes)
		if err != nil {
			return res, fmt.Errorf("forget: %w", err)
		}
		res.OutboxEvents += n
	}
	if err := tx.Commit(); err != nil {
		return res, fmt.Errorf("forget: %w", mapErr(err))
	}
	if err := db.checkpointTruncate(ctx); err != nil {
		return res, fmt.Errorf("forget: %w", err)
	}
	return res, nil
}

func collectRefs(ctx context.Context, tx *sql.Tx, q string, args []any, refs map[visitorRef]bool) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r visitorRef
		if err := rows.Scan(&r.site, &r.visitor); err != nil {
			return mapErr(err)
		}
		refs[r] = true
	}
	return mapErr(rows.Err())
}

// forgetPayloads deletes unsent outbox rows whose payload holds one of
// hashes. Payloads are sealed, so each is opened.
func (db *DB) forgetPayloads(ctx context.Context, tx *sql.Tx, siteKey string, hashes []string) (int, error) {
	q := `SELECT o.id, p.payload FROM outbox o JOIN outbox_payload p ON p.id = o.id WHERE o.state IN ('pending','held','dead')`
	var args []any
	if siteKey != "" {
		q += ` AND o.site_key=?`
		args = append(args, siteKey)
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, mapErr(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		var sealed []byte
		if err := rows.Scan(&id, &sealed); err != nil {
			rows.Close()
			return 0, mapErr(err)
		}
		pt, err := db.box.Open(sealed, []byte(store.PayloadAD))
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("outbox item %d: %w", id, err)
		}
		for _, h := range hashes {
			if h != "" && bytes.Contains(pt, []byte(h)) {
				ids = append(ids, id)
				break
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, mapErr(err)
	}
	n := 0
	for _, id := range ids {
		r, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id=?`, id)
		if err != nil {
			return n, mapErr(err)
		}
		c, _ := r.RowsAffected()
		n += int(c)
	}
	return n, nil
}

// checkpointTruncate folds the WAL into the database file and truncates it,
// retrying while readers hold old snapshots.
func (db *DB) checkpointTruncate(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		var busy, logFrames, done int
		if err := db.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
			return fmt.Errorf("checkpoint: %w", mapErr(err))
		}
		if busy == 0 {
			return nil
		}
		if attempt == 50 {
			return fmt.Errorf("checkpoint: %w: readers kept the WAL busy", store.ErrUnavailable)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
