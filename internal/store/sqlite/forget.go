package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/capirelay/capirelay/internal/store"
)

// visitorRef is a visitor of a site; an empty site means every site.
type visitorRef struct{ site, visitor string }

// forgetPlan is what a forget request resolved to: the person's visitors,
// the hashes and dedup keys that mark their events, and the outbox rows
// and sandbox records to erase, read up to the given ids.
type forgetPlan struct {
	refs    map[visitorRef]bool
	keys    []keyRow // the visitors' identity index rows
	set     *store.ForgetSet
	outbox  []int64          // outbox ids to delete
	sandbox map[int64][]byte // sandbox id → record to keep (nil: delete)
	removed int              // events removed from sandbox records
	maxOut  int64            // outbox rows up to this id were read
	maxSbx  int64            // sandbox records up to this id were read
	// resolved counts the visitors, hashes and keys resolution found, to
	// tell whether the write transaction learned more than the read-only
	// pass knew.
	resolved int
}

// Forget erases a person (see store.Forgetter), then checkpoints the WAL so
// that, with secure_delete, no deleted bytes remain in the database files.
//
// Finding the person's events means opening every sealed payload of the
// outbox (delivered history too) and of the sandbox, which takes long on a
// large store. That pass runs first on a read-only snapshot; the write
// transaction, which holds up ingest, then reads only rows added since,
// unless it learned of more hashes or events, when it reads them all again.
func (db *DB) Forget(ctx context.Context, req store.ForgetRequest) (store.ForgetResult, error) {
	var res store.ForgetResult
	defer db.recent.clear() // no erased payload stays in memory either
	pre, err := db.planForget(ctx, req)
	if err != nil {
		return res, fmt.Errorf("forget: %w", err)
	}
	// One transaction of the main writer, with the identity file attached
	// (and so write-locked too).
	err = db.withIdentities(ctx, db.w, func(conn *sql.Conn) error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return mapErr(err)
		}
		defer tx.Rollback()
		plan, err := db.resolveForget(ctx, tx, req)
		if err == nil {
			if plan.resolved == pre.resolved {
				plan = pre
			}
			err = db.scanForget(ctx, tx, req.SiteKey, plan)
		}
		if err != nil {
			return err
		}
		if err := db.eraseForget(ctx, tx, plan, &res); err != nil {
			return err
		}
		return mapErr(tx.Commit())
	})
	if err != nil {
		return res, fmt.Errorf("forget: %w", err)
	}
	// Nothing erased may stay in either WAL.
	for _, w := range []*sql.DB{db.w, db.id.w} {
		if err := checkpointTruncate(ctx, w); err != nil {
			return res, fmt.Errorf("forget: %w", err)
		}
	}
	return res, nil
}

// planForget resolves and scans on a read-only snapshot.
func (db *DB) planForget(ctx context.Context, req store.ForgetRequest) (*forgetPlan, error) {
	var plan *forgetPlan
	err := db.withIdentities(ctx, db.r, func(conn *sql.Conn) error {
		tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return mapErr(err)
		}
		defer tx.Rollback()
		if plan, err = db.resolveForget(ctx, tx, req); err != nil {
			return err
		}
		return db.scanForget(ctx, tx, req.SiteKey, plan)
	})
	return plan, err
}

// resolveForget finds the visitors the request names and what marks their
// events: the request's hashes, their identities' hashes, the hash of each
// visitor id as external_id, and the dedup keys of their outbox rows.
func (db *DB) resolveForget(ctx context.Context, tx *sql.Tx, req store.ForgetRequest) (*forgetPlan, error) {
	plan := &forgetPlan{refs: map[visitorRef]bool{}, set: store.NewForgetSet(req.Hashes), sandbox: map[int64][]byte{}}
	for _, v := range req.VisitorIDs {
		if v != "" {
			plan.refs[visitorRef{req.SiteKey, v}] = true
		}
	}
	siteCond, siteArgs := "", []any(nil)
	if req.SiteKey != "" {
		siteCond, siteArgs = " AND site_key=?", []any{req.SiteKey}
	}
	if len(req.Hashes) > 0 {
		in, args := inStrings(req.Hashes)
		for _, q := range []struct {
			q    string
			args []any
		}{
			// Every hash, indexed (em) or not (a phone has no index row):
			// the identities are read through.
			{`SELECT site_key, visitor_id FROM identities WHERE (` + strings.TrimSuffix(strings.Repeat(`instr(hashes, ?) > 0 OR `, len(req.Hashes)), " OR ") + `)` + siteCond,
				slices.Concat(args, siteArgs)},
			{`SELECT site_key, visitor_id FROM leads WHERE (em_hash IN (` + in + `) OR ph_hash IN (` + in + `))` + siteCond,
				slices.Concat(args, args, siteArgs)},
		} {
			if err := collectRefs(ctx, tx, q.q, q.args, plan.refs); err != nil {
				return nil, err
			}
		}
	}
	// A visitor named without a site is looked up in every site.
	for ref := range plan.refs {
		if ref.site != "" {
			continue
		}
		delete(plan.refs, ref)
		q := `SELECT site_key, visitor_id FROM identities WHERE visitor_id=?
			UNION SELECT site_key, visitor_id FROM leads WHERE visitor_id=?
			UNION SELECT site_key, visitor_id FROM outbox WHERE visitor_id=?`
		if err := collectRefs(ctx, tx, q, []any{ref.visitor, ref.visitor, ref.visitor}, plan.refs); err != nil {
			return nil, err
		}
	}
	for ref := range plan.refs {
		plan.set.AddVisitor(ref.visitor)
		id, rowid, err := db.loadIdentity(ctx, tx, ref.site, ref.visitor)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			for _, k := range store.ForgetKeys {
				plan.set.AddHashes(id.Hashes[k]...)
			}
			// The index mirrors the identity's lists (see mergeIdentity);
			// it has no index by identity, so rows go by primary key.
			plan.keys = indexRows(plan.keys, id, rowid)
		}
	}
	// The visitors' own outbox rows, in every state, give the dedup keys
	// by which sandbox records are scrubbed.
	for ref := range plan.refs {
		rows, err := tx.QueryContext(ctx, `SELECT event_name, event_id FROM outbox WHERE site_key=? AND visitor_id=?`, ref.site, ref.visitor)
		if err != nil {
			return nil, mapErr(err)
		}
		for rows.Next() {
			k := store.EventKey{Site: ref.site}
			if err := rows.Scan(&k.Name, &k.ID); err != nil {
				rows.Close()
				return nil, mapErr(err)
			}
			plan.set.Keys[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, mapErr(err)
		}
	}
	plan.resolved = len(plan.refs) + len(plan.set.Hashes) + len(plan.set.Keys)
	return plan, nil
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

// scanForget reads outbox rows after plan.maxOut and sandbox records after
// plan.maxSbx, adding those of the person to the plan. Outbox rows come
// first: their dedup keys find the person's events in sandbox records.
func (db *DB) scanForget(ctx context.Context, tx *sql.Tx, siteKey string, plan *forgetPlan) error {
	q := `SELECT o.id, o.site_key, o.visitor_id, o.event_name, o.event_id, p.payload
		FROM outbox o JOIN outbox_payload p ON p.id = o.id WHERE o.id > ?`
	args := []any{plan.maxOut}
	if siteKey != "" {
		q += ` AND o.site_key=?`
		args = append(args, siteKey)
	}
	err := eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
		var id int64
		var visitor string
		var k store.EventKey
		var sealed []byte
		if err := rows.Scan(&id, &k.Site, &visitor, &k.Name, &k.ID, &sealed); err != nil {
			return err
		}
		plan.maxOut = max(plan.maxOut, id)
		if !plan.refs[visitorRef{k.Site, visitor}] {
			pt, err := db.box.Open(sealed, []byte(store.PayloadAD))
			if err != nil {
				return fmt.Errorf("outbox item %d: %w", id, err)
			}
			if !plan.set.Matches(pt) {
				return nil
			}
		}
		plan.outbox = append(plan.outbox, id)
		plan.set.Keys[k] = true
		return nil
	})
	if err != nil {
		return err
	}
	q = `SELECT id, site_key, payload FROM sandbox WHERE id > ?`
	args = []any{plan.maxSbx}
	if siteKey != "" {
		q += ` AND site_key=?`
		args = append(args, siteKey)
	}
	return eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
		var id int64
		var site string
		var sealed []byte
		if err := rows.Scan(&id, &site, &sealed); err != nil {
			return err
		}
		plan.maxSbx = max(plan.maxSbx, id)
		pt, err := db.box.Open(sealed, []byte(store.SandboxAD))
		if err != nil {
			return fmt.Errorf("sandbox record %d: %w", id, err)
		}
		kept, n, err := plan.set.ScrubSandbox(site, pt)
		if err != nil || n == 0 {
			return err
		}
		plan.sandbox[id], plan.removed = kept, plan.removed+n
		return nil
	})
}

func eachRow(ctx context.Context, tx *sql.Tx, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return mapErr(err)
		}
	}
	return mapErr(rows.Err())
}

// eraseForget deletes what the plan found.
func (db *DB) eraseForget(ctx context.Context, tx *sql.Tx, plan *forgetPlan, res *store.ForgetResult) error {
	exec := func(n *int, q string, args ...any) error {
		r, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return mapErr(err)
		}
		if c, _ := r.RowsAffected(); n != nil {
			*n += int(c)
		}
		return nil
	}
	res.Visitors = len(plan.refs)
	for ref := range plan.refs {
		var jobs int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM lead_webhooks WHERE lead_id IN
			(SELECT id FROM leads WHERE site_key=? AND visitor_id=?)`, ref.site, ref.visitor).Scan(&jobs); err != nil {
			return mapErr(err)
		}
		res.WebhookJobs += jobs
		for _, step := range []struct {
			n *int
			q string
		}{
			{&res.Identities, `DELETE FROM identities WHERE site_key=? AND visitor_id=?`},
			{&res.Sessions, `DELETE FROM leads WHERE site_key=? AND visitor_id=? AND state='open'`},
			{&res.Leads, `DELETE FROM leads WHERE site_key=? AND visitor_id=?`},
		} {
			if err := exec(step.n, step.q, ref.site, ref.visitor); err != nil {
				return err
			}
		}
	}
	for _, k := range plan.keys {
		if err := exec(&res.IdentityKeys, `DELETE FROM identity_keys WHERE k=? AND id=?`, k.k, k.id); err != nil {
			return err
		}
	}
	// The outbox trigger takes each row's payload with it.
	for _, id := range plan.outbox {
		if err := exec(&res.OutboxEvents, `DELETE FROM outbox WHERE id=?`, id); err != nil {
			return err
		}
	}
	// Dedup keys have no index by event (dedup.go finds them in memory),
	// so each chunk of keys costs one pass over seen_log; forgetting is
	// rare. The overflow table is keyed by the event.
	for chunk := range slices.Chunk(slices.Collect(maps.Keys(plan.set.Keys)), 300) {
		args := make([]any, 0, 3*len(chunk))
		for _, k := range chunk {
			args = append(args, k.Site, k.Name, k.ID)
		}
		in := tuples(len(chunk), "(?,?,?)")
		for _, table := range []string{"seen_log", "seen"} {
			if err := exec(&res.DedupKeys, `DELETE FROM `+table+` WHERE (site_key, event_name, event_id) IN (VALUES `+in+`)`, args...); err != nil {
				return err
			}
		}
	}
	for id, kept := range plan.sandbox {
		var err error
		if kept == nil {
			err = exec(nil, `DELETE FROM sandbox WHERE id=?`, id)
		} else {
			err = exec(nil, `UPDATE sandbox SET payload=? WHERE id=?`, db.box.Seal(kept, []byte(store.SandboxAD)), id)
		}
		if err != nil {
			return err
		}
	}
	res.SandboxEvents = plan.removed
	return nil
}
