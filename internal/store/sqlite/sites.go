package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

const siteCols = `key, name, domains, pixel_id, access_token, api_key_hash, test_event_code, consent, default_region,
	partial_leads, partial_lead_timeout, partial_lead_forward, partial_lead_event, webhook_url, retention,
	identity, click_window, webhook_allow_http, webhook_allow_private, paused, pause_reason, demo, created_at, updated_at`

// CreateSite inserts s, filling defaults.
func (db *DB) CreateSite(ctx context.Context, s *store.Site) error {
	store.SiteDefaults(s)
	now := db.now()
	s.CreatedAt, s.UpdatedAt = now, now
	doms, _ := json.Marshal(s.Domains)
	_, err := db.w.ExecContext(ctx, `INSERT INTO sites (`+siteCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		s.Key, s.Name, string(doms), s.PixelID, db.box.SealString(s.AccessToken, store.TokenAD(s.Key)), s.APIKeyHash,
		s.TestEventCode, s.Consent, s.DefaultRegion, boolInt(s.PartialLeads), s.PartialLeadTimeout.Milliseconds(),
		boolInt(s.PartialLeadForward), s.PartialLeadEvent, s.WebhookURL, s.Retention.Milliseconds(),
		s.Identity, s.ClickWindow.Milliseconds(), boolInt(s.WebhookAllowHTTP), boolInt(s.WebhookAllowPrivate),
		boolInt(s.Paused), s.PauseReason, boolInt(s.Demo), ms(now), ms(now))
	if err != nil {
		return fmt.Errorf("create site: %w", mapErr(err))
	}
	return nil
}

func (db *DB) scanSite(row interface{ Scan(...any) error }) (*store.Site, error) {
	var s store.Site
	var doms string
	var token []byte
	var pl, plf, wh, wp, paused, demo int
	var plt, ret, cw, created, updated int64
	err := row.Scan(&s.Key, &s.Name, &doms, &s.PixelID, &token, &s.APIKeyHash, &s.TestEventCode, &s.Consent,
		&s.DefaultRegion, &pl, &plt, &plf, &s.PartialLeadEvent, &s.WebhookURL, &ret, &s.Identity, &cw, &wh, &wp, &paused, &s.PauseReason,
		&demo, &created, &updated)
	if err != nil {
		return nil, mapErr(err)
	}
	if err := json.Unmarshal([]byte(doms), &s.Domains); err != nil {
		return nil, fmt.Errorf("site %s domains: %w", s.Key, err)
	}
	if s.AccessToken, err = db.box.OpenString(token, store.TokenAD(s.Key)); err != nil {
		return nil, fmt.Errorf("site %s access token: %w", s.Key, err)
	}
	s.PartialLeads, s.PartialLeadForward, s.Paused, s.Demo = pl != 0, plf != 0, paused != 0, demo != 0
	s.WebhookAllowHTTP, s.WebhookAllowPrivate = wh != 0, wp != 0
	s.PartialLeadTimeout = time.Duration(plt) * time.Millisecond
	s.Retention = time.Duration(ret) * time.Millisecond
	s.ClickWindow = time.Duration(cw) * time.Millisecond
	s.CreatedAt, s.UpdatedAt = fromMS(created), fromMS(updated)
	return &s, nil
}

// siteTTL is how long a site read is reused. Every request looks its site
// up; a change made by another process (the CLI) shows within this time,
// one made through this DB at once.
const siteTTL = time.Second

type cachedSite struct {
	site *store.Site
	at   time.Time
}

func (db *DB) cachedSite(ck string, load func() (*store.Site, error)) (*store.Site, error) {
	now := time.Now()
	if c, ok := db.sites.Load(ck); ok && now.Sub(c.(cachedSite).at) < siteTTL {
		return cloneSite(c.(cachedSite).site), nil
	}
	s, err := load()
	if err != nil {
		return nil, err
	}
	db.sites.Store(ck, cachedSite{site: s, at: now})
	return cloneSite(s), nil
}

// forgetSites drops cached site reads after a write.
func (db *DB) forgetSites() { db.sites.Clear() }

func cloneSite(s *store.Site) *store.Site {
	c := *s
	c.Domains = append([]string(nil), s.Domains...)
	return &c
}

// Site returns the site with key.
func (db *DB) Site(ctx context.Context, key string) (*store.Site, error) {
	s, err := db.cachedSite("k:"+key, func() (*store.Site, error) {
		return db.scanSite(db.readRow(ctx, `SELECT `+siteCols+` FROM sites WHERE key = ?`, key))
	})
	if err != nil {
		return nil, fmt.Errorf("site %q: %w", key, err)
	}
	return s, nil
}

// SiteByAPIKeyHash returns the site whose api key hashes to hash.
func (db *DB) SiteByAPIKeyHash(ctx context.Context, hash string) (*store.Site, error) {
	s, err := db.cachedSite("h:"+hash, func() (*store.Site, error) {
		return db.scanSite(db.readRow(ctx, `SELECT `+siteCols+` FROM sites WHERE api_key_hash = ?`, hash))
	})
	if err != nil {
		return nil, fmt.Errorf("site by api key: %w", err)
	}
	return s, nil
}

// ListSites returns every site, oldest first.
func (db *DB) ListSites(ctx context.Context) ([]*store.Site, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+siteCols+` FROM sites ORDER BY created_at, key`)
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
	return out, mapErr(rows.Err())
}

// UpdateSite writes the editable fields of s.
func (db *DB) UpdateSite(ctx context.Context, s *store.Site) error {
	store.SiteDefaults(s)
	s.UpdatedAt = db.now()
	doms, _ := json.Marshal(s.Domains)
	return db.exec1(ctx, "update site", `UPDATE sites SET name=?, domains=?, pixel_id=?, test_event_code=?, consent=?,
		default_region=?, partial_leads=?, partial_lead_timeout=?, partial_lead_forward=?, partial_lead_event=?,
		webhook_url=?, retention=?, identity=?, click_window=?, webhook_allow_http=?, webhook_allow_private=?, demo=?,
		updated_at=? WHERE key=?`,
		s.Name, string(doms), s.PixelID, s.TestEventCode, s.Consent, s.DefaultRegion, boolInt(s.PartialLeads),
		s.PartialLeadTimeout.Milliseconds(), boolInt(s.PartialLeadForward), s.PartialLeadEvent, s.WebhookURL,
		s.Retention.Milliseconds(), s.Identity, s.ClickWindow.Milliseconds(), boolInt(s.WebhookAllowHTTP),
		boolInt(s.WebhookAllowPrivate), boolInt(s.Demo), ms(s.UpdatedAt), s.Key)
}

// SetAccessToken stores a new sealed token and un-pauses the site.
func (db *DB) SetAccessToken(ctx context.Context, key, token string) error {
	return db.exec1(ctx, "set access token", `UPDATE sites SET access_token=?, paused=0, pause_reason='', updated_at=? WHERE key=?`,
		db.box.SealString(token, store.TokenAD(key)), ms(db.now()), key)
}

// SetAPIKeyHash replaces the api key hash (rotation).
func (db *DB) SetAPIKeyHash(ctx context.Context, key, hash string) error {
	return db.exec1(ctx, "set api key", `UPDATE sites SET api_key_hash=?, updated_at=? WHERE key=?`, hash, ms(db.now()), key)
}

// SetPaused pauses or resumes delivery for a site.
func (db *DB) SetPaused(ctx context.Context, key string, paused bool, reason string) error {
	if !paused {
		reason = ""
	}
	return db.exec1(ctx, "pause site", `UPDATE sites SET paused=?, pause_reason=?, updated_at=? WHERE key=?`,
		boolInt(paused), reason, ms(db.now()), key)
}

// DeleteSite removes a site and everything queued for it.
func (db *DB) DeleteSite(ctx context.Context, key string) error {
	defer db.forgetSites()
	defer db.recent.clear()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete site: %w", mapErr(err))
	}
	defer tx.Rollback()
	for _, q := range []string{`DELETE FROM outbox WHERE site_key=?`, `DELETE FROM seen_log WHERE site_key=?`, `DELETE FROM seen WHERE site_key=?`, `DELETE FROM sandbox WHERE site_key=?`} {
		if _, err := tx.ExecContext(ctx, q, key); err != nil {
			return fmt.Errorf("delete site: %w", mapErr(err))
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM sites WHERE key=?`, key)
	if err != nil {
		return fmt.Errorf("delete site: %w", mapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete site %q: %w", key, store.ErrNotFound)
	}
	return mapErr(tx.Commit())
}

func (db *DB) exec1(ctx context.Context, what, q string, args ...any) error {
	defer db.forgetSites()
	res, err := db.w.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, mapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}
