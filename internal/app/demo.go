package app

import (
	"context"
	"errors"

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
		APIKeyHash: "demo-no-api-key", PartialLeads: true, Demo: true, DefaultRegion: "us"}
	err = st.CreateSite(ctx, s)
	if errors.Is(err, store.ErrDuplicate) {
		return nil // another process created it
	}
	return err
}
