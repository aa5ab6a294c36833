package app

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/admin"
	"github.com/capirelay/capirelay/internal/collect"
	"github.com/capirelay/capirelay/internal/leads"
	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/sitecfg"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/tag"
)

// capture hands the collector's form captures to the lead sessions.
func (a *App) capture(ctx context.Context, site *store.Site, c collect.Capture) error {
	return a.Leads.Capture(ctx, site, leads.Capture{VisitorID: c.VisitorID, FormID: c.FormID, Fields: c.Fields,
		Submitted: c.Submitted, At: c.At, PageURL: c.PageURL, Fbp: c.Fbp, Fbc: c.Fbc, IP: c.IP, UA: c.UA, Consent: c.Consent})
}

// tagConfig tells the tag its site's consent mode.
func (a *App) tagConfig(ctx context.Context, key string) (tag.Config, error) {
	s, err := a.Store.Site(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return tag.Config{}, tag.ErrUnknownSite
	}
	if err != nil {
		return tag.Config{}, err
	}
	return tag.Config{Consent: s.Consent}, nil
}

func (a *App) routes() (http.Handler, error) {
	mux := http.NewServeMux()
	browser := &collect.Browser{Sites: a.Store, Pipeline: a.Pipeline, Metrics: a.Metrics, Logger: a.Logger,
		TrustedProxies: a.Config.TrustedProxies, Notify: a.Dispatcher.Notify, OnCapture: a.capture,
		SecureCookies: strings.HasPrefix(strings.ToLower(a.Config.PublicURL), "https:")}
	adm, err := admin.New(admin.Config{
		Store: a.Store, Metrics: a.Metrics, Logger: a.Logger, Version: Version,
		PublicURL: a.Config.PublicURL, AdminPassword: a.Config.AdminPassword,
		NewSite: func(ctx context.Context, u sitecfg.Update) (*store.Site, string, error) {
			return CreateSite(ctx, a.Store, u)
		},
		RotateKey:        func(ctx context.Context, key string) (string, error) { return RotateAPIKey(ctx, a.Store, key) },
		UntrustedProxies: browser.UntrustedProxies,
		ClientIP: func(r *http.Request) string {
			return collect.ClientIP(r, a.Config.TrustedProxies).String()
		},
	})
	if err != nil {
		return nil, err
	}
	mux.Handle("/admin/", adm)
	mux.Handle("/api/admin/", adm)
	mux.Handle("GET /{$}", http.RedirectHandler("/admin/", http.StatusFound))
	server := &collect.Server{Sites: a.Store, Pipeline: a.Pipeline, Metrics: a.Metrics, Logger: a.Logger, Notify: a.Dispatcher.Notify}
	// Bounded work in progress keeps memory flat when the store falls behind.
	mux.Handle("POST /v1/events", a.Metrics.Timed("events", collect.Limit(http.HandlerFunc(server.ServeEvents), 64, time.Second)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain")
		if err := a.Store.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("store unavailable\n"))
			return
		}
		if err := a.Writes.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(err.Error() + "\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", metrics.RequireToken(a.Config.MetricsToken, a.Metrics.Handler()))
	mux.Handle("GET /t.js", &tag.Handler{Logger: a.Logger, ConfigFunc: a.tagConfig})
	mux.Handle("POST /e", a.Metrics.Timed("e", collect.Limit(browser, 512, time.Second)))
	mux.Handle("OPTIONS /e", browser)
	if a.Config.Demo {
		mux.HandleFunc("GET /demo", serveDemo)
		// The form posts here, so what was typed never lands in a URL (and
		// so in the next event's event_source_url); the relay keeps nothing
		// of the post itself: the tag already sent the Lead.
		mux.HandleFunc("POST /demo", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/demo?thanks=1", http.StatusSeeOther)
		})
	}
	// The Graph-compatible alias POST /vNN.0/{pixel}/events is matched
	// before the mux: as a mux pattern it would overlap /admin/.
	graph := http.NewServeMux()
	graph.Handle("POST /{version}/{pixel}/events", a.Metrics.Timed("graph", collect.Limit(http.HandlerFunc(server.ServeGraph), 64, time.Second)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && graphPath(r.URL.Path) {
			graph.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// graphPath reports whether p is /vNN.N/{pixel}/events. Every POST passes
// here, /e included, so it cuts p rather than splitting it into a slice.
func graphPath(p string) bool {
	p = strings.TrimPrefix(p, "/")
	version, rest, ok := strings.Cut(p, "/")
	if !ok {
		return false
	}
	pixel, events, ok := strings.Cut(rest, "/")
	if !ok || events != "events" || pixel == "" || len(version) < 2 || version[0] != 'v' {
		return false
	}
	for _, c := range version[1:] {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}
