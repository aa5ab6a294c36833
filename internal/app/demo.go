package app

import (
	"context"
	_ "embed"
	"errors"
	"html/template"
	"net/http"

	"github.com/capirelay/capirelay/internal/store"
)

// DemoSiteKey is the built-in demo site's key.
const DemoSiteKey = "demo"

// EnsureDemoSite creates the sandbox demo site on first start.
func EnsureDemoSite(ctx context.Context, st store.Sites, publicURL string) error {
	_, err := st.Site(ctx, DemoSiteKey)
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s := &store.Site{Key: DemoSiteKey, Name: "Demo (sandbox)", Domains: []string{"localhost", "127.0.0.1"},
		APIKeyHash: "demo-no-api-key", PartialLeads: true, Demo: true, DefaultRegion: "US"}
	err = st.CreateSite(ctx, s)
	if errors.Is(err, store.ErrDuplicate) {
		return nil // another process created it
	}
	return err
}

//go:embed demo.html
var demoHTML string

var demoPage = template.Must(template.New("demo").Parse(demoHTML))

// serveDemo is GET /demo: a landing page with a lead form using the tag.
func serveDemo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = demoPage.Execute(w, map[string]any{"SiteKey": DemoSiteKey, "Thanks": r.URL.Query().Get("thanks") != ""})
}
