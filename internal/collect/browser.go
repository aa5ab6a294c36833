package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/fbcookie"
	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// MaxBrowserBody is the largest /e request body (DESIGN.md: 64 KiB).
const MaxBrowserBody = 64 << 10

// maxBrowserEvents caps the events of one /e request; the tag batches the
// events of one tick, which is a handful.
const maxBrowserEvents = 50

// Browser handles POST /e (and its CORS preflight) from the tag: it checks
// the site key and the page's origin, drops bots, enriches events with the
// client IP, user agent, _fbp/_fbc and visitor id, submits them to the
// pipeline as website events, and sets or refreshes the first-party cookies.
// It answers 204 only once the pipeline has durably stored the events.
//
// The zero values of the optional fields are documented on each. Browser is
// safe for concurrent use once serving starts; do not change its fields
// afterwards.
type Browser struct {
	Sites    store.Sites
	Pipeline *pipeline.Pipeline
	Metrics  *metrics.Metrics // nil: nothing is counted
	Logger   *slog.Logger     // nil: nothing is logged
	// TrustedProxies are the proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (see ClientIP). nil: none.
	TrustedProxies []netip.Prefix
	// SecureCookies marks the cookies Secure whatever the request says
	// (CAPIRELAY_PUBLIC_URL is https: a TLS proxy in front).
	SecureCookies bool
	Now           func() time.Time // nil: time.Now
	// PerIPRate and PerIPBurst limit requests per client address (an IPv6
	// /64). Zero: DefaultPerIPRate and DefaultPerIPBurst; rate.Inf: no limit.
	PerIPRate  rate.Limit
	PerIPBurst int
	// OnCapture receives form captures and submits (lead sessions); a
	// submit is passed after its event is stored. nil: captures are ignored.
	// An error answers 503, so the tag retries.
	OnCapture func(ctx context.Context, site *store.Site, c Capture) error
	// Notify, if set, is told how many events a site just queued (it wakes
	// the dispatcher).
	Notify func(site string, n int)

	once      sync.Once
	limiter   *ipLimiter
	counters  *browserCounters // nil without Metrics
	untrusted untrustedProxies
}

// Capture is what a visitor typed into one form so far, or the whole form
// at submit. Field names are Meta's user_data keys: em ph fn ln ct st zp
// country db. Values are raw (never logged, never sent to Meta unhashed).
type Capture struct {
	VisitorID string
	FormID    string
	Fields    map[string]string
	Submitted bool
	At        time.Time
	PageURL   string
	Fbp, Fbc  string
	IP, UA    string
	Consent   string
}

// browserBody is what the tag posts (text/plain JSON, so no preflight).
type browserBody struct {
	V         int            `json:"v"`
	Site      string         `json:"site"` // when not in the query string
	VisitorID string         `json:"vid"`
	Fbp       string         `json:"fbp"`
	Fbc       string         `json:"fbc"`
	Consent   string         `json:"consent"` // "", "granted" or "denied"
	Lang      string         `json:"lang"`    // navigator.language
	URL       string         `json:"url"`     // page URL when events lack one
	Events    []browserEvent `json:"events"`
}

type browserEvent struct {
	Type   string            `json:"type"` // "event" (default), "capture" or "consent"
	Name   string            `json:"name"`
	ID     string            `json:"id"`
	URL    string            `json:"url"`
	Ref    string            `json:"ref"`
	Data   json.RawMessage   `json:"data"` // custom_data
	User   map[string]string `json:"user"` // identify and form fields
	Form   string            `json:"form"`
	Submit bool              `json:"submit"`
	Fields map[string]string `json:"fields"` // capture
	State  string            `json:"state"`  // consent
	Prev   string            `json:"prev"`   // consent: the page's visitor id before
}

// userKeys are the user_data keys a browser may send, with the aliases a
// hand-written integration might use.
var userKeys = map[string]string{
	"em": "em", "ph": "ph", "fn": "fn", "ln": "ln", "db": "db", "ge": "ge", "ct": "ct", "st": "st",
	"zp": "zp", "country": "country", "external_id": "external_id",
	"email": "em", "phone": "ph", "first_name": "fn", "last_name": "ln", "dob": "db", "gender": "ge",
	"city": "ct", "state": "st", "zip": "zp",
}

// captureKeys are the fields a form capture may carry.
var captureKeys = map[string]bool{"em": true, "ph": true, "fn": true, "ln": true, "ct": true, "st": true, "zp": true, "country": true, "db": true}

const maxValueLen = 1000

func (b *Browser) init() {
	b.once.Do(func() {
		r, burst := b.PerIPRate, b.PerIPBurst
		if r == 0 {
			r = DefaultPerIPRate
		}
		if burst == 0 {
			burst = DefaultPerIPBurst
		}
		b.limiter = newIPLimiter(r, burst, maxLimiters)
		if b.Metrics != nil {
			b.counters = newBrowserCounters(b.Metrics)
		}
	})
}

func (b *Browser) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// ServeHTTP serves POST /e and OPTIONS /e.
func (b *Browser) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.init()
	var err error
	switch r.Method {
	case http.MethodOptions:
		err = b.preflight(w, r)
	case http.MethodPost:
		err = b.collect(w, r)
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		err = &httpError{Kind: errMethod, Message: "use POST"}
	}
	if err == nil {
		return
	}
	var he *httpError
	if errors.As(err, &he) {
		lvl := slog.LevelInfo
		if he.status() >= 500 {
			lvl = slog.LevelError
		}
		if b.Logger != nil && he != errBrowserRefused {
			b.Logger.Log(r.Context(), lvl, "browser request refused", "site", r.URL.Query().Get("site"),
				"status", he.status(), "field", he.Field, "reason", he.Message)
		}
	}
	writeError(w, err)
}

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
		return nil, "", &httpError{Kind: errForbidden, Field: "Origin", Message: "missing Origin and Referer"}
	}
	if !originAllowed(site, host) {
		return nil, "", &httpError{Kind: errForbidden, Field: "Origin", Message: "is not one of the site's domains"}
	}
	return site, origin, nil
}

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
// ignored. The demo site also admits localhost and loopback addresses.
func originAllowed(site *store.Site, host string) bool {
	for _, d := range site.Domains {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if d != "" && isDomainOrSub(host, d) {
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

func (b *Browser) preflight(w http.ResponseWriter, r *http.Request) error {
	varyOrigin(w)
	_, origin, err := b.site(r, queryParam(r.URL.RawQuery, "site"))
	if err != nil {
		return err
	}
	cors(w, origin)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "POST")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// visit is everything known about the request, shared by its events.
type visit struct {
	site     *store.Site
	now      time.Time
	ip       netip.Addr
	ua       string
	vid      string
	fbp, fbc string
	consent  string
	allowed  bool // cookies and captures allowed (spec §9)
	region   string
	pageURL  string
	// cookies: the relay runs under the page's site, so the cookies are
	// set on domain (Secure when secure); clear: the visitor denied
	// consent, so every copy is removed instead.
	cookies bool
	clear   bool
	domain  fbcookie.Domain
	secure  bool
}

func (b *Browser) collect(w http.ResponseWriter, r *http.Request) error {
	ip := ClientIP(r, b.TrustedProxies)
	now := b.now()
	b.noteForwarded(r, now)
	if ip.IsValid() && !b.limiter.allow(ip, now) {
		if b.Metrics != nil {
			b.Metrics.RateLimited.WithLabelValues("e").Inc()
		}
		return &httpError{Kind: errTooMany, Message: "too many requests from this address"}
	}
	varyOrigin(w)
	key := queryParam(r.URL.RawQuery, "site")
	var (
		site   *store.Site
		origin string
		err    error
	)
	if key != "" { // refuse a stranger before reading its body
		if site, origin, err = b.site(r, key); err != nil {
			return err
		}
		cors(w, origin)
	}
	if r.ContentLength > MaxBrowserBody {
		return errBrowserTooLarge
	}
	buf := bodyBufs.Get().(*[]byte)
	defer putBodyBuf(buf)
	raw, err := readBody(w, r, (*buf)[:0])
	*buf = raw
	if err != nil {
		return err
	}
	// The tag sends UTF-8 (JSON.stringify escapes lone surrogates), so a
	// body that is not is refused, not repaired: bytes kept raw in
	// custom_data would make Meta's request invalid JSON.
	if err := event.CheckUTF8(raw, ""); err != nil {
		return fieldHTTPError(err)
	}
	body, err := parseBrowserBody(r, raw)
	if err != nil {
		return err
	}
	if site == nil {
		if site, origin, err = b.site(r, body.Site); err != nil {
			return err
		}
		cors(w, origin)
	}
	ua := r.UserAgent()
	if IsBot(ua) {
		if b.Metrics != nil {
			b.Metrics.BotsDropped.Inc()
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := validateBrowserBody(body); err != nil {
		return err
	}
	var v visit
	b.visit(&v, r, site, body, ip, ua, now)

	ins := make([]pipeline.Input, 0, len(body.Events))
	var captures, submits []Capture
	var consents []browserEvent
	for i := range body.Events {
		e := &body.Events[i]
		path := eventPath(i)
		switch e.Type {
		case "capture":
			if n := dropCards(e.Fields); n > 0 {
				b.countCards(n) // a payment form: none of it is kept
				continue
			}
			if v.allowed && v.consent != pipeline.ConsentDenied {
				captures = append(captures, v.capture(e.Form, e.Fields, false, b.eventURL(e, body)))
			}
		case "consent":
			consents = append(consents, *e)
		default:
			if v.consent == pipeline.ConsentDenied {
				continue // the visitor said no: nothing is stored
			}
			b.countCards(dropCards(e.User))
			ev, err := v.event(e, b.eventURL(e, body), path)
			if err != nil {
				return err
			}
			ins = append(ins, pipeline.Input{Site: site, Event: ev, Path: path, Source: pipeline.SourceBrowser,
				VisitorID: v.vid, Consent: v.consent, Region: v.region})
			if e.Submit && v.allowed {
				submits = append(submits, v.capture(e.Form, e.User, true, ev.EventSourceURL))
			}
		}
	}
	if b.counters != nil {
		b.counters.received().Add(float64(len(ins)))
	}

	for _, c := range consents {
		granted := c.State == pipeline.ConsentGranted
		var fill store.HeldFill
		if granted {
			fill = heldFill(v.fbp, v.fbc)
		}
		for _, id := range []string{v.vid, c.Prev} {
			if !validVisitorID(id) {
				continue
			}
			if _, err := b.Pipeline.Store.ReleaseHeld(r.Context(), site.Key, id, granted, fill); err != nil {
				if b.Logger != nil {
					b.Logger.Error("release held events", "site", site.Key, "err", err)
				}
				return errBrowserStore
			}
		}
	}
	rejected := 0
	if len(ins) > 0 {
		// Prepare is CPU-bound: inside the pipeline's gate; the wait for
		// the commit outside it.
		if err := b.Pipeline.Gate.Enter(r.Context(), site.Key); err != nil {
			return errBrowserStore
		}
		since := time.Now()
		prepared := b.Pipeline.PrepareInGate(r.Context(), ins, site.Key, since)
		b.Pipeline.Gate.Leave()
		results, err := prepared.Commit(r.Context())
		if err != nil {
			// A store that refuses writes is logged by the pipeline's
			// observer, once per interval with a count.
			if errors.Is(err, store.ErrUnavailable) {
				return errBrowserRefused
			}
			if b.Logger != nil {
				b.Logger.Error("store browser events", "site", site.Key, "err", err)
			}
			return errBrowserStore
		}
		var accepted, dup int
		var first error
		for _, res := range results {
			switch res.Status {
			case pipeline.Accepted:
				accepted++
			case pipeline.Duplicate:
				dup++
			case pipeline.Rejected:
				rejected++
				if first == nil {
					first = res.Err
				}
			}
		}
		if b.counters != nil {
			c := b.counters.site(site.Key)
			c.accepted.Add(float64(accepted))
			c.duplicates.Add(float64(dup))
			c.rejected.Add(float64(rejected))
		}
		if b.Notify != nil && accepted > 0 {
			b.Notify(site.Key, accepted)
		}
		if rejected == len(results) && first != nil {
			return fieldHTTPError(first)
		}
	}
	if b.OnCapture != nil {
		for _, c := range append(captures, submits...) {
			if err := b.OnCapture(r.Context(), site, c); err != nil {
				if b.Logger != nil {
					b.Logger.Error("capture lead session", "site", site.Key, "err", err)
				}
				return errBrowserStore
			}
		}
	}
	v.setCookies(w)
	if rejected > 0 {
		w.Header().Set("X-Capirelay-Rejected", strconv.Itoa(rejected))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// eventPath is "events[i]", the path of event i in error messages and
// results; the paths of the events a request may carry are built once.
func eventPath(i int) string {
	if i < len(eventPaths) {
		return eventPaths[i]
	}
	return "events[" + strconv.Itoa(i) + "]"
}

var eventPaths = func() (p [maxBrowserEvents]string) {
	for i := range p {
		p[i] = "events[" + strconv.Itoa(i) + "]"
	}
	return p
}()

// bodyBufs holds the buffers /e bodies are read into: nothing decoded from
// a body refers to its bytes (strings and custom data are copies).
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledBody: a buffer grown beyond this by a large body is dropped,
// not kept.
const maxPooledBody = 16 << 10

func putBodyBuf(b *[]byte) {
	if cap(*b) <= maxPooledBody {
		*b = (*b)[:0]
		bodyBufs.Put(b)
	}
}

// readBody reads r's body into b, up to MaxBrowserBody. A body of known
// length (already checked against the limit) is read as it is, one byte
// past the limit at most: net/http delivers no more than Content-Length.
// Any other body (chunked) is read through http.MaxBytesReader.
func readBody(w http.ResponseWriter, r *http.Request, b []byte) ([]byte, error) {
	var err error
	if r.ContentLength >= 0 && r.ContentLength <= MaxBrowserBody {
		if int64(cap(b)) <= r.ContentLength {
			b = make([]byte, 0, r.ContentLength+1)
		}
		b, err = readAll(r.Body, b, MaxBrowserBody+1)
		if err == nil && len(b) > MaxBrowserBody {
			return b, errBrowserTooLarge
		}
	} else {
		b, err = readAll(http.MaxBytesReader(w, r.Body, MaxBrowserBody), b, -1)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return b, errBrowserTooLarge
		}
		return b, &httpError{Kind: errBadRequest, Message: "cannot read request body"}
	}
	return b, nil
}

// readAll is io.ReadAll appending to b; with max >= 0 it stops once b
// holds max bytes.
func readAll(r io.Reader, b []byte, max int) ([]byte, error) {
	for max < 0 || len(b) < max {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		end := cap(b)
		if max >= 0 {
			end = min(end, max)
		}
		n, err := r.Read(b[len(b):end])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
	}
	return b, nil
}

var (
	errBrowserTooLarge = &httpError{Kind: errTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", MaxBrowserBody)}
	errBrowserStore    = &httpError{Kind: errUnavailable, Message: "events could not be stored; retry later"}
	// errBrowserRefused is errBrowserStore for a store that refuses
	// writes, which is not logged per request (see pipeline.WriteObserver).
	errBrowserRefused = &httpError{Kind: errUnavailable, Message: "events could not be stored; retry later"}
)

func fieldHTTPError(err error) error {
	var fe *event.FieldError
	if errors.As(err, &fe) {
		return &httpError{Kind: errBadRequest, Field: fe.Field, Message: fe.Message}
	}
	return &httpError{Kind: errBadRequest, Message: err.Error()}
}

// parseBrowserBody decodes the body: JSON sent as text/plain (sendBeacon)
// or application/json. Unknown fields are ignored, so a cached tag newer or
// older than the relay keeps working.
func parseBrowserBody(r *http.Request, raw []byte) (*browserBody, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !knownBodyType(ct) {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "text/plain" && mt != "application/json") {
			return nil, &httpError{Kind: errMediaType, Field: "Content-Type", Message: "must be text/plain or application/json"}
		}
	}
	if body, ok := fastBrowserBody(raw); ok {
		return body, nil
	}
	return slowBrowserBody(raw)
}

// knownBodyType reports whether ct is one of the Content-Types browsers
// send with the tag's body, spelled exactly as they do; each is a media
// type mime.ParseMediaType accepts as text/plain or application/json.
func knownBodyType(ct string) bool {
	for _, k := range knownBodyTypes {
		if ct == k {
			return true
		}
	}
	return false
}

var knownBodyTypes = []string{"text/plain;charset=UTF-8", "text/plain; charset=UTF-8", "text/plain;charset=utf-8",
	"text/plain; charset=utf-8", "text/plain", "application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8"}

// slowBrowserBody decodes the body with encoding/json, and describes what
// is wrong with it.
func slowBrowserBody(raw []byte) (*browserBody, error) {
	var body browserBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&body); err != nil {
		var fe *event.FieldError
		if errors.As(event.DescribeJSONError(err, ""), &fe) {
			return nil, &httpError{Kind: errBadRequest, Field: fe.Field, Message: fe.Message}
		}
		return nil, &httpError{Kind: errBadRequest, Message: "malformed JSON"}
	}
	if dec.More() {
		return nil, &httpError{Kind: errBadRequest, Message: "malformed JSON: trailing data after the object"}
	}
	return &body, nil
}

// validateBrowserBody refuses a request with a bad field before anything is
// stored.
func validateBrowserBody(body *browserBody) error {
	bad := func(field, msg string) error {
		return &httpError{Kind: errBadRequest, Field: field, Message: msg}
	}
	switch body.Consent {
	case pipeline.ConsentUnknown, pipeline.ConsentGranted, pipeline.ConsentDenied:
	default:
		return bad("consent", `must be "granted", "denied" or empty`)
	}
	if len(body.Events) == 0 {
		return bad("events", "is empty")
	}
	if len(body.Events) > maxBrowserEvents {
		return bad("events", fmt.Sprintf("has %d events; at most %d per request", len(body.Events), maxBrowserEvents))
	}
	for i := range body.Events {
		e := &body.Events[i]
		p := "events[" + strconv.Itoa(i) + "]."
		if len(e.Form) > 200 {
			return bad(p+"form", "is longer than 200 characters")
		}
		switch e.Type {
		case "", "event":
			if strings.TrimSpace(e.Name) == "" {
				return bad(p+"name", "is required")
			}
			if len(e.Data) > 0 && !bytes.Equal(bytes.TrimSpace(e.Data), []byte("null")) && bytes.TrimSpace(e.Data)[0] != '{' {
				return bad(p+"data", "must be an object (custom_data)")
			}
			for k, val := range e.User {
				if userKeys[k] == "" {
					return bad(p+"user."+k, "is not a user_data key (em, ph, fn, ln, db, ge, ct, st, zp, country, external_id)")
				}
				if len(val) > maxValueLen {
					return bad(p+"user."+k, "is too long")
				}
			}
		case "capture":
			for k, val := range e.Fields {
				if !captureKeys[userKeys[k]] {
					return bad(p+"fields."+k, "is not a capturable field (em, ph, fn, ln, ct, st, zp, country, db)")
				}
				if len(val) > maxValueLen {
					return bad(p+"fields."+k, "is too long")
				}
			}
		case "consent":
			if e.State != pipeline.ConsentGranted && e.State != pipeline.ConsentDenied {
				return bad(p+"state", `must be "granted" or "denied"`)
			}
		default:
			return bad(p+"type", `must be "event", "capture" or "consent"`)
		}
	}
	return nil
}

// eventURL is the page an event happened on: its own url, the body's, or
// the Referer.
func (b *Browser) eventURL(e *browserEvent, body *browserBody) string {
	for _, u := range []string{e.URL, body.URL} {
		if u != "" {
			return u
		}
	}
	return ""
}

// visit gathers the request-wide facts into v and decides the cookies.
func (b *Browser) visit(v *visit, r *http.Request, site *store.Site, body *browserBody, ip netip.Addr, ua string, now time.Time) {
	*v = visit{site: site, now: now, ip: ip, ua: ua, consent: body.Consent, region: regionOf(body.Lang)}
	// Spec §9: without the required consent no cookie is read, minted or
	// refreshed and nothing typed is captured.
	v.allowed = body.Consent == pipeline.ConsentGranted ||
		(body.Consent != pipeline.ConsentDenied && site.Consent != store.ConsentRequired)
	for i := range body.Events {
		if v.pageURL = b.eventURL(&body.Events[i], body); v.pageURL != "" {
			break
		}
	}
	if v.pageURL == "" {
		v.pageURL = r.Header.Get("Referer")
	}
	if validVisitorID(body.VisitorID) {
		v.vid = body.VisitorID
	}
	_, pageHost := requestOrigin(r)
	if !v.allowed {
		// Denied: the relay's copies of the cookies go too (the tag
		// removes the ones it can reach).
		if body.Consent == pipeline.ConsentDenied && hasConsentEvent(body) {
			v.domain, v.clear = fbcookie.FirstPartyDomain(r.Host, pageHost, nil)
			v.secure = b.secure(r)
		}
		return
	}
	// The body wins: the tag read the page's own cookies. The relay's
	// cookies are a fallback, for when it runs under the site's domain.
	fbp, fbc := body.Fbp, body.Fbc
	if fbp == "" {
		fbp = cookieValue(r, fbcookie.FbpName)
	}
	if fbc == "" {
		fbc = cookieValue(r, fbcookie.FbcName)
	}
	if v.vid == "" {
		if c := cookieValue(r, VisitorCookie); validVisitorID(c) {
			v.vid = c
		}
	}
	var ref string
	for i := range body.Events {
		if e := &body.Events[i]; e.Ref != "" {
			ref = e.Ref
			break
		}
	}
	clickID := fbcookie.ClickID(v.pageURL, ref)

	// Cookies can only be set for the relay's own host. They help only
	// when that is the page's site (the relay under the site's domain);
	// for a third-party relay they would be third-party cookies, so none
	// are set and nothing is minted that could not be kept. They go on the
	// registrable domain, as the tag's and the Pixel's do (whatever domain
	// the site is configured with): one copy of each.
	if d, sameSite := fbcookie.FirstPartyDomain(r.Host, pageHost, nil); sameSite {
		st := fbcookie.Resolve(now, d.Index, fbp, fbc, clickID)
		v.fbp, v.fbc = st.Fbp, st.Fbc
		if v.vid == "" {
			v.vid = newVisitorID()
		}
		v.cookies, v.domain = true, d
		v.secure = b.secure(r)
		return
	}
	if fbcookie.Valid(fbp) {
		v.fbp = fbp
	}
	// D-FBC: with a click id in the URL and no usable _fbc, fbc may still
	// be built and sent, at the index of the page's own domain (which is
	// looked up only then).
	idx := 0
	if fbcookie.UsableClickID(clickID) {
		idx = fbcookie.CookieDomain(pageHost, nil).Index
	}
	v.fbc, _ = fbcookie.ResolveFbc(now, idx, fbc, clickID)
}

// setCookies sets or refreshes the first-party cookies decided by visit.
// The values are written into one buffer and become substrings of one
// string: two allocations for the three headers.
func (v *visit) setCookies(w http.ResponseWriter) {
	if v.clear {
		clearCookies(w, v.domain, v.secure)
	}
	if !v.cookies {
		return
	}
	var a [512]byte
	var ends [3]int
	b, n := a[:0], 0
	add := func(name, value string, maxAge time.Duration) {
		l := len(b)
		if b = appendBrowserCookie(b, name, value, v.domain, maxAge, v.secure); len(b) > l {
			ends[n] = len(b)
			n++
		}
	}
	add(fbcookie.FbpName, v.fbp, fbcookie.MaxAge)
	if v.fbc != "" {
		add(fbcookie.FbcName, v.fbc, fbcookie.MaxAge)
	}
	add(VisitorCookie, v.vid, VisitorMaxAge)
	if n == 0 {
		return
	}
	all := string(b)
	h := w.Header()
	old := h["Set-Cookie"]
	cs := append(make([]string, 0, len(old)+n), old...)
	start := 0
	for _, end := range ends[:n] {
		cs = append(cs, all[start:end])
		start = end
	}
	h["Set-Cookie"] = cs
}

// event builds the canonical event for one tag event.
func (v *visit) event(e *browserEvent, pageURL, path string) (*event.Event, error) {
	if !absoluteHTTP(pageURL) {
		return nil, &httpError{Kind: errBadRequest, Field: path + ".url", Message: "must be the page's absolute http(s) URL"}
	}
	a := new(eventAlloc)
	a.ev = event.Event{
		EventName:      strings.TrimSpace(e.Name),
		EventTime:      event.Time(v.now.Unix()), // the browser's clock may be off (spec §10 pitfall 12)
		EventID:        e.ID,
		ActionSource:   "website",
		EventSourceURL: pageURL,
	}
	ev := &a.ev
	if absoluteHTTP(e.Ref) {
		ev.ReferrerURL = e.Ref
	}
	if d := bytes.TrimSpace(e.Data); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		ev.CustomData = append(json.RawMessage(nil), d...)
	}
	u := &ev.UserData
	for k, val := range e.User {
		if val = strings.TrimSpace(val); val == "" {
			continue
		}
		if l := u.List(userKeys[k]); l != nil {
			*l = append(*l, val)
		}
	}
	if v.vid != "" {
		if len(u.ExternalID) == 0 {
			a.externalID[0] = v.vid
			u.ExternalID = a.externalID[:1:1]
		} else {
			u.ExternalID = append(u.ExternalID, v.vid)
		}
	}
	if v.ip.IsValid() {
		u.ClientIPAddress = v.ip.String()
	}
	u.ClientUserAgent = v.ua
	u.Fbp, u.Fbc = v.fbp, v.fbc
	if err := ev.CheckLimits(path); err != nil {
		return nil, fieldHTTPError(err)
	}
	if err := ev.Prepare(v.now, path); err != nil {
		return nil, fieldHTTPError(err)
	}
	return ev, nil
}

// eventAlloc is an event with room for the visitor id as its external_id:
// one allocation, not two.
type eventAlloc struct {
	ev         event.Event
	externalID [1]string
}

func (v *visit) capture(form string, fields map[string]string, submitted bool, pageURL string) Capture {
	c := Capture{VisitorID: v.vid, FormID: form, Fields: map[string]string{}, Submitted: submitted, At: v.now,
		PageURL: pageURL, Fbp: v.fbp, Fbc: v.fbc, UA: v.ua, Consent: v.consent}
	if v.ip.IsValid() {
		c.IP = v.ip.String()
	}
	for k, val := range fields {
		if k = userKeys[k]; captureKeys[k] {
			if val = strings.TrimSpace(val); val != "" {
				c.Fields[k] = val
			}
		}
	}
	return c
}

// regionOf turns a BCP 47 language tag (navigator.language) into a lower-case
// ISO 3166 alpha-2 region hint: en-US → us, zh-Hant-TW → tw, de → "".
func regionOf(lang string) string {
	first := true // the language subtag is no region
	for lang != "" {
		i := strings.IndexAny(lang, "-_")
		if i < 0 {
			i = len(lang)
		}
		p := lang[:i]
		lang = lang[min(i+1, len(lang)):]
		if p == "" {
			continue
		}
		if !first && len(p) == 2 && isLetters(p) {
			return regionCodes[(p[0]|0x20)-'a'][(p[1]|0x20)-'a']
		}
		first = false
	}
	return ""
}

// regionCodes holds every two-letter lower-case region code, so regionOf
// does not allocate.
var regionCodes = func() (t [26][26]string) {
	for a := range t {
		for b := range t[a] {
			t[a][b] = string([]byte{byte('a' + a), byte('a' + b)})
		}
	}
	return t
}()

func isLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}
