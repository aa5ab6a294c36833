package collect

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"

	"github.com/capirelay/capirelay/internal/fbcookie"
	"github.com/capirelay/capirelay/internal/store"
)

// site looks up the site named in the query string (or, failing that, by
// fallback) and checks that the request comes from one of its pages. It
// returns the page origin as the browser sent it.
func (b *Browser) site(r *http.Request, key string) (*store.Site, string, error) {
	if key == "" {
		return nil, "", &httpError{Kind: errBadRequest, Field: "site", Message: "is required (e?site=KEY)"}
	}
	site, err := b.Sites.Site(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", &httpError{Kind: errNotFound, Field: "site", Message: "unknown site key"}
	}
	if err != nil {
		return nil, "", &httpError{Kind: errUnavailable, Message: "site lookup failed, retry later", Err: err}
	}
	origin, host := requestOrigin(r)
	if host == "" {
		return nil, "", errNoOrigin
	}
	if !originAllowed(site, host) {
		return nil, "", &httpError{Kind: errForbidden, Field: "Origin", Message: "is not one of the site's domains"}
	}
	return site, origin, nil
}

var errNoOrigin = &httpError{Kind: errForbidden, Field: "Origin", Message: "missing Origin and Referer"}

// requestOrigin returns the Origin header (or the origin of the Referer
// when there is no Origin) and its host name without port, lower case.
func requestOrigin(r *http.Request) (origin, host string) {
	raw := r.Header.Get("Origin")
	if raw == "" || raw == "null" {
		raw = r.Header.Get("Referer")
	}
	return originOf(raw)
}

// originAllowed: a site domain admits itself and its subdomains; ports are
// ignored. A domain that is a public suffix (co.uk, github.io), which
// sitecfg refuses but a site stored before may have, admits only itself:
// its subdomains are anyone's sites, as its cookies would be
// (fbcookie.CookieDomain passes over it too). The demo site also admits
// localhost and loopback addresses.
func originAllowed(site *store.Site, host string) bool {
	for _, d := range site.Domains {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if d != "" && (host == d || isDomainOrSub(host, d) && !fbcookie.IsPublicSuffix(d)) {
			return true
		}
	}
	if site.Demo {
		if host == "localhost" || strings.HasSuffix(host, ".localhost") {
			return true
		}
		if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() {
			return true
		}
	}
	return false
}

// cors allows exactly the page's origin, with credentials so the relay's
// first-party cookies flow when it is served under the site's domain.
func cors(w http.ResponseWriter, origin string) {
	h := w.Header()
	h["Access-Control-Allow-Origin"] = []string{origin}
	h["Access-Control-Allow-Credentials"] = headerTrue
}

// varyOrigin sets Vary: Origin, once, before anything can be refused: an
// answer depends on the page's origin whatever it is.
func varyOrigin(w http.ResponseWriter) {
	h := w.Header()
	if len(h["Vary"]) == 0 {
		h["Vary"] = headerOrigin
	} else {
		h.Add("Vary", "Origin")
	}
}

// Header values every /e answer shares, set into the header map under
// their canonical keys (one slice per process rather than one per
// request). Their length is their capacity, so a later Header.Add appends
// to a copy; nothing may write into them.
var (
	headerOrigin = []string{"Origin"}[:1:1]
	headerTrue   = []string{"true"}[:1:1]
)
