package leads

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// Leases: a claim that is not completed (crash, shutdown) comes back after
// its lease. A webhook attempt takes at most webhookTimeout.
const (
	forwardLease = time.Minute
	webhookLease = 2 * time.Minute
)

// webhookWorkers bounds concurrent webhook posts in one sweep.
const webhookWorkers = 8

// Run sweeps every Interval until ctx is done, logging failures (a failed
// sweep is retried on the next tick). It returns nil when ctx is canceled.
func (s *Service) Run(ctx context.Context) error {
	every := s.Interval
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := s.Sweep(ctx, s.now())
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.logger().Error("lead sweep failed", "err", err)
		case n > 0:
			s.logger().Info("partial leads", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep turns the sessions due at now into partial leads and returns how
// many; it then forwards pending partial leads, posts due webhooks and
// purges expired leads. Each step runs even if another failed; the error
// joins their failures.
func (s *Service) Sweep(ctx context.Context, now time.Time) (int, error) {
	n, err := s.claimDue(ctx, now)
	errs := []error{err}
	errs = append(errs, s.forward(ctx, now))
	errs = append(errs, s.deliverWebhooks(ctx, now))
	if _, err := s.Store.PurgeLeads(ctx, now); err != nil {
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

func (s *Service) claimDue(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		ls, err := s.Store.ClaimDueLeads(ctx, now, s.batch())
		total += len(ls)
		if err != nil {
			return total, err
		}
		for _, l := range ls {
			s.logger().Debug("partial lead", "site", l.SiteKey, "lead_id", l.ID, "form", l.FormID)
		}
		if len(ls) < s.batch() {
			return total, nil
		}
	}
}

// forward submits the pending partial lead events.
func (s *Service) forward(ctx context.Context, now time.Time) error {
	for {
		ls, err := s.Store.ClaimLeadForwards(ctx, now, forwardLease, s.batch())
		if err != nil {
			return err
		}
		for i := range ls {
			if err := s.forwardOne(ctx, &ls[i]); err != nil {
				// Left pending: the lease brings it back.
				return err
			}
		}
		if len(ls) < s.batch() {
			return nil
		}
	}
}

// ConsentAllows reports whether a visitor's consent state allows sending a
// partial lead of site to Meta: never when denied; when the site requires
// consent, only when granted (spec §9).
func ConsentAllows(site *store.Site, consent string) bool {
	if consent == pipeline.ConsentDenied {
		return false
	}
	return site.Consent != store.ConsentRequired || consent == pipeline.ConsentGranted
}

func (s *Service) forwardOne(ctx context.Context, l *store.Lead) error {
	skip := func(why string) error {
		return s.Store.CompleteLeadForward(ctx, l.ID, store.ForwardSkipped, why)
	}
	site, err := s.Store.Site(ctx, l.SiteKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return skip("site deleted")
	case err != nil:
		return err
	case l.State != store.LeadPartial:
		return skip("converted")
	case !site.PartialLeadForward:
		return skip("forwarding off")
	case !ConsentAllows(site, l.Consent):
		return skip("no consent")
	case s.Pipeline == nil:
		return skip("no pipeline")
	}
	res, err := s.Pipeline.Submit(ctx, []pipeline.Input{{
		Site: site, Event: PartialEvent(site, l), Source: pipeline.SourceLead,
		VisitorID: l.VisitorID, Consent: l.Consent,
	}})
	if err != nil {
		return fmt.Errorf("forward lead %d: %w", l.ID, err)
	}
	switch r := res[0]; r.Status {
	case pipeline.Accepted, pipeline.Duplicate:
		return s.Store.CompleteLeadForward(ctx, l.ID, store.ForwardSent, "")
	case pipeline.Rejected:
		// The reason names a field, never its value.
		s.logger().Warn("partial lead event rejected", "site", l.SiteKey, "lead_id", l.ID, "err", r.Err)
		reason := "rejected"
		if r.Err != nil {
			reason = r.Err.Error()
		}
		return s.Store.CompleteLeadForward(ctx, l.ID, store.ForwardRejected, reason)
	default:
		return skip(string(r.Status))
	}
}

// PartialEvent is the CAPI event for a partial lead: named by the site
// (PartialLead by default), website action source, the page as
// event_source_url, the raw captured fields and browser identifiers as
// user_data (the pipeline normalizes and hashes them), the visitor id as
// external_id, and the event_id derived from the session.
func PartialEvent(site *store.Site, l *store.Lead) *event.Event {
	name := site.PartialLeadEvent
	if name == "" {
		name = store.DefaultPartialLeadEvent
	}
	f := l.Data.Fields
	list := func(k string) event.List {
		if v := f[k]; v != "" {
			return event.List{v}
		}
		return nil
	}
	return &event.Event{
		EventName:      name,
		EventTime:      event.Time(l.UpdatedAt.Unix()),
		EventID:        EventID(l.SessionID),
		ActionSource:   "website",
		EventSourceURL: l.Data.PageURL,
		UserData: event.UserData{
			Em: list("em"), Ph: list("ph"), Fn: list("fn"), Ln: list("ln"), Db: list("db"), Ge: list("ge"),
			Ct: list("ct"), St: list("st"), Zp: list("zp"), Country: list("country"),
			ExternalID:      event.List{l.VisitorID},
			ClientIPAddress: l.Data.IP, ClientUserAgent: l.Data.UA, Fbc: l.Data.Fbc, Fbp: l.Data.Fbp,
		},
	}
}

// deliverWebhooks posts the due webhook jobs, a few at a time.
func (s *Service) deliverWebhooks(ctx context.Context, now time.Time) error {
	for {
		jobs, err := s.Store.ClaimWebhooks(ctx, now, webhookLease, s.batch())
		if err != nil {
			return err
		}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
			sem  = make(chan struct{}, webhookWorkers)
		)
		for i := range jobs {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := s.deliver(ctx, &jobs[i], now); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if len(jobs) < s.batch() {
			return nil
		}
	}
}
