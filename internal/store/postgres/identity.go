package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capirelay/capirelay/internal/store"
)

var (
	_ store.Identities = (*DB)(nil)
	_ store.Forgetter  = (*DB)(nil)
)

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (db *DB) loadIdentity(ctx context.Context, q querier, siteKey, visitorID string, lock bool) (*store.Identity, error) {
	id := store.Identity{SiteKey: siteKey, VisitorID: visitorID}
	var hashes string
	var sealed []byte
	sql := `SELECT hashes, device, created_at, updated_at FROM identities WHERE site_key = $1 AND visitor_id = $2`
	if lock {
		sql += ` FOR UPDATE`
	}
	if err := q.QueryRow(ctx, sql, siteKey, visitorID).Scan(&hashes, &sealed, &id.CreatedAt, &id.UpdatedAt); err != nil {
		return nil, mapErr(err)
	}
	var err error
	if id.Hashes, err = store.UnmarshalHashes(hashes); err != nil {
		return nil, fmt.Errorf("identity hashes: %w", err)
	}
	if err := store.OpenDevice(db.box, sealed, &id); err != nil {
		return nil, err
	}
	return &id, nil
}

// Identity returns the identity of a visitor; store.ErrNotFound when none.
func (db *DB) Identity(ctx context.Context, siteKey, visitorID string) (*store.Identity, error) {
	id, err := db.loadIdentity(ctx, db.pool, siteKey, visitorID, false)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return id, nil
}

// VisitorsByHash lists (at most 20) visitors whose identity holds hash
// under key, most recently updated first.
func (db *DB) VisitorsByHash(ctx context.Context, siteKey, key, hash string) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT visitor_id FROM identity_keys WHERE kind = $1 AND hash = $2 AND site_key = $3
		ORDER BY updated_at DESC, visitor_id LIMIT 20`, key, hash, siteKey)
	if err != nil {
		return nil, fmt.Errorf("visitors by %s: %w", key, mapErr(err))
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("visitors by %s: %w", key, mapErr(err))
	}
	return out, nil
}

// LearnIdentity merges id into the stored identity and indexes its hashes.
func (db *DB) LearnIdentity(ctx context.Context, id *store.Identity) error {
	return db.LearnIdentities(ctx, []*store.Identity{id})
}

// LearnIdentities merges each of ids in one transaction committed without
// waiting for the WAL flush (synchronous_commit off: identity data is
// enrichment; see store.Identities). Each visitor is serialized across
// nodes by a transaction advisory lock, taken in sorted order so that
// concurrent transactions cannot deadlock.
func (db *DB) LearnIdentities(ctx context.Context, ids []*store.Identity) error {
	if len(ids) == 0 {
		return nil
	}
	sorted := slices.Clone(ids)
	slices.SortStableFunc(sorted, func(a, b *store.Identity) int {
		return cmp.Or(cmp.Compare(a.SiteKey, b.SiteKey), cmp.Compare(a.VisitorID, b.VisitorID))
	})
	err := db.transact(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		for _, id := range sorted {
			if err := db.learnOne(ctx, tx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("learn identity: %w", mapErr(err))
	}
	return nil
}

func (db *DB) learnOne(ctx context.Context, tx pgx.Tx, id *store.Identity) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(store.IdentityAD(id.SiteKey, id.VisitorID))); err != nil {
		return err
	}
	cur, err := db.loadIdentity(ctx, tx, id.SiteKey, id.VisitorID, true)
	isNew := errors.Is(err, store.ErrNotFound)
	switch {
	case isNew:
		cur = &store.Identity{SiteKey: id.SiteKey, VisitorID: id.VisitorID, Hashes: map[string][]string{}}
	case err != nil:
		return err
	}
	var old []keyRow
	if !isNew {
		store.IndexRows(cur, func(kind, hash string) { old = append(old, keyRow{kind, hash}) })
	}
	if !cur.Merge(id) && !isNew {
		return nil
	}
	now := db.now()
	hashes, err := store.MarshalHashes(cur.Hashes)
	if err != nil {
		return err
	}
	sealed := store.SealDevice(db.box, cur)
	if _, err := tx.Exec(ctx, `INSERT INTO identities (site_key, visitor_id, hashes, device, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (site_key, visitor_id) DO UPDATE SET hashes = excluded.hashes,
		device = excluded.device, updated_at = excluded.updated_at`,
		cur.SiteKey, cur.VisitorID, string(hashes), sealed, now); err != nil {
		return err
	}
	// The index mirrors the capped lists: only rows that changed are
	// written, hashes pushed out are unlinked.
	var next []keyRow
	store.IndexRows(cur, func(kind, hash string) { next = append(next, keyRow{kind, hash}) })
	for _, d := range []struct {
		rows, not []keyRow
		sql       string
	}{
		{old, next, `DELETE FROM identity_keys ik USING unnest($1::text[], $2::text[]) AS u(k, h)
			WHERE ik.kind = u.k AND ik.hash = u.h AND ik.site_key = $3 AND ik.visitor_id = $4`},
		{next, old, `INSERT INTO identity_keys (kind, hash, site_key, visitor_id, updated_at)
			SELECT k, h, $3, $4, $5 FROM unnest($1::text[], $2::text[]) AS u(k, h) ON CONFLICT DO NOTHING`},
	} {
		var kinds, values []string
		for _, r := range d.rows {
			if !slices.Contains(d.not, r) {
				kinds, values = append(kinds, r.kind), append(values, r.hash)
			}
		}
		if len(kinds) == 0 {
			continue
		}
		args := []any{kinds, values, cur.SiteKey, cur.VisitorID}
		if strings.HasPrefix(d.sql, "INSERT") {
			args = append(args, now)
		}
		if _, err := tx.Exec(ctx, d.sql, args...); err != nil {
			return err
		}
	}
	return nil
}

// keyRow is one row of identity_keys of a visitor.
type keyRow struct{ kind, hash string }

// KnownKeys calls fn for every visitor and indexed hash changed at or
// after since and returns the latest change time seen (since when none).
func (db *DB) KnownKeys(ctx context.Context, since time.Time, fn func(siteKey, kind, value string)) (time.Time, error) {
	latest := since
	for _, q := range []string{
		`SELECT site_key, 'visitor', visitor_id, updated_at FROM identities WHERE updated_at >= $1`,
		`SELECT site_key, kind, hash, updated_at FROM identity_keys WHERE updated_at >= $1`,
	} {
		rows, err := db.pool.Query(ctx, q, since)
		if err != nil {
			return since, fmt.Errorf("known identity keys: %w", mapErr(err))
		}
		var site, kind, value string
		var at time.Time
		if _, err := pgx.ForEachRow(rows, []any{&site, &kind, &value, &at}, func() error {
			fn(site, kind, value)
			if at.After(latest) {
				latest = at
			}
			return nil
		}); err != nil {
			return since, fmt.Errorf("known identity keys: %w", mapErr(err))
		}
	}
	return latest, nil
}

// visitorRef is a visitor of a site; an empty site means every site.
type visitorRef struct{ site, visitor string }

// Forget erases a person (see store.Forgetter) in one transaction. Unlike
// SQLite with secure_delete, PostgreSQL keeps deleted row versions on disk
// until VACUUM reuses their space, and in WAL archives and backups until
// they age out: operators who must guarantee erasure run VACUUM and set
// backup retention accordingly (docs/scaling.md).
func (db *DB) Forget(ctx context.Context, req store.ForgetRequest) (store.ForgetResult, error) {
	var res store.ForgetResult
	err := db.transact(ctx, func(tx pgx.Tx) error {
		res = store.ForgetResult{}
		return db.forget(ctx, tx, req, &res)
	})
	if err != nil {
		return res, fmt.Errorf("forget: %w", mapErr(err))
	}
	return res, nil
}

func (db *DB) forget(ctx context.Context, tx pgx.Tx, req store.ForgetRequest, res *store.ForgetResult) error {
	refs := map[visitorRef]bool{}
	for _, v := range req.VisitorIDs {
		if v != "" {
			refs[visitorRef{req.SiteKey, v}] = true
		}
	}
	set := store.NewForgetSet(req.Hashes)
	if len(req.Hashes) > 0 {
		for _, q := range []string{
			`SELECT site_key, visitor_id FROM identity_keys WHERE kind = 'em' AND hash = ANY($1) AND ($2 = '' OR site_key = $2)`,
			// A phone has no index row: the identities are read through.
			`SELECT site_key, visitor_id FROM identities WHERE ($2 = '' OR site_key = $2)
				AND EXISTS (SELECT 1 FROM unnest($1::text[]) AS h WHERE position(h IN hashes) > 0)`,
			`SELECT site_key, visitor_id FROM leads WHERE (em_hash = ANY($1) OR ph_hash = ANY($1)) AND ($2 = '' OR site_key = $2)`,
		} {
			if err := collectRefs(ctx, tx, q, []any{req.Hashes, req.SiteKey}, refs); err != nil {
				return err
			}
		}
	}
	// A visitor named without a site is looked up in every site.
	for ref := range refs {
		if ref.site != "" {
			continue
		}
		delete(refs, ref)
		q := `SELECT site_key, visitor_id FROM identities WHERE visitor_id = $1
			UNION SELECT site_key, visitor_id FROM leads WHERE visitor_id = $1
			UNION SELECT site_key, visitor_id FROM outbox WHERE visitor_id = $1`
		if err := collectRefs(ctx, tx, q, []any{ref.visitor}, refs); err != nil {
			return err
		}
	}
	res.Visitors = len(refs)

	for ref := range refs {
		set.AddVisitor(ref.visitor)
		id, err := db.loadIdentity(ctx, tx, ref.site, ref.visitor, true)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			for _, k := range store.ForgetKeys {
				set.AddHashes(id.Hashes[k]...)
			}
		}
		var jobs int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM lead_webhooks WHERE lead_id IN
			(SELECT id FROM leads WHERE site_key = $1 AND visitor_id = $2)`, ref.site, ref.visitor).Scan(&jobs); err != nil {
			return err
		}
		res.WebhookJobs += jobs
		for _, step := range []struct {
			n *int
			q string
		}{
			{&res.IdentityKeys, `DELETE FROM identity_keys WHERE site_key = $1 AND visitor_id = $2`},
			{&res.Identities, `DELETE FROM identities WHERE site_key = $1 AND visitor_id = $2`},
			{&res.Sessions, `DELETE FROM leads WHERE site_key = $1 AND visitor_id = $2 AND state = 'open'`},
			{&res.Leads, `DELETE FROM leads WHERE site_key = $1 AND visitor_id = $2`},
		} {
			tag, err := tx.Exec(ctx, step.q, ref.site, ref.visitor)
			if err != nil {
				return err
			}
			*step.n += int(tag.RowsAffected())
		}
	}
	// The person's events in every state: by visitor id, or by the hashes
	// in their sealed payloads (server events carry no visitor id).
	n, err := db.forgetOutbox(ctx, tx, req.SiteKey, refs, set)
	if err != nil {
		return err
	}
	res.OutboxEvents += n
	if len(set.Keys) > 0 {
		var sites, names, ids []string
		for k := range set.Keys {
			sites, names, ids = append(sites, k.Site), append(names, k.Name), append(ids, k.ID)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM seen WHERE (site_key, event_name, event_id) IN
			(SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))`, sites, names, ids)
		if err != nil {
			return err
		}
		res.DedupKeys = int(tag.RowsAffected())
	}
	res.SandboxEvents, err = db.forgetSandbox(ctx, tx, req.SiteKey, set)
	return err
}

func collectRefs(ctx context.Context, tx pgx.Tx, q string, args []any, refs map[visitorRef]bool) error {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	var r visitorRef
	_, err = pgx.ForEachRow(rows, []any{&r.site, &r.visitor}, func() error {
		refs[r] = true
		return nil
	})
	return err
}

// forgetOutbox deletes the outbox rows of refs and those whose payload
// carries one of the set's hashes, in every state, and adds their dedup
// keys to the set. Payloads are sealed, so each is opened.
func (db *DB) forgetOutbox(ctx context.Context, tx pgx.Tx, siteKey string, refs map[visitorRef]bool, set *store.ForgetSet) (int, error) {
	rows, err := tx.Query(ctx, `SELECT o.id, o.site_key, o.visitor_id, o.event_name, o.event_id, `+payloadOf("o.")+`
		FROM outbox o WHERE $1 = '' OR o.site_key = $1`, siteKey)
	if err != nil {
		return 0, err
	}
	var ids []int64
	var id int64
	var visitor string
	var k store.EventKey
	var sealed []byte
	if _, err := pgx.ForEachRow(rows, []any{&id, &k.Site, &visitor, &k.Name, &k.ID, &sealed}, func() error {
		if !refs[visitorRef{k.Site, visitor}] {
			pt, err := db.box.Open(sealed, []byte(store.PayloadAD))
			if err != nil {
				return fmt.Errorf("outbox item %d: %w", id, err)
			}
			if !set.Matches(pt) {
				return nil
			}
		}
		ids = append(ids, id)
		set.Keys[k] = true
		return nil
	}); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := tx.Exec(ctx, `DELETE FROM outbox WHERE id = ANY($1)`, ids)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// forgetSandbox removes the set's events from sandbox records, rewriting a
// record without them or deleting it when nothing else was in it.
func (db *DB) forgetSandbox(ctx context.Context, tx pgx.Tx, siteKey string, set *store.ForgetSet) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id, site_key, payload FROM sandbox WHERE $1 = '' OR site_key = $1`, siteKey)
	if err != nil {
		return 0, err
	}
	type change struct {
		id   int64
		kept []byte
	}
	var changes []change
	removed := 0
	var id int64
	var site string
	var sealed []byte
	if _, err := pgx.ForEachRow(rows, []any{&id, &site, &sealed}, func() error {
		pt, err := db.box.Open(sealed, []byte(store.SandboxAD))
		if err != nil {
			return fmt.Errorf("sandbox record %d: %w", id, err)
		}
		kept, n, err := set.ScrubSandbox(site, pt)
		if err != nil || n == 0 {
			return err
		}
		changes, removed = append(changes, change{id, kept}), removed+n
		return nil
	}); err != nil {
		return 0, err
	}
	for _, c := range changes {
		var err error
		if c.kept == nil {
			_, err = tx.Exec(ctx, `DELETE FROM sandbox WHERE id = $1`, c.id)
		} else {
			_, err = tx.Exec(ctx, `UPDATE sandbox SET payload = $1 WHERE id = $2`, db.box.Seal(c.kept, []byte(store.SandboxAD)), c.id)
		}
		if err != nil {
			return 0, err
		}
	}
	return removed, nil
}
