package app

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"net"
	"strings"

	"github.com/capirelay/capirelay/internal/collect"
	"github.com/capirelay/capirelay/internal/event"
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

// SiteInput is what an operator gives to create a site.
type SiteInput struct {
	Name          string
	Domains       []string
	PixelID       string
	AccessToken   string
	TestEventCode string
}

// CleanDomain reduces "https://Shop.Example.com:8443/path" to
// "shop.example.com" and checks it is a host name or IP.
func CleanDomain(d string) (string, error) {
	d = strings.ToLower(strings.TrimSpace(d))
	if i := strings.Index(d, "://"); i >= 0 {
		d = d[i+3:]
	}
	if i := strings.IndexAny(d, "/?#"); i >= 0 {
		d = d[:i]
	}
	if h, _, err := net.SplitHostPort(d); err == nil {
		d = h
	}
	d = strings.Trim(d, "[].")
	if d == "" {
		return "", fmt.Errorf("is empty")
	}
	if net.ParseIP(d) != nil || d == "localhost" {
		return d, nil
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%q is not a domain name", d)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c > 127) {
				return "", fmt.Errorf("%q is not a domain name", d)
			}
		}
	}
	return d, nil
}

// ValidateSite checks an operator's site settings; the error names the field.
func ValidateSite(in *SiteInput) error {
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		return &event.FieldError{Field: "name", Message: "is required"}
	}
	if len(in.Domains) == 0 {
		return &event.FieldError{Field: "domain", Message: "at least one domain is required"}
	}
	for i, d := range in.Domains {
		c, err := CleanDomain(d)
		if err != nil {
			return &event.FieldError{Field: "domain", Message: err.Error()}
		}
		in.Domains[i] = c
	}
	in.PixelID = strings.TrimSpace(in.PixelID)
	for _, c := range in.PixelID {
		if c < '0' || c > '9' {
			return &event.FieldError{Field: "pixel_id", Message: "must be the numeric pixel (dataset) id"}
		}
	}
	in.AccessToken = strings.TrimSpace(in.AccessToken)
	if in.AccessToken != "" && in.PixelID == "" {
		return &event.FieldError{Field: "pixel_id", Message: "is required with an access token"}
	}
	if strings.ContainsAny(in.AccessToken, " \t\r\n") {
		return &event.FieldError{Field: "access_token", Message: "must not contain whitespace"}
	}
	return nil
}

// CreateSite validates in, creates the site with fresh keys and returns it
// with its api key, which is shown once and stored only as a hash.
func CreateSite(ctx context.Context, st store.Sites, in SiteInput) (*store.Site, string, error) {
	if err := ValidateSite(&in); err != nil {
		return nil, "", err
	}
	apiKey := NewAPIKey()
	s := &store.Site{Key: NewSiteKey(), Name: in.Name, Domains: in.Domains, PixelID: in.PixelID,
		AccessToken: in.AccessToken, APIKeyHash: collect.HashAPIKey(apiKey), TestEventCode: strings.TrimSpace(in.TestEventCode),
		PartialLeads: true}
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
