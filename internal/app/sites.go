package app

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"strings"

	"github.com/capirelay/capirelay/internal/collect"
	"github.com/capirelay/capirelay/internal/sitecfg"
	"github.com/capirelay/capirelay/internal/store"
)

// NewSiteKey returns a public site key: 16 lowercase base32 characters.
func NewSiteKey() string {
	var b [10]byte
	rand.Read(b[:])
	return "s" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// NewAPIKey returns a secret site api key.
func NewAPIKey() string {
	var b [32]byte
	rand.Read(b[:])
	return collect.APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// CreateSite checks u as a new site (sitecfg's rules), creates it with
// fresh keys and returns it with its api key, which is shown once and
// stored only as a hash.
func CreateSite(ctx context.Context, st store.Sites, u sitecfg.Update) (*store.Site, string, error) {
	s, err := u.NewSite()
	if err != nil {
		return nil, "", err
	}
	apiKey := NewAPIKey()
	s.Key, s.APIKeyHash = NewSiteKey(), collect.HashAPIKey(apiKey)
	if err := st.CreateSite(ctx, s); err != nil {
		return nil, "", err
	}
	return s, apiKey, nil
}

// RotateAPIKey gives a site a new api key; the old one stops working.
func RotateAPIKey(ctx context.Context, st store.Sites, siteKey string) (string, error) {
	apiKey := NewAPIKey()
	if err := st.SetAPIKeyHash(ctx, siteKey, collect.HashAPIKey(apiKey)); err != nil {
		return "", err
	}
	return apiKey, nil
}
