package sqlite

import (
	"cmp"
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

var _ store.Leads = (*DB)(nil)

const leadCols = `id, session_id, site_key, visitor_id, form_id, state, data, consent, em_hash, ph_hash,
	started_at, updated_at, due_at, partial_at, closed_at, expires_at, forward_state, forward_error`

func (db *DB) scanLead(row interface{ Scan(...any) error }) (*store.Lead, error) {
	var l store.Lead
	var data []byte
	var started, updated, due, partial, closed, expires int64
	if err := row.Scan(&l.ID, &l.SessionID, &l.SiteKey, &l.VisitorID, &l.FormID, &l.State, &data, &l.Consent,
		&l.EmailHash, &l.PhoneHash, &started, &updated, &due, &partial, &closed, &expires,
		&l.ForwardState, &l.ForwardError); err != nil {
		return nil, mapErr(err)
	}
	pt, err := db.box.Open(data, []byte(store.LeadAD(l.SessionID)))
	if err != nil {
		return nil, fmt.Errorf("lead %d: %w", l.ID, err)
	}
	if err := json.Unmarshal(pt, &l.Data); err != nil {
		return nil, fmt.Errorf("lead %d data: %w", l.ID, err)
	}
	l.StartedAt, l.UpdatedAt, l.DueAt = fromMS(started), fromMS(updated), fromMS(due)
	l.PartialAt, l.ClosedAt, l.ExpiresAt = fromMS(partial), fromMS(closed), fromMS(expires)
	return &l, nil
}

func (db *DB) sealLead(l *store.Lead) ([]byte, error) {
	pt, err := json.Marshal(l.Data)
	if err != nil {
		return nil, fmt.Errorf("encode lead data: %w", err)
	}
	return db.box.Seal(pt, []byte(store.LeadAD(l.SessionID))), nil
}

// UpsertLead runs fn on the active lead of (site, visitor, form) and writes
// it back in one transaction; see store.Leads.
func (db *DB) UpsertLead(ctx context.Context, siteKey, visitorID, formID string, fn func(*store.Lead) error) (*store.Lead, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("upsert lead: %w", mapErr(err))
	}
	defer tx.Rollback()
	l, err := db.scanLead(tx.QueryRowContext(ctx, `SELECT `+leadCols+` FROM leads
		WHERE site_key=? AND visitor_id=? AND form_id=? AND state IN ('open','partial')`, siteKey, visitorID, formID))
	switch {
	case errors.Is(err, store.ErrNotFound):
		l = &store.Lead{SessionID: store.NewSessionID(), SiteKey: siteKey, VisitorID: visitorID, FormID: formID}
	case err != nil:
		return nil, fmt.Errorf("upsert lead: %w", err)
	}
	if err := fn(l); err != nil {
		return nil, err
	}
	// The key of the row is not fn's to change.
	l.SiteKey, l.VisitorID, l.FormID = siteKey, visitorID, formID
	data, err := db.sealLead(l)
	if err != nil {
		return nil, err
	}
	if l.ID == 0 {
		err = tx.QueryRowContext(ctx, `INSERT INTO leads (session_id, site_key, visitor_id, form_id, state, data, consent,
			em_hash, ph_hash, started_at, updated_at, due_at, partial_at, closed_at, expires_at, forward_state, forward_error)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id`,
			l.SessionID, l.SiteKey, l.VisitorID, l.FormID, l.State, data, l.Consent, l.EmailHash, l.PhoneHash,
			ms(l.StartedAt), ms(l.UpdatedAt), ms(l.DueAt), ms(l.PartialAt), ms(l.ClosedAt), ms(l.ExpiresAt),
			l.ForwardState, l.ForwardError).Scan(&l.ID)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE leads SET state=?, data=?, consent=?, em_hash=?, ph_hash=?, updated_at=?,
			due_at=?, partial_at=?, closed_at=?, expires_at=?, forward_state=?, forward_error=? WHERE id=?`,
			l.State, data, l.Consent, l.EmailHash, l.PhoneHash, ms(l.UpdatedAt), ms(l.DueAt), ms(l.PartialAt),
			ms(l.ClosedAt), ms(l.ExpiresAt), l.ForwardState, l.ForwardError, l.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("upsert lead: %w", mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("upsert lead: %w", mapErr(err))
	}
	return l, nil
}

// collectLeads reads every row of rows, then closes it.
func (db *DB) collectLeads(rows *sql.Rows) ([]store.Lead, error) {
	defer rows.Close()
	var out []store.Lead
	for rows.Next() {
		l, err := db.scanLead(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *l)
	}
	return out, mapErr(rows.Err())
}

// ClaimDueLeads turns due open leads into partial leads with a pending
// forward and a pending webhook job, in one transaction.
func (db *DB) ClaimDueLeads(ctx context.Context, now time.Time, limit int) ([]store.Lead, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim due leads: %w", mapErr(err))
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `UPDATE leads SET state='partial', partial_at=?, due_at=0, forward_state='pending', forward_at=?
		WHERE id IN (SELECT id FROM leads WHERE state='open' AND due_at<=? ORDER BY due_at LIMIT ?)
		RETURNING `+leadCols, ms(now), ms(now), ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim due leads: %w", mapErr(err))
	}
	leads, err := db.collectLeads(rows)
	if err != nil {
		return nil, fmt.Errorf("claim due leads: %w", err)
	}
	for _, l := range leads {
		if _, err := tx.ExecContext(ctx, `INSERT INTO lead_webhooks (lead_id, site_key, state, next_attempt, created_at)
			VALUES (?,?,'pending',?,?)`, l.ID, l.SiteKey, ms(now), ms(now)); err != nil {
			return nil, fmt.Errorf("claim due leads: webhook job: %w", mapErr(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim due leads: %w", mapErr(err))
	}
	sortLeads(leads)
	return leads, nil
}

// ClaimLeadForwards leases partial leads whose forward is pending.
func (db *DB) ClaimLeadForwards(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.Lead, error) {
	rows, err := db.w.QueryContext(ctx, `UPDATE leads SET forward_at=?
		WHERE id IN (SELECT id FROM leads WHERE forward_state='pending' AND forward_at<=? ORDER BY forward_at LIMIT ?)
		RETURNING `+leadCols, ms(now.Add(lease)), ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim lead forwards: %w", mapErr(err))
	}
	leads, err := db.collectLeads(rows)
	if err != nil {
		return nil, fmt.Errorf("claim lead forwards: %w", err)
	}
	sortLeads(leads)
	return leads, nil
}

// CompleteLeadForward records the outcome of a pending forward.
func (db *DB) CompleteLeadForward(ctx context.Context, id int64, state, reason string) error {
	_, err := db.w.ExecContext(ctx, `UPDATE leads SET forward_state=?, forward_error=? WHERE id=? AND forward_state='pending'`,
		state, reason, id)
	if err != nil {
		return fmt.Errorf("complete forward of lead %d: %w", id, mapErr(err))
	}
	return nil
}

// ClaimWebhooks leases due pending webhook jobs with their leads.
func (db *DB) ClaimWebhooks(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.WebhookJob, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim webhooks: %w", mapErr(err))
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `UPDATE lead_webhooks SET attempts=attempts+1, next_attempt=?
		WHERE id IN (SELECT id FROM lead_webhooks WHERE state='pending' AND next_attempt<=? ORDER BY next_attempt LIMIT ?)
		RETURNING id, lead_id, site_key, state, attempts, next_attempt, last_error, created_at`,
		ms(now.Add(lease)), ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim webhooks: %w", mapErr(err))
	}
	var jobs []store.WebhookJob
	for rows.Next() {
		var j store.WebhookJob
		var next, created int64
		if err := rows.Scan(&j.ID, &j.LeadID, &j.SiteKey, &j.State, &j.Attempts, &next, &j.LastError, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("claim webhooks: %w", mapErr(err))
		}
		j.NextAttempt, j.CreatedAt = fromMS(next), fromMS(created)
		jobs = append(jobs, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim webhooks: %w", mapErr(err))
	}
	for i := range jobs {
		l, err := db.scanLead(tx.QueryRowContext(ctx, `SELECT `+leadCols+` FROM leads WHERE id=?`, jobs[i].LeadID))
		if err != nil {
			return nil, fmt.Errorf("claim webhooks: lead %d: %w", jobs[i].LeadID, err)
		}
		jobs[i].Lead = l
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim webhooks: %w", mapErr(err))
	}
	sortJobs(jobs)
	return jobs, nil
}

// CompleteWebhook logs one attempt and sets the job's state.
func (db *DB) CompleteWebhook(ctx context.Context, a store.WebhookAttempt) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("complete webhook %d: %w", a.JobID, mapErr(err))
	}
	defer tx.Rollback()
	var siteKey string
	if err := tx.QueryRowContext(ctx, `SELECT site_key FROM lead_webhooks WHERE id=?`, a.JobID).Scan(&siteKey); err != nil {
		return fmt.Errorf("complete webhook %d: %w", a.JobID, mapErr(err))
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO lead_webhook_log (job_id, site_key, attempt, at, status, error, duration_ms, state, retry_at)
		VALUES (?,?,?,?,?,?,?,?,?)`, a.JobID, siteKey, a.Attempt, ms(a.At), a.Status, a.Error, a.Duration.Milliseconds(),
		a.State, ms(a.RetryAt)); err != nil {
		return fmt.Errorf("complete webhook %d: log: %w", a.JobID, mapErr(err))
	}
	next, done := ms(a.RetryAt), int64(0)
	if a.State != store.WebhookPending {
		next, done = 0, ms(a.At)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE lead_webhooks SET state=?, next_attempt=?, last_error=?, done_at=? WHERE id=?`,
		a.State, next, a.Error, done, a.JobID); err != nil {
		return fmt.Errorf("complete webhook %d: %w", a.JobID, mapErr(err))
	}
	return mapErr(tx.Commit())
}

// WebhookAttempts lists a site's webhook delivery log, newest first.
func (db *DB) WebhookAttempts(ctx context.Context, siteKey string, limit int) ([]store.WebhookAttempt, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT job_id, attempt, at, status, error, duration_ms, state, retry_at
		FROM lead_webhook_log WHERE site_key=? ORDER BY id DESC LIMIT ?`, siteKey, limit)
	if err != nil {
		return nil, fmt.Errorf("webhook attempts: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.WebhookAttempt
	for rows.Next() {
		var a store.WebhookAttempt
		var at, dur, retry int64
		if err := rows.Scan(&a.JobID, &a.Attempt, &at, &a.Status, &a.Error, &dur, &a.State, &retry); err != nil {
			return nil, fmt.Errorf("webhook attempts: %w", mapErr(err))
		}
		a.At, a.RetryAt, a.Duration = fromMS(at), fromMS(retry), time.Duration(dur)*time.Millisecond
		out = append(out, a)
	}
	return out, mapErr(rows.Err())
}

// WebhookSecret returns the site's webhook secret, storing newSecret first
// when there is none.
func (db *DB) WebhookSecret(ctx context.Context, siteKey, newSecret string) (string, error) {
	if newSecret != "" {
		if _, err := db.w.ExecContext(ctx, `INSERT INTO lead_webhook_secrets (site_key, secret, created_at) VALUES (?,?,?)
			ON CONFLICT (site_key) DO NOTHING`, siteKey, db.box.SealString(newSecret, store.WebhookSecretAD(siteKey)), ms(db.now())); err != nil {
			return "", fmt.Errorf("webhook secret of site %s: %w", siteKey, mapErr(err))
		}
	}
	var sealed []byte
	if err := db.w.QueryRowContext(ctx, `SELECT secret FROM lead_webhook_secrets WHERE site_key=?`, siteKey).Scan(&sealed); err != nil {
		return "", fmt.Errorf("webhook secret of site %s: %w", siteKey, mapErr(err))
	}
	s, err := db.box.OpenString(sealed, store.WebhookSecretAD(siteKey))
	if err != nil {
		return "", fmt.Errorf("webhook secret of site %s: %w", siteKey, err)
	}
	return s, nil
}

// Lead returns one lead.
func (db *DB) Lead(ctx context.Context, id int64) (*store.Lead, error) {
	l, err := db.scanLead(db.r.QueryRowContext(ctx, `SELECT `+leadCols+` FROM leads WHERE id=?`, id))
	if err != nil {
		return nil, fmt.Errorf("lead %d: %w", id, err)
	}
	return l, nil
}

// ListLeads lists a site's leads, oldest activity first.
func (db *DB) ListLeads(ctx context.Context, f store.LeadFilter) ([]store.Lead, error) {
	q := `SELECT ` + leadCols + ` FROM leads WHERE site_key=? AND updated_at>=?`
	args := []any{f.SiteKey, ms(f.Since)}
	if len(f.States) > 0 {
		q += ` AND state IN (` + placeholders(len(f.States)) + `)`
		for _, s := range f.States {
			args = append(args, s)
		}
	}
	q += ` ORDER BY updated_at, id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list leads: %w", mapErr(err))
	}
	leads, err := db.collectLeads(rows)
	if err != nil {
		return nil, fmt.Errorf("list leads: %w", err)
	}
	return leads, nil
}

// PurgeLeads deletes expired leads; their webhook jobs and log go with them.
func (db *DB) PurgeLeads(ctx context.Context, now time.Time) (int, error) {
	res, err := db.w.ExecContext(ctx, `DELETE FROM leads WHERE expires_at<=?`, ms(now))
	if err != nil {
		return 0, fmt.Errorf("purge leads: %w", mapErr(err))
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func sortLeads(ls []store.Lead) {
	slices.SortFunc(ls, func(a, b store.Lead) int { return cmp.Compare(a.ID, b.ID) })
}

func sortJobs(js []store.WebhookJob) {
	slices.SortFunc(js, func(a, b store.WebhookJob) int { return cmp.Compare(a.ID, b.ID) })
}

// inStrings returns "?,?,…" for vs and vs as arguments.
func inStrings(vs []string) (string, []any) {
	args := make([]any, len(vs))
	for i, v := range vs {
		args[i] = v
	}
	return strings.TrimSuffix(strings.Repeat("?,", len(vs)), ","), args
}
