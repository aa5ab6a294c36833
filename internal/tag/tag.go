// Package tag serves capirelay's first-party JavaScript tag, t.js.
//
// The file is the same for every site: the tag reads its site key from its
// own script URL (t.js?site=KEY) and posts to the "e" endpoint next to it, so
// it keeps working when the relay is proxied under a site's own path. The
// one thing that varies is the site's consent mode, which decides whether
// the tag may set cookies and capture fields before consent (spec §9); the
// handler writes it into the file as a small JSON config, so there are two
// variants, each built and gzipped once. t.js is the readable source;
// what is served is t.min.js, its minified form, written by esbuild (a Go
// library) from a test (minify_test.go), which also fails when the two
// disagree.
//
// The package knows no store: wiring gives the handler a ConfigFunc.
package tag

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

//go:embed t.min.js
var served []byte

// cfgMarker is where the tag takes its config: a global name no page
// defines, which the minifier keeps as it is.
const cfgMarker = "__CAPIRELAY_CFG__"

// Consent modes the tag understands (the values of store.Site.Consent).
const (
	ConsentNone     = "none"
	ConsentRequired = "required"
	ConsentLDU      = "ldu"
)

// Config is what the tag is told about its site.
type Config struct {
	// Consent is the site's consent mode. With ConsentRequired the tag sets
	// no cookie and captures nothing until capirelay('consent','granted').
	// Anything else (including "") behaves as ConsentNone in the browser.
	Consent string `json:"consent,omitempty"`
}

// ErrUnknownSite is returned (wrapped) by a ConfigFunc for a key that names
// no site; the handler answers 404.
var ErrUnknownSite = errors.New("unknown site key")

// MaxGzipSize is the budget of the served tag, gzipped. It was 3,072
// bytes (3 KiB); the payment-data guard (Luhn check, payment-field
// patterns in four languages), the lead-form rules with form.submit(),
// Meta's identify names, consent mirroring to fbq and the PageView rules
// took the hand-minified tag to 3,624 bytes. Minified by esbuild it is
// 3,402 (3,400 with consent "required"); the budget leaves 6 bytes,
// because esbuild's choice of short names shifts a few bytes with any
// edit of t.js. Growth beyond that has to be argued again: a page that
// starts with consent denied clears the ids, because an answer to an event
// sent before the denial can set the relay's copies again after it (a
// denial must hold): 3,415 bytes (3,413 "required"). A field the visitor
// blanks is sent as "" so the relay erases it too, without hiding an
// identify value: 3,426 (3,424 "required"). Card fields named cc_number,
// cc_exp or exp_month, a "Security code" and a card number placeholder
// mark a payment form, whose other fields must not leave the page: 3,509
// (3,507 "required"). A blank field the visitor never typed in erases
// nothing: 3,511 (3,510 "required").
const MaxGzipSize = 3515

// CacheControl lets browsers and CDNs keep the tag for five minutes and use a
// stale copy for a day while they revalidate, so a tag fix reaches every page
// within minutes without costing a page a blocking request.
const CacheControl = "public, max-age=300, stale-while-revalidate=86400"

// Handler serves GET /t.js?site=KEY. It is safe for concurrent use.
type Handler struct {
	// ConfigFunc returns the config of a site. nil: every key is served
	// the ConsentNone variant.
	ConfigFunc func(ctx context.Context, siteKey string) (Config, error)
	// Logger receives lookup failures; nil discards.
	Logger *slog.Logger

	once     sync.Once
	variants map[Config]*variant
	mu       sync.Mutex
}

type variant struct {
	body, gz []byte
	etag     string // strong: the SHA-256 of body
}

// Source returns the tag as served to a site with cfg (uncompressed):
// t.min.js with cfg in place of the config marker.
func Source(cfg Config) []byte {
	b, err := json.Marshal(cfg)
	if err != nil {
		panic("BUG: tag config does not marshal: " + err.Error())
	}
	return bytes.Replace(bytes.TrimSpace(served), []byte(cfgMarker), b, 1)
}

func newVariant(cfg Config) *variant {
	body := Source(cfg)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(body)
	zw.Close()
	sum := sha256.Sum256(body)
	return &variant{body: body, gz: buf.Bytes(), etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`}
}

// variant returns the (cached) variant for cfg. Known consent modes are
// built at the first request; any other config is built once on demand.
func (h *Handler) variant(cfg Config) *variant {
	h.once.Do(func() {
		h.variants = map[Config]*variant{}
		for _, m := range []string{ConsentNone, ConsentRequired} {
			h.variants[Config{Consent: m}] = newVariant(Config{Consent: m})
		}
	})
	switch cfg.Consent {
	case ConsentRequired:
	default:
		cfg.Consent = ConsentNone // LDU is applied by the server
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.variants[cfg]
	if !ok {
		v = newVariant(cfg)
		h.variants[cfg] = v
	}
	return v
}

// ServeHTTP serves the tag: 404 for an unknown site, 503 when the site
// cannot be looked up, 304 when If-None-Match matches, gzip when accepted.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	key := r.URL.Query().Get("site")
	if key == "" {
		http.Error(w, "missing ?site=KEY", http.StatusBadRequest)
		return
	}
	var cfg Config
	if h.ConfigFunc != nil {
		var err error
		cfg, err = h.ConfigFunc(r.Context(), key)
		switch {
		case errors.Is(err, ErrUnknownSite):
			http.Error(w, "unknown site key", http.StatusNotFound)
			return
		case err != nil:
			if h.Logger != nil {
				h.Logger.Error("tag config lookup failed", "site", key, "err", err)
			}
			w.Header().Set("Retry-After", "5")
			http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	v := h.variant(cfg)
	hd := w.Header()
	hd.Set("Cache-Control", CacheControl)
	hd.Set("ETag", v.etag)
	hd.Set("Vary", "Accept-Encoding")
	hd.Set("X-Content-Type-Options", "nosniff")
	if etagMatch(r.Header.Get("If-None-Match"), v.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", "text/javascript; charset=utf-8")
	body := v.body
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hd.Set("Content-Encoding", "gzip")
		body = v.gz
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// etagMatch implements If-None-Match's weak comparison (RFC 9110 §13.1.2).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q, ok := strings.CutPrefix(strings.TrimSpace(params), "q=")
		if !ok {
			return true
		}
		f, err := strconv.ParseFloat(q, 64)
		return err == nil && f > 0
	}
	return false
}

// Snippet returns the HTML a site pastes into its pages: a queue stub, so
// calls made before the tag loads are kept (as Meta's fbq does), and the
// async script. relayURL is the relay's base URL (scheme, host and optional
// path prefix).
func Snippet(relayURL, siteKey string) string {
	src := strings.TrimRight(relayURL, "/") + "/t.js?site=" + url.QueryEscape(siteKey)
	return `<script>window.capirelay=window.capirelay||function(){(capirelay.q=capirelay.q||[]).push(arguments)};</script>` +
		`<script async src="` + html.EscapeString(src) + `"></script>`
}
