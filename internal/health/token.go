// Package health watches what can stop delivery before traffic finds out:
// a site's Meta access token. It pauses a site whose token Meta refuses, so
// its queue waits instead of failing batch after batch, and tells operators
// how to fix it. It knows the store only through the two calls it needs.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/store"
)

// DefaultInterval is how often Run checks every token: hourly costs one
// cheap Graph call per site per hour and still catches a revoked token well
// before the 7-day window (spec §2) puts queued events at risk.
const DefaultInterval = time.Hour

// PauseReasonPrefix starts every pause reason the checker writes. It is how
// the checker recognizes its own pauses: it lifts only those, and only once
// the same token works again.
const PauseReasonPrefix = "token check: "

// Sites is what the checker needs from the store.
type Sites interface {
	ListSites(ctx context.Context) ([]*store.Site, error)
	SetPaused(ctx context.Context, key string, paused bool, reason string) error
}

// Graph verifies a token; *capi.Client implements it.
type Graph interface {
	CheckToken(ctx context.Context, pixelID, accessToken string) error
}

var _ Graph = (*capi.Client)(nil)

// TokenChecker checks each site's access token with a cheap authenticated
// Graph call (GET /{version}/{pixel}?fields=id).
//
//   - Meta refuses the token (capi.ClassAuth: code 190, 102, 10, 200-299,
//     100/33 ...; spec §7.3): the site is paused with a reason that says how
//     to fix it, metrics.TokenInvalid{site} is set to 1 and a warning is
//     logged. The token itself is never logged.
//   - Any other failure (timeout, 5xx, rate limit) changes nothing: the next
//     round tries again.
//   - The token works: TokenInvalid{site} is set to 0. A site the checker
//     itself paused is un-paused, since nothing else changed since then.
//     Pauses from anything else (the dispatcher's refused send, which may be
//     a permission the GET does not need) stay until an operator sets a
//     token with `capirelay site set-token`, which un-pauses.
//
// Sandbox sites (no pixel or no token) are skipped. Set the fields before
// Run; a TokenChecker is not meant to be changed while it runs. CheckAll may
// be called concurrently with Run.
type TokenChecker struct {
	Sites   Sites
	Graph   Graph
	Metrics *metrics.Metrics // optional
	Logger  *slog.Logger     // optional; default discards
	// Interval between rounds. Default DefaultInterval.
	Interval time.Duration
	// Now is the clock used in pause reasons. Default time.Now.
	Now func() time.Time
}

// Run checks every token at once and then every Interval until ctx is
// done. Failures are logged; Run returns only when ctx is done.
func (c *TokenChecker) Run(ctx context.Context) {
	interval := c.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := c.CheckAll(ctx); err != nil && ctx.Err() == nil {
			c.logger().Error("token check", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckAll checks the token of every site with a pixel and a token, one
// after another. It returns an error when the sites cannot be listed or a
// pause cannot be written (joined, one per site); a failed Graph call is
// not an error of CheckAll.
func (c *TokenChecker) CheckAll(ctx context.Context) error {
	sites, err := c.Sites.ListSites(ctx)
	if err != nil {
		return fmt.Errorf("list sites: %w", err)
	}
	var errs []error
	for _, s := range sites {
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		if s.Sandbox() {
			continue
		}
		if err := c.check(ctx, s); err != nil {
			errs = append(errs, fmt.Errorf("site %s: %w", s.Key, err))
		}
	}
	return errors.Join(errs...)
}

func (c *TokenChecker) check(ctx context.Context, s *store.Site) error {
	log := c.logger().With("site", s.Key, "pixel", s.PixelID)
	err := c.Graph.CheckToken(ctx, s.PixelID, s.AccessToken)
	switch {
	case err == nil:
		c.gauge(s.Key, 0)
		if s.Paused && strings.HasPrefix(s.PauseReason, PauseReasonPrefix) {
			if err := c.Sites.SetPaused(ctx, s.Key, false, ""); err != nil {
				return fmt.Errorf("un-pause: %w", err)
			}
			c.paused(s.Key, 0)
			log.Info("access token works again; delivery resumed")
		}
		return nil
	case ctx.Err() != nil:
		return nil // shutting down; not the token's fault
	case capi.Classify(err) != capi.ClassAuth:
		log.Warn("token check failed; will try again", "err", err)
		return nil
	}
	c.gauge(s.Key, 1)
	if !s.Paused {
		if err := c.Sites.SetPaused(ctx, s.Key, true, c.reason(s.Key, err)); err != nil {
			return fmt.Errorf("pause: %w", err)
		}
		c.paused(s.Key, 1)
	}
	var ce *capi.Error
	var code, subcode int
	var trace string
	if errors.As(err, &ce) {
		code, subcode, trace = ce.Code, ce.Subcode, ce.TraceID
	}
	log.Warn("access token refused by Meta; delivery paused until a new token is set",
		"code", code, "subcode", subcode, "fbtrace_id", trace,
		"fix", "capirelay site set-token --site "+s.Key+" --access-token-file PATH")
	return nil
}

// reason is the pause reason shown to operators. err comes from the capi
// client, which redacts the token from anything Meta echoes back.
func (c *TokenChecker) reason(key string, err error) string {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	return PauseReasonPrefix + "Meta refused the access token on " + now().UTC().Format(time.RFC3339) +
		" (" + strings.TrimPrefix(err.Error(), "capi: ") + "). Queued events are kept. " +
		"Create a new system-user token in Meta Business Settings with access to the pixel, then run " +
		"`capirelay site set-token --site " + key + " --access-token-file PATH` (or `--access-token -` to read it from standard input) to resume."
}

func (c *TokenChecker) gauge(key string, v float64) {
	if c.Metrics != nil {
		c.Metrics.TokenInvalid.WithLabelValues(key).Set(v)
	}
}

func (c *TokenChecker) paused(key string, v float64) {
	if c.Metrics != nil {
		c.Metrics.SitePaused.WithLabelValues(key).Set(v)
	}
}

func (c *TokenChecker) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger.With("component", "health")
}
