// Package leads keeps lead sessions and turns abandoned ones into partial
// leads. The browser collector reports field captures (Capture); they
// accumulate per (site, visitor, form) in the store. A submit closes the
// session as a full lead. A session without submit and without activity for
// the site's PartialLeadTimeout becomes a partial lead when the sweeper
// (Run, Sweep) claims it: the due time lives in the store, so a restart
// loses no timer and a session becomes partial exactly once, even with
// several sweepers.
//
// Each partial lead is posted to the site's webhook (signed, retried with
// backoff, logged), can be exported as CSV with its raw values, and, when
// the site forwards partial leads and the visitor's consent allows, is sent
// to Meta as a CAPI event through the pipeline with an event_id derived
// from the session, so a retry never double sends. Raw values are sealed at
// rest by the store and purged after the site's retention.
package leads

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// FieldNames are the form fields a capture may carry, by their user_data
// key. Other keys are ignored.
var FieldNames = []string{"em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge"}

// maxValueLen bounds one captured value (bytes); longer values are cut.
const maxValueLen = 512

// ErrInvalid marks a capture that cannot be kept (no visitor or form id).
var ErrInvalid = errors.New("invalid lead capture")

// Capture is what the browser collector reports for one form of a visitor:
// the raw field values typed so far, and whether the form was submitted.
// Fields merge into the session's: a value sets its key, an empty value
// erases it (the visitor blanked the field), and an absent key keeps what
// the session has, since a capture from a later page load carries only
// that page's fields.
type Capture struct {
	VisitorID string
	FormID    string
	Fields    map[string]string // em ph fn ln ct st zp country db: raw values, "" erases
	Submitted bool
	At        time.Time // zero means now
	PageURL   string
	Fbp       string
	Fbc       string
	IP        string
	UA        string
	Consent   string // pipeline.ConsentGranted, ConsentDenied or "" (unknown)
}

// Store is what the service needs from the store.
type Store interface {
	store.Leads
	Site(ctx context.Context, key string) (*store.Site, error)
}

// Submitter submits events to the pipeline (*pipeline.Pipeline).
type Submitter interface {
	Submit(ctx context.Context, ins []pipeline.Input, opts ...pipeline.Option) (pipeline.Results, error)
}

// Service captures lead sessions and sweeps them. Its methods are safe for
// concurrent use; several services (processes) may share one store.
type Service struct {
	Store Store
	// Pipeline receives partial lead events; nil means they are never
	// forwarded.
	Pipeline Submitter
	Logger   *slog.Logger
	// NowFunc is the clock; nil means time.Now.
	NowFunc func() time.Time
	// Interval is how often Run sweeps; zero means one second, so that a
	// timeout of a few seconds is honoured closely.
	Interval time.Duration
	// BatchSize bounds the rows one claim takes; zero means 100.
	BatchSize int
	// WebhookMaxAttempts is how many times a webhook is tried before it is
	// dead; zero means DefaultWebhookMaxAttempts.
	WebhookMaxAttempts int
	// BackoffFunc gives the wait after failed attempt n (1-based); nil
	// means Backoff with random jitter.
	BackoffFunc func(attempt int) time.Duration

	clients sync.Map // netguard.Policy → *http.Client for webhooks
}

// New returns a service over st that forwards partial leads to p (may be
// nil) and logs to logger (nil means slog.Default()).
func New(st Store, p Submitter, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.Default()
	}
	return &Service{Store: st, Pipeline: p, Logger: logger.With("component", "leads")}
}

func (s *Service) now() time.Time {
	if s.NowFunc != nil {
		return s.NowFunc()
	}
	return time.Now()
}

func (s *Service) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

func (s *Service) batch() int {
	if s.BatchSize > 0 {
		return s.BatchSize
	}
	return 100
}

// errNothing aborts an upsert that has nothing to store.
var errNothing = errors.New("nothing to store")

// Capture records a capture of site: it opens or extends the visitor's
// session of the form (pushing its due time to At + the site's timeout),
// closes it as a full lead on submit, and marks a partial lead converted
// when its visitor submits after all (the Lead itself is the collector's
// event; no second one is sent here). Nothing is kept when the site does
// not capture partial leads, or requires consent and the visitor denied it
// (spec §9). It returns ErrInvalid without a visitor or form id.
func (s *Service) Capture(ctx context.Context, site *store.Site, c Capture) error {
	if !site.PartialLeads {
		return nil
	}
	if site.Consent == store.ConsentRequired && c.Consent == pipeline.ConsentDenied {
		return nil
	}
	c.VisitorID, c.FormID = strings.TrimSpace(c.VisitorID), strings.TrimSpace(c.FormID)
	if c.VisitorID == "" || c.FormID == "" {
		return fmt.Errorf("%w: visitor and form id are required", ErrInvalid)
	}
	at := c.At
	if at.IsZero() {
		at = s.now()
	}
	timeout := site.PartialLeadTimeout
	if timeout <= 0 {
		timeout = store.DefaultPartialLeadTimeout
	}
	retention := site.Retention
	if retention <= 0 {
		retention = store.DefaultRetention
	}
	fields, cleared := cleanFields(c.Fields)
	_, err := s.Store.UpsertLead(ctx, site.Key, c.VisitorID, c.FormID, func(l *store.Lead) error {
		if l.ID == 0 {
			// A capture that only clears has nothing to erase yet.
			if len(fields) == 0 && (c.PageURL == "" || len(cleared) > 0) {
				return errNothing
			}
			l.State, l.StartedAt, l.UpdatedAt = store.LeadOpen, at, at
		}
		if l.Data.Fields == nil {
			l.Data.Fields = map[string]string{}
		}
		for k, v := range fields {
			l.Data.Fields[k] = v
		}
		for _, k := range cleared {
			delete(l.Data.Fields, k)
		}
		setIf(&l.Data.PageURL, c.PageURL)
		setIf(&l.Data.Fbp, c.Fbp)
		setIf(&l.Data.Fbc, c.Fbc)
		setIf(&l.Data.IP, c.IP)
		setIf(&l.Data.UA, c.UA)
		setIf(&l.Consent, c.Consent)
		if at.After(l.UpdatedAt) {
			l.UpdatedAt = at
		}
		l.ExpiresAt = l.UpdatedAt.Add(retention)
		l.EmailHash, l.PhoneHash = contactHashes(site, l.Data.Fields)
		switch l.State {
		case store.LeadOpen:
			if c.Submitted {
				l.State, l.ClosedAt, l.DueAt = store.LeadSubmitted, at, time.Time{}
			} else if due := at.Add(timeout); due.After(l.DueAt) {
				l.DueAt = due
			}
		case store.LeadPartial:
			// A partial lead takes later values but fires no second time.
			if c.Submitted {
				l.State, l.ClosedAt = store.LeadConverted, at
				if l.ForwardState == store.ForwardPending {
					l.ForwardState, l.ForwardError = store.ForwardSkipped, "converted before forwarding"
				}
			}
		}
		return nil
	})
	if errors.Is(err, errNothing) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("capture lead of site %s: %w", site.Key, err)
	}
	return nil
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// cleanFields returns the known fields of in with a value, trimmed and
// bounded, and the known keys whose value is empty: those the visitor
// erased.
func cleanFields(in map[string]string) (set map[string]string, cleared []string) {
	set = make(map[string]string, len(in))
	for _, k := range FieldNames {
		v, ok := in[k]
		if v = strings.TrimSpace(v); v == "" {
			if ok {
				cleared = append(cleared, k)
			}
			continue
		}
		if len(v) > maxValueLen {
			v = strings.ToValidUTF8(v[:maxValueLen], "")
		}
		set[k] = v
	}
	return set, cleared
}

// contactHashes returns the user_data hashes of the em and ph fields, as
// the pipeline would compute them, so erasure can find the lead.
func contactHashes(site *store.Site, fields map[string]string) (em, ph string) {
	ud := normalize.UserData{}
	if v := fields["em"]; v != "" {
		ud.Em = []string{v}
	}
	if v := fields["ph"]; v != "" {
		ud.Ph = []string{v}
	}
	if v := fields["country"]; v != "" {
		ud.Country = []string{v}
	}
	h := normalize.HashUserData(&ud, normalize.Options{Region: site.DefaultRegion})
	if len(h.Em) > 0 {
		em = h.Em[0]
	}
	if len(h.Ph) > 0 {
		ph = h.Ph[0]
	}
	return em, ph
}

// EventID is the event_id of a partial lead's CAPI event: derived from the
// session alone, so every retry carries the same id and the store's dedup
// (and Meta's) drops repeats.
func EventID(sessionID string) string {
	sum := sha256.Sum256([]byte("capirelay partial lead\x00" + sessionID))
	return "pl-" + hex.EncodeToString(sum[:16])
}
