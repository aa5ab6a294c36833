package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/capirelay/capirelay/internal/store"
)

const siteCols = `key, name, domains, pixel_id, access_token, api_key_hash, test_event_code, consent, default_region,
	partial_leads, partial_lead_timeout_ms, partial_lead_forward, partial_lead_event, webhook_url, retention_ms,
	identity, click_window_ms, webhook_allow_http, webhook_allow_private, paused, pause_reason, demo, created_at, updated_at`

// tokenAD binds a sealed token to its site; the same as the SQLite store.
// CreateSite inserts s, filling defaults. It returns store.ErrDuplicate
// when the key or the api key hash is taken.
func (db *DB) CreateSite(ctx context.Context, s *store.Site) error {
	store.SiteDefaults(s)
	now := db.now()
	s.CreatedAt, s.UpdatedAt = now, now
	_, err := db.pool.Exec(ctx, `INSERT INTO sites (`+siteCols+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24)`,
		s.Key, s.Name, s.Domains, s.PixelID, db.box.SealString(s.AccessToken, store.TokenAD(s.Key)), s.APIKeyHash,
		s.TestEventCode, s.Consent, s.DefaultRegion, s.PartialLeads, s.PartialLeadTimeout.Milliseconds(),
		s.PartialLeadForward, s.PartialLeadEvent, s.WebhookURL, s.Retention.Milliseconds(),
		s.Identity, s.ClickWindow.Milliseconds(), s.WebhookAllowHTTP, s.WebhookAllowPrivate, s.Paused, s.PauseReason, s.Demo, now, now)
	if err != nil {
		return fmt.Errorf("create site: %w", mapErr(err))
	}
	return nil
}

func (db *DB) scanSite(row pgx.Row) (*store.Site, error) {
	var s store.Site
	var token []byte
	var plt, ret, cw int64
	err := row.Scan(&s.Key, &s.Name, &s.Domains, &s.PixelID, &token, &s.APIKeyHash, &s.TestEventCode, &s.Consent,
		&s.DefaultRegion, &s.PartialLeads, &plt, &s.PartialLeadForward, &s.PartialLeadEvent, &s.WebhookURL, &ret,
		&s.Identity, &cw, &s.WebhookAllowHTTP, &s.WebhookAllowPrivate, &s.Paused, &s.PauseReason, &s.Demo, &s.CreatedAt, &s.UpdatedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	if s.AccessToken, err = db.box.OpenString(token, store.TokenAD(s.Key)); err != nil {
		return nil, fmt.Errorf("site %s access token: %w", s.Key, err)
	}
	if s.Domains == nil {
		s.Domains = []string{}
	}
	s.PartialLeadTimeout = time.Duration(plt) * time.Millisecond
	s.Retention = time.Duration(ret) * time.Millisecond
	s.ClickWindow = time.Duration(cw) * time.Millisecond
	return &s, nil
}

// Site returns the site with key, or store.ErrNotFound.
func (db *DB) Site(ctx context.Context, key string) (*store.Site, error) {
	s, err := db.scanSite(db.pool.QueryRow(ctx, `SELECT `+siteCols+` FROM sites WHERE key = $1`, key))
	if err != nil {
		return nil, fmt.Errorf("site %q: %w", key, err)
	}
	return s, nil
}

// SiteByAPIKeyHash returns the site whose api key hashes to hash, or
// store.ErrNotFound.
func (db *DB) SiteByAPIKeyHash(ctx context.Context, hash string) (*store.Site, error) {
	s, err := db.scanSite(db.pool.QueryRow(ctx, `SELECT `+siteCols+` FROM sites WHERE api_key_hash = $1`, hash))
	if err != nil {
		return nil, fmt.Errorf("site by api key: %w", err)
	}
	return s, nil
}

// ListSites returns every site, oldest first.
func (db *DB) ListSites(ctx context.Context) ([]*store.Site, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+siteCols+` FROM sites ORDER BY created_at, key`)
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", mapErr(err))
	}
	defer rows.Close()
	var out []*store.Site
	for rows.Next() {
		s, err := db.scanSite(rows)
		if err != nil {
			return nil, fmt.Errorf("list sites: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sites: %w", mapErr(err))
	}
	return out, nil
}

// UpdateSite writes the editable fields of s (see store.Sites).
func (db *DB) UpdateSite(ctx context.Context, s *store.Site) error {
	store.SiteDefaults(s)
	s.UpdatedAt = db.now()
	return db.exec1(ctx, "update site", `UPDATE sites SET name=$1, domains=$2, pixel_id=$3, test_event_code=$4,
		consent=$5, default_region=$6, partial_leads=$7, partial_lead_timeout_ms=$8, partial_lead_forward=$9,
		partial_lead_event=$10, webhook_url=$11, retention_ms=$12, identity=$13, click_window_ms=$14, demo=$15,
		updated_at=$16, webhook_allow_http=$18, webhook_allow_private=$19 WHERE key=$17`,
		s.Name, s.Domains, s.PixelID, s.TestEventCode, s.Consent, s.DefaultRegion, s.PartialLeads,
		s.PartialLeadTimeout.Milliseconds(), s.PartialLeadForward, s.PartialLeadEvent, s.WebhookURL,
		s.Retention.Milliseconds(), s.Identity, s.ClickWindow.Milliseconds(), s.Demo, s.UpdatedAt, s.Key,
		s.WebhookAllowHTTP, s.WebhookAllowPrivate)
}

// SetAccessToken stores a new sealed token and un-pauses the site.
func (db *DB) SetAccessToken(ctx context.Context, key, token string) error {
	return db.exec1(ctx, "set access token",
		`UPDATE sites SET access_token=$1, paused=false, pause_reason='', updated_at=$2 WHERE key=$3`,
		db.box.SealString(token, store.TokenAD(key)), db.now(), key)
}

// SetAPIKeyHash replaces the api key hash (rotation); store.ErrDuplicate
// if another site has it.
func (db *DB) SetAPIKeyHash(ctx context.Context, key, hash string) error {
	return db.exec1(ctx, "set api key", `UPDATE sites SET api_key_hash=$1, updated_at=$2 WHERE key=$3`, hash, db.now(), key)
}

// SetPaused pauses or resumes delivery for a site; resuming clears the
// reason.
func (db *DB) SetPaused(ctx context.Context, key string, paused bool, reason string) error {
	if !paused {
		reason = ""
	}
	return db.exec1(ctx, "pause site", `UPDATE sites SET paused=$1, pause_reason=$2, updated_at=$3 WHERE key=$4`,
		paused, reason, db.now(), key)
}

// DeleteSite removes a site with its queue, dedup keys and sandbox records.
func (db *DB) DeleteSite(ctx context.Context, key string) error {
	err := db.transact(ctx, func(tx pgx.Tx) error {
		for _, q := range []string{`DELETE FROM outbox WHERE site_key=$1`, `DELETE FROM seen WHERE site_key=$1`,
			`DELETE FROM sandbox WHERE site_key=$1`} {
			if _, err := tx.Exec(ctx, q, key); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM sites WHERE key=$1`, key)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete site %q: %w", key, mapErr(err))
	}
	return nil
}

// exec1 runs a statement that must change a row; store.ErrNotFound if none.
func (db *DB) exec1(ctx context.Context, what, q string, args ...any) error {
	tag, err := db.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}
