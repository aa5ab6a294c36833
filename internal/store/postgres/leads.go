package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/capirelay/capirelay/internal/store"
)

var _ store.Leads = (*DB)(nil)

const leadCols = `id, session_id, site_key, visitor_id, form_id, state, data, consent, em_hash, ph_hash,
	started_at, updated_at, due_at, partial_at, closed_at, expires_at, forward_state, forward_error`

func (db *DB) scanLead(row pgx.Row) (*store.Lead, error) {
	var l store.Lead
	var data []byte
	if err := row.Scan(&l.ID, &l.SessionID, &l.SiteKey, &l.VisitorID, &l.FormID, &l.State, &data, &l.Consent,
		&l.EmailHash, &l.PhoneHash, &l.StartedAt, &l.UpdatedAt, &l.DueAt, &l.PartialAt, &l.ClosedAt, &l.ExpiresAt,
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
	return &l, nil
}

func (db *DB) scanLeads(rows pgx.Rows) ([]store.Lead, error) {
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

func (db *DB) sealLead(l *store.Lead) ([]byte, error) {
	pt, err := json.Marshal(l.Data)
	if err != nil {
		return nil, fmt.Errorf("encode lead data: %w", err)
	}
	return db.box.Seal(pt, []byte(store.LeadAD(l.SessionID))), nil
}

// UpsertLead runs fn on the active lead of (site, visitor, form) and writes
// it back in one transaction; see store.Leads. The row is locked while fn
// runs. When two nodes start the same session at once, one insert loses on
// the leads_active index and its transaction runs again, finding the row.
func (db *DB) UpsertLead(ctx context.Context, siteKey, visitorID, formID string, fn func(*store.Lead) error) (*store.Lead, error) {
	var out *store.Lead
	var fnErr error
	for attempt := 0; ; attempt++ {
		err := db.transact(ctx, func(tx pgx.Tx) error {
			l, err := db.scanLead(tx.QueryRow(ctx, `SELECT `+leadCols+` FROM leads
				WHERE site_key = $1 AND visitor_id = $2 AND form_id = $3 AND state IN ('open', 'partial') FOR UPDATE`,
				siteKey, visitorID, formID))
			switch {
			case errors.Is(err, store.ErrNotFound):
				l = &store.Lead{SessionID: store.NewSessionID(), SiteKey: siteKey, VisitorID: visitorID, FormID: formID}
			case err != nil:
				return err
			}
			if fnErr = fn(l); fnErr != nil {
				return fnErr
			}
			// The key of the row is not fn's to change.
			l.SiteKey, l.VisitorID, l.FormID = siteKey, visitorID, formID
			data, err := db.sealLead(l)
			if err != nil {
				return err
			}
			if l.ID == 0 {
				err = tx.QueryRow(ctx, `INSERT INTO leads (session_id, site_key, visitor_id, form_id, state, data, consent,
					em_hash, ph_hash, started_at, updated_at, due_at, partial_at, closed_at, expires_at, forward_state, forward_error)
					VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) RETURNING id`,
					l.SessionID, l.SiteKey, l.VisitorID, l.FormID, l.State, data, l.Consent, l.EmailHash, l.PhoneHash,
					l.StartedAt, l.UpdatedAt, l.DueAt, l.PartialAt, l.ClosedAt, l.ExpiresAt,
					l.ForwardState, l.ForwardError).Scan(&l.ID)
			} else {
				_, err = tx.Exec(ctx, `UPDATE leads SET state=$1, data=$2, consent=$3, em_hash=$4, ph_hash=$5, updated_at=$6,
					due_at=$7, partial_at=$8, closed_at=$9, expires_at=$10, forward_state=$11, forward_error=$12 WHERE id=$13`,
					l.State, data, l.Consent, l.EmailHash, l.PhoneHash, l.UpdatedAt, l.DueAt, l.PartialAt,
					l.ClosedAt, l.ExpiresAt, l.ForwardState, l.ForwardError, l.ID)
			}
			out = l
			return err
		})
		if fnErr != nil {
			return nil, fnErr
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "leads_active" && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("upsert lead: %w", mapErr(err))
		}
		return out, nil
	}
}

// ClaimDueLeads turns up to limit due open leads into partial leads with a
// pending forward and a pending webhook job, in one transaction. SKIP
// LOCKED lets sweepers on several nodes run at once; each lead becomes
// partial exactly once.
func (db *DB) ClaimDueLeads(ctx context.Context, now time.Time, limit int) ([]store.Lead, error) {
	var leads []store.Lead
	err := db.transact(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE leads SET state = 'partial', partial_at = $1, due_at = '0001-01-01 00:00:00+00',
			forward_state = 'pending', forward_at = $1
			WHERE id IN (SELECT id FROM leads WHERE state = 'open' AND due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
			AND state = 'open'
			RETURNING `+leadCols, now, max(limit, 0))
		if err != nil {
			return err
		}
		if leads, err = db.scanLeads(rows); err != nil {
			return err
		}
		if len(leads) == 0 {
			return nil
		}
		ids, sites := make([]int64, len(leads)), make([]string, len(leads))
		for i, l := range leads {
			ids[i], sites[i] = l.ID, l.SiteKey
		}
		_, err = tx.Exec(ctx, `INSERT INTO lead_webhooks (lead_id, site_key, state, next_attempt, created_at)
			SELECT id, site, 'pending', $3, $3 FROM unnest($1::bigint[], $2::text[]) AS u(id, site)`, ids, sites, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim due leads: %w", mapErr(err))
	}
	slices.SortFunc(leads, func(a, b store.Lead) int { return cmp.Compare(a.ID, b.ID) })
	return leads, nil
}

// ClaimLeadForwards leases up to limit partial leads whose forward is
// pending until now+lease.
func (db *DB) ClaimLeadForwards(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.Lead, error) {
	rows, err := db.pool.Query(ctx, `UPDATE leads SET forward_at = $1
		WHERE id IN (SELECT id FROM leads WHERE forward_state = 'pending' AND forward_at <= $2
			ORDER BY forward_at LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING `+leadCols, now.Add(lease), now, max(limit, 0))
	if err != nil {
		return nil, fmt.Errorf("claim lead forwards: %w", mapErr(err))
	}
	leads, err := db.scanLeads(rows)
	if err != nil {
		return nil, fmt.Errorf("claim lead forwards: %w", err)
	}
	slices.SortFunc(leads, func(a, b store.Lead) int { return cmp.Compare(a.ID, b.ID) })
	return leads, nil
}

// CompleteLeadForward records the outcome of a pending forward.
func (db *DB) CompleteLeadForward(ctx context.Context, id int64, state, reason string) error {
	_, err := db.pool.Exec(ctx, `UPDATE leads SET forward_state = $1, forward_error = $2 WHERE id = $3 AND forward_state = 'pending'`,
		state, cleanText(reason), id)
	if err != nil {
		return fmt.Errorf("complete forward of lead %d: %w", id, mapErr(err))
	}
	return nil
}

// ClaimWebhooks leases up to limit due pending webhook jobs until
// now+lease, counting the attempt, with their leads.
func (db *DB) ClaimWebhooks(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.WebhookJob, error) {
	var jobs []store.WebhookJob
	err := db.transact(ctx, func(tx pgx.Tx) error {
		jobs = nil
		rows, err := tx.Query(ctx, `UPDATE lead_webhooks SET attempts = attempts + 1, next_attempt = $1
			WHERE id IN (SELECT id FROM lead_webhooks WHERE state = 'pending' AND next_attempt <= $2
				ORDER BY next_attempt LIMIT $3 FOR UPDATE SKIP LOCKED)
			RETURNING id, lead_id, site_key, state, attempts, next_attempt, last_error, created_at`,
			now.Add(lease), now, max(limit, 0))
		if err != nil {
			return err
		}
		var j store.WebhookJob
		if _, err := pgx.ForEachRow(rows, []any{&j.ID, &j.LeadID, &j.SiteKey, &j.State, &j.Attempts, &j.NextAttempt,
			&j.LastError, &j.CreatedAt}, func() error {
			jobs = append(jobs, j)
			return nil
		}); err != nil {
			return err
		}
		if len(jobs) == 0 {
			return nil
		}
		ids := make([]int64, len(jobs))
		for i, j := range jobs {
			ids[i] = j.LeadID
		}
		rows, err = tx.Query(ctx, `SELECT `+leadCols+` FROM leads WHERE id = ANY($1)`, ids)
		if err != nil {
			return err
		}
		leads, err := db.scanLeads(rows)
		if err != nil {
			return err
		}
		byID := make(map[int64]*store.Lead, len(leads))
		for i := range leads {
			byID[leads[i].ID] = &leads[i]
		}
		for i := range jobs {
			if jobs[i].Lead = byID[jobs[i].LeadID]; jobs[i].Lead == nil {
				return fmt.Errorf("lead %d: %w", jobs[i].LeadID, store.ErrNotFound)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim webhooks: %w", mapErr(err))
	}
	slices.SortFunc(jobs, func(a, b store.WebhookJob) int { return cmp.Compare(a.ID, b.ID) })
	return jobs, nil
}

// CompleteWebhook logs one attempt and sets the job's state.
func (db *DB) CompleteWebhook(ctx context.Context, a store.WebhookAttempt) error {
	err := db.transact(ctx, func(tx pgx.Tx) error {
		var siteKey string
		if err := tx.QueryRow(ctx, `SELECT site_key FROM lead_webhooks WHERE id = $1`, a.JobID).Scan(&siteKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO lead_webhook_log (job_id, site_key, attempt, at, status, error, duration_ms, state, retry_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`, a.JobID, siteKey, a.Attempt, a.At, a.Status, cleanText(a.Error),
			a.Duration.Milliseconds(), a.State, a.RetryAt); err != nil {
			return err
		}
		next, done := a.RetryAt, time.Time{}
		if a.State != store.WebhookPending {
			next, done = time.Time{}, a.At
		}
		_, err := tx.Exec(ctx, `UPDATE lead_webhooks SET state = $1, next_attempt = $2, last_error = $3, done_at = $4 WHERE id = $5`,
			a.State, next, cleanText(a.Error), done, a.JobID)
		return err
	})
	if err != nil {
		return fmt.Errorf("complete webhook %d: %w", a.JobID, mapErr(err))
	}
	return nil
}

// WebhookAttempts lists a site's webhook delivery log, newest first.
func (db *DB) WebhookAttempts(ctx context.Context, siteKey string, limit int) ([]store.WebhookAttempt, error) {
	rows, err := db.pool.Query(ctx, `SELECT job_id, attempt, at, status, error, duration_ms, state, retry_at
		FROM lead_webhook_log WHERE site_key = $1 ORDER BY id DESC LIMIT $2`, siteKey, max(limit, 0))
	if err != nil {
		return nil, fmt.Errorf("webhook attempts: %w", mapErr(err))
	}
	var out []store.WebhookAttempt
	var a store.WebhookAttempt
	var dur int64
	if _, err := pgx.ForEachRow(rows, []any{&a.JobID, &a.Attempt, &a.At, &a.Status, &a.Error, &dur, &a.State, &a.RetryAt},
		func() error {
			a.Duration = time.Duration(dur) * time.Millisecond
			out = append(out, a)
			return nil
		}); err != nil {
		return nil, fmt.Errorf("webhook attempts: %w", mapErr(err))
	}
	return out, nil
}

// WebhookSecret returns the site's webhook signing secret, storing
// newSecret first when there is none.
func (db *DB) WebhookSecret(ctx context.Context, siteKey, newSecret string) (string, error) {
	if newSecret != "" {
		if _, err := db.pool.Exec(ctx, `INSERT INTO lead_webhook_secrets (site_key, secret, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (site_key) DO NOTHING`, siteKey, db.box.SealString(newSecret, store.WebhookSecretAD(siteKey)), db.now()); err != nil {
			return "", fmt.Errorf("webhook secret of site %s: %w", siteKey, mapErr(err))
		}
	}
	var sealed []byte
	if err := db.pool.QueryRow(ctx, `SELECT secret FROM lead_webhook_secrets WHERE site_key = $1`, siteKey).Scan(&sealed); err != nil {
		return "", fmt.Errorf("webhook secret of site %s: %w", siteKey, mapErr(err))
	}
	s, err := db.box.OpenString(sealed, store.WebhookSecretAD(siteKey))
	if err != nil {
		return "", fmt.Errorf("webhook secret of site %s: %w", siteKey, err)
	}
	return s, nil
}

// Lead returns one lead; store.ErrNotFound when absent.
func (db *DB) Lead(ctx context.Context, id int64) (*store.Lead, error) {
	l, err := db.scanLead(db.pool.QueryRow(ctx, `SELECT `+leadCols+` FROM leads WHERE id = $1`, id))
	if err != nil {
		return nil, fmt.Errorf("lead %d: %w", id, err)
	}
	return l, nil
}

// ListLeads lists a site's leads, oldest activity first.
func (db *DB) ListLeads(ctx context.Context, f store.LeadFilter) ([]store.Lead, error) {
	q := `SELECT ` + leadCols + ` FROM leads WHERE site_key = $1 AND updated_at >= $2`
	args := []any{f.SiteKey, f.Since}
	if len(f.States) > 0 {
		args = append(args, f.States)
		q += fmt.Sprintf(` AND state = ANY($%d)`, len(args))
	}
	q += ` ORDER BY updated_at, id`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list leads: %w", mapErr(err))
	}
	leads, err := db.scanLeads(rows)
	if err != nil {
		return nil, fmt.Errorf("list leads: %w", err)
	}
	return leads, nil
}

// PurgeLeads deletes leads that expired at now; their webhook jobs and log
// go with them.
func (db *DB) PurgeLeads(ctx context.Context, now time.Time) (int, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM leads WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("purge leads: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}
