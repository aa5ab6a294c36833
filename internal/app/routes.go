package app

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/capirelay/capirelay/internal/collect"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/tag"
)

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

func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	server := &collect.Server{Sites: a.Store, Pipeline: a.Pipeline, Metrics: a.Metrics, Logger: a.Logger, Notify: a.Dispatcher.Notify}
	mux.HandleFunc("POST /v1/events", server.ServeEvents)
	mux.HandleFunc("POST /{version}/{pixel}/events", server.ServeGraph)
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
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", a.Metrics.Handler())
	mux.Handle("GET /t.js", &tag.Handler{Logger: a.Logger, ConfigFunc: a.tagConfig})
	if a.Config.Demo {
		mux.HandleFunc("GET /demo", serveDemo)
	}
	return mux
}
