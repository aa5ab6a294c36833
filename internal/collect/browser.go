package collect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/capirelay/capirelay/internal/event"
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
// country db. Values are raw (never logged, never sent to Meta unhashed);
// an empty value means the visitor erased the field.
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

// collect serves POST /e: the request is admitted (rate, site, origin),
// read, sorted into events, captures and consent answers, and the events
// submitted; it answers 204 once they are stored.
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
	buf := bodyBufs.Get().(*[]byte)
	defer putBodyBuf(buf)
	site, body, err := b.readRequest(w, r, buf)
	if err != nil {
		return err
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
	var s sorted
	if err := b.sortEvents(&s, &v, body); err != nil {
		return err
	}
	if b.counters != nil {
		b.counters.received().Add(float64(len(s.ins)))
	}
	if err := b.release(r.Context(), &v, s.consents); err != nil {
		return err
	}
	rejected, err := b.submit(r.Context(), site.Key, s.ins)
	if err != nil {
		return err
	}
	if err := b.capture(r.Context(), site, &s); err != nil {
		return err
	}
	v.setCookies(w)
	if rejected > 0 {
		w.Header().Set("X-Capirelay-Rejected", strconv.Itoa(rejected))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// release answers the request's consent events: the events held for the
// visitor (and for the visitor id the page had before, prev) are released
// on a grant, completed with its fbp and fbc, or deleted on a denial.
func (b *Browser) release(ctx context.Context, v *visit, consents []browserEvent) error {
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
			if _, err := b.Pipeline.ReleaseHeld(ctx, v.site.Key, id, granted, fill); err != nil {
				if b.Logger != nil {
					b.Logger.Error("release held events", "site", v.site.Key, "err", err)
				}
				return errBrowserStore
			}
		}
	}
	return nil
}

// submit hands the events to the pipeline, counts what became of them and
// wakes the dispatcher. It returns how many were rejected, or the
// request's refusal when all of them were (naming the first one's field).
func (b *Browser) submit(ctx context.Context, site string, ins []pipeline.Input) (rejected int, err error) {
	if len(ins) == 0 {
		return 0, nil
	}
	results, err := b.Pipeline.Submit(ctx, ins)
	if err != nil {
		// A store that refuses writes is logged by the pipeline's
		// observer, once per interval with a count.
		if errors.Is(err, store.ErrUnavailable) {
			return 0, errBrowserRefused
		}
		if errors.Is(err, pipeline.ErrStore) {
			logStoreFailure(ctx, b.Logger, "store browser events", site, err)
		}
		return 0, errBrowserStore
	}
	sum := results.Summary()
	if b.counters != nil {
		c := b.counters.site(site)
		c.accepted.Add(float64(sum.Accepted))
		c.duplicates.Add(float64(sum.Duplicates))
		c.rejected.Add(float64(sum.Rejected))
	}
	if b.Notify != nil && sum.Accepted > 0 {
		b.Notify(site, sum.Accepted)
	}
	if sum.Rejected == len(results) {
		if first := results[sum.FirstRejected].Err; first != nil {
			return 0, fieldHTTPError(first)
		}
	}
	return sum.Rejected, nil
}

// capture passes the request's form captures, then its submits, to
// OnCapture.
func (b *Browser) capture(ctx context.Context, site *store.Site, s *sorted) error {
	if b.OnCapture == nil {
		return nil
	}
	for _, c := range append(s.captures, s.submits...) {
		if err := b.OnCapture(ctx, site, c); err != nil {
			if b.Logger != nil {
				b.Logger.Error("capture lead session", "site", site.Key, "err", err)
			}
			return errBrowserStore
		}
	}
	return nil
}

var (
	errBrowserTooLarge = &httpError{Kind: errTooLarge, Field: "body", Message: fmt.Sprintf("is larger than %d bytes", MaxBrowserBody)}
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
