// Package admin is capirelay's operator surface: a server-rendered dashboard
// under /admin/ and a JSON API under /api/admin/, both over the store.
//
// Pages are html/template with embedded assets and server-drawn SVG charts;
// there is no JavaScript build step. The dashboard logs in with the admin
// password (a session cookie plus a per-session CSRF token on every form);
// the API takes "Authorization: Bearer <admin API token>".
//
// Nothing here shows an access token (only a mask such as "EAAB…(set)") or
// raw personal data, except the partial-leads page and its CSV export, which
// exist to show it.
package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/sitecfg"
	"github.com/capirelay/capirelay/internal/store"
)

// Config is what New needs. Store, NewSite and RotateKey are required.
type Config struct {
	Store store.Store
	// Admin holds the admin tables; nil means Store, which must then
	// implement store.Admin.
	Admin store.Admin
	// Leads lists partial leads; nil means Store when it implements
	// store.Leads, else the page says leads appear there once enabled.
	Leads   store.Leads
	Metrics *metrics.Metrics // nil: nothing counted
	Logger  *slog.Logger     // nil: discard
	Now     func() time.Time // nil: time.Now
	// PublicURL is the relay's base URL as browsers reach it, used in install
	// snippets, e.g. "https://relay.example.com". "" uses the request's host.
	PublicURL string
	Version   string
	// AdminPassword, when set (CAPIRELAY_ADMIN_PASSWORD), is the password and
	// any stored hash is ignored.
	AdminPassword string
	// NewSite checks u as a new site (u.NewSite), creates it with fresh keys
	// and returns its API key, which is shown once.
	NewSite func(ctx context.Context, u sitecfg.Update) (site *store.Site, apiKey string, err error)
	// RotateKey gives a site a new API key and returns it; the old one stops
	// working.
	RotateKey func(ctx context.Context, siteKey string) (apiKey string, err error)
	// ClientIP returns the client address used to rate-limit logins; nil
	// uses the connection's remote address. Wiring passes the collector's
	// trusted-proxy logic here.
	ClientIP func(r *http.Request) string
	// UntrustedProxies lists peers that recently sent X-Forwarded-For
	// without being in CAPIRELAY_TRUSTED_PROXIES (the install checklist
	// warns about them); nil: none known.
	UntrustedProxies func() []string
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
}

// Handler serves the dashboard and the admin API. It is safe for concurrent
// use.
type Handler struct {
	store   store.Store
	admin   store.Admin
	leads   store.Leads
	metrics *metrics.Metrics
	log     *slog.Logger
	now     func() time.Time
	cfg     Config
	pages   *pages
	logins  *loginGuard
	// passwordChecks counts password comparisons (tests: a refused
	// attempt does none).
	passwordChecks atomic.Int64
	mux            *http.ServeMux
}

// New checks cfg and builds the handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("admin: Config.Store is required")
	}
	if cfg.Admin == nil {
		a, ok := cfg.Store.(store.Admin)
		if !ok {
			return nil, errors.New("admin: Config.Admin is required (the store does not implement store.Admin)")
		}
		cfg.Admin = a
	}
	if cfg.Leads == nil {
		cfg.Leads, _ = cfg.Store.(store.Leads)
	}
	if cfg.NewSite == nil || cfg.RotateKey == nil {
		return nil, errors.New("admin: Config.NewSite and Config.RotateKey are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	h := &Handler{
		store:   cfg.Store,
		admin:   cfg.Admin,
		leads:   cfg.Leads,
		metrics: cfg.Metrics,
		log:     cfg.Logger.With("component", "admin"),
		now:     cfg.Now,
		cfg:     cfg,
		pages:   p,
		logins:  newLoginGuard(),
		mux:     http.NewServeMux(),
	}
	for _, rt := range h.routes() {
		h.mux.Handle(rt.pattern, h.wrap(rt))
	}
	return h, nil
}

// ServeHTTP serves /admin/… and /api/admin/….
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	h.mux.ServeHTTP(w, r)
}

// Access levels of a route.
const (
	public = iota // anyone (login page, static assets)
	page          // a logged-in session; POSTs need the CSRF token
	api           // an admin API token, or a session (+ X-CSRF-Token when not GET)
)

type route struct {
	pattern string
	access  int
	handle  func(w http.ResponseWriter, r *http.Request) error
}

// routes is the whole admin surface; New mounts exactly this list and the
// tests walk it.
func (h *Handler) routes() []route {
	return []route{
		{"GET /admin/assets/{file}", public, h.asset},
		{"GET /admin/login", public, h.loginPage},
		{"POST /admin/login", public, h.login},
		{"POST /admin/logout", page, h.logout},

		{"GET /admin/{$}", page, h.overviewPage},
		{"GET /admin/sites", page, h.sitesPage},
		{"POST /admin/sites", page, h.createSiteForm},
		{"GET /admin/sites/{key}", page, h.sitePage},
		{"POST /admin/sites/{key}", page, h.updateSiteForm},
		{"POST /admin/sites/{key}/token", page, h.setTokenForm},
		{"POST /admin/sites/{key}/rotate-key", page, h.rotateKeyForm},
		{"POST /admin/sites/{key}/delete", page, h.deleteSiteForm},
		{"GET /admin/sites/{key}/install", page, h.installPage},
		{"GET /admin/events", page, h.eventsPage},
		{"GET /admin/match-quality", page, h.qualityPage},
		{"GET /admin/leads", page, h.leadsPage},
		{"GET /admin/leads.csv", page, h.leadsCSV},
		{"GET /admin/dead-letters", page, h.deadLettersPage},
		{"POST /admin/dead-letters/{id}/replay", page, h.replayForm},

		{"GET /api/admin/overview", api, h.apiOverview},
		{"GET /api/admin/sites", api, h.apiListSites},
		{"POST /api/admin/sites", api, h.apiCreateSite},
		{"GET /api/admin/sites/{key}", api, h.apiGetSite},
		{"PATCH /api/admin/sites/{key}", api, h.apiPatchSite},
		{"DELETE /api/admin/sites/{key}", api, h.apiDeleteSite},
		{"POST /api/admin/sites/{key}/rotate-key", api, h.apiRotateKey},
		{"PUT /api/admin/sites/{key}/token", api, h.apiSetToken},
		{"GET /api/admin/events", api, h.apiEvents},
		{"GET /api/admin/dead-letters", api, h.apiDeadLetters},
		{"POST /api/admin/dead-letters/{id}/replay", api, h.apiReplay},
		{"GET /api/admin/match-quality", api, h.apiMatchQuality},
	}
}

func setSecurityHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "+
		"frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
}
