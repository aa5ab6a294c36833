package leads

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/capirelay/capirelay/internal/netguard"
	"github.com/capirelay/capirelay/internal/store"
)

// Webhook headers.
const (
	SignatureHeader = "X-Capirelay-Signature" // "sha256=" + hex HMAC-SHA256 of timestamp + "." + body
	TimestampHeader = "X-Capirelay-Timestamp" // Unix seconds when sent; also "sent_at" in the body
	DeliveryHeader  = "X-Capirelay-Delivery"  // webhook job id: the same on every retry
)

// DefaultWebhookMaxAttempts: with Backoff, 12 attempts span about 20 hours
// (30s, 1m, 2m, 4m, 8m, 16m, 32m, 1h4m, 2h8m, 4h16m, 6h between them).
const DefaultWebhookMaxAttempts = 12

// webhookTimeout bounds one webhook request.
const webhookTimeout = 15 * time.Second

// Backoff is the wait after failed attempt n (1-based): 30 s doubling per
// attempt, capped at 6 h, scaled by a jitter factor in [0.75, 1.25) from
// r in [0, 1) so that many failing hooks do not retry in step.
func Backoff(attempt int, r float64) time.Duration {
	d := 30 * time.Second
	for i := 1; i < attempt && d < 6*time.Hour; i++ {
		d *= 2
	}
	d = min(d, 6*time.Hour)
	return time.Duration(float64(d) * (0.75 + r/2))
}

// SignatureTolerance is how far a receiver should accept a timestamp from
// its own clock (README): a captured request replays only within it.
const SignatureTolerance = 5 * time.Minute

// Sign returns the signature header value of a request sent at timestamp
// (Unix seconds, the TimestampHeader value) with body: the timestamp is
// signed with the body, so a captured request cannot be re-dated.
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a received webhook: signature must be the signature of
// timestamp and body under secret, and timestamp within tolerance of now.
func Verify(secret string, body []byte, timestamp, signature string, now time.Time, tolerance time.Duration) error {
	if !hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature)) {
		return errors.New("webhook signature does not match")
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("webhook timestamp is not Unix seconds")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook timestamp is %s away from now", d.Round(time.Second))
	}
	return nil
}

// NewWebhookSecret returns a random 256-bit secret: "whsec_" and 64 hex
// characters.
func NewWebhookSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return "whsec_" + hex.EncodeToString(b[:])
}

// WebhookSecret returns the site's webhook secret, creating it on first use.
func (s *Service) WebhookSecret(ctx context.Context, siteKey string) (string, error) {
	return s.Store.WebhookSecret(ctx, siteKey, NewWebhookSecret())
}

// WebhookPayload is the JSON body posted for a partial lead. Fields holds
// the raw values the visitor typed: the webhook is the operator's own
// endpoint.
type WebhookPayload struct {
	Type           string            `json:"type"` // "partial_lead"
	DeliveryID     int64             `json:"delivery_id"`
	LeadID         string            `json:"lead_id"` // the session id; stable
	EventID        string            `json:"event_id"`
	Site           string            `json:"site"`
	FormID         string            `json:"form_id"`
	VisitorID      string            `json:"visitor_id"`
	Fields         map[string]string `json:"fields"`
	PageURL        string            `json:"page_url,omitempty"`
	StartedAt      time.Time         `json:"started_at"`
	LastActivityAt time.Time         `json:"last_activity_at"`
	PartialAt      time.Time         `json:"partial_at"`
	SentAt         int64             `json:"sent_at"` // Unix seconds, as TimestampHeader
}

// deliver makes one attempt of job and records it. The error is set only
// when the outcome could not be recorded; the job then comes back after
// its lease.
func (s *Service) deliver(ctx context.Context, job *store.WebhookJob, now time.Time) error {
	a := store.WebhookAttempt{JobID: job.ID, Attempt: job.Attempts, At: now}
	site, err := s.Store.Site(ctx, job.SiteKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.State, a.Error = store.WebhookSkipped, "site deleted"
	case err != nil:
		return err
	case site.WebhookURL == "":
		a.State, a.Error = store.WebhookSkipped, "no webhook URL"
	case job.Lead == nil || job.Lead.State != store.LeadPartial:
		a.State, a.Error = store.WebhookSkipped, "lead converted"
	}
	if a.State != "" {
		return s.Store.CompleteWebhook(ctx, a)
	}
	secret, err := s.WebhookSecret(ctx, site.Key)
	if err != nil {
		return err
	}
	start := time.Now()
	policy := netguard.Policy{AllowHTTP: site.WebhookAllowHTTP, AllowPrivate: site.WebhookAllowPrivate}
	status, err := 0, netguard.CheckURL(site.WebhookURL, policy) // a URL saved before the rules
	if err == nil {
		status, err = s.post(ctx, s.webhookClient(policy), site.WebhookURL, secret, job)
	}
	a.Status, a.Duration = status, time.Since(start)
	switch {
	case err == nil && status >= 200 && status < 300:
		a.State = store.WebhookDelivered
	default:
		switch {
		case err != nil:
			a.Error = err.Error()
		case status >= 300 && status < 400:
			a.Error = "HTTP " + strconv.Itoa(status) + " (redirects are not followed; set the final URL)"
		default:
			a.Error = "HTTP " + strconv.Itoa(status)
		}
		limit := s.WebhookMaxAttempts
		if limit <= 0 {
			limit = DefaultWebhookMaxAttempts
		}
		if job.Attempts >= limit {
			a.State = store.WebhookDead
		} else {
			a.State = store.WebhookPending
			backoff := s.BackoffFunc
			if backoff == nil {
				backoff = func(n int) time.Duration { return Backoff(n, mrand.Float64()) }
			}
			a.RetryAt = now.Add(backoff(job.Attempts))
		}
		s.logger().Warn("lead webhook failed", "site", site.Key, "job", job.ID, "attempt", job.Attempts,
			"status", status, "err", a.Error, "next_state", a.State)
	}
	return s.Store.CompleteWebhook(ctx, a)
}

// post sends the payload of job and returns the HTTP status. Errors carry
// no personal data: the URL is reduced to its scheme and host.
func (s *Service) post(ctx context.Context, client *http.Client, target, secret string, job *store.WebhookJob) (int, error) {
	sentAt := s.now().Unix()
	l := job.Lead
	body, err := json.Marshal(WebhookPayload{
		Type: "partial_lead", DeliveryID: job.ID, LeadID: l.SessionID, EventID: EventID(l.SessionID),
		Site: l.SiteKey, FormID: l.FormID, VisitorID: l.VisitorID, Fields: l.Data.Fields, PageURL: l.Data.PageURL,
		StartedAt: l.StartedAt.UTC(), LastActivityAt: l.UpdatedAt.UTC(), PartialAt: l.PartialAt.UTC(), SentAt: sentAt,
	})
	if err != nil {
		return 0, fmt.Errorf("encode webhook: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("invalid webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "capirelay-webhook/1")
	ts := strconv.FormatInt(sentAt, 10)
	req.Header.Set(SignatureHeader, Sign(secret, ts, body))
	req.Header.Set(TimestampHeader, ts)
	req.Header.Set(DeliveryHeader, strconv.FormatInt(job.ID, 10))
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post to %s: %w", redact(target), unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// webhookClient returns the client for a policy, made once: every
// connection is checked by netguard after DNS (so a name re-pointed at a
// private address fails), no proxy from the environment is used (it would
// make the checked address the proxy's), and redirects are not followed
// (a 307 would re-post the lead and its signature elsewhere): a 3xx is the
// answer, and a failure.
func (s *Service) webhookClient(p netguard.Policy) *http.Client {
	if c, ok := s.clients.Load(p); ok {
		return c.(*http.Client)
	}
	c := &http.Client{
		Timeout: webhookTimeout,
		Transport: &http.Transport{
			DialContext:           netguard.Dialer(p, 10*time.Second).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: webhookTimeout,
			MaxIdleConnsPerHost:   webhookWorkers,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c2, _ := s.clients.LoadOrStore(p, c)
	return c2.(*http.Client)
}

// redact keeps the scheme and host of a URL: a path or query may hold a
// token.
func redact(raw string) string {
	if s, ok := RedactURL(raw); ok {
		return s
	}
	return "(invalid URL)"
}

// RedactURL is a webhook URL's scheme and host ("https://hooks.example"),
// without the path, query and user information, which may hold a secret;
// ok is false when raw is no URL with a host. The sender's log lines and
// the admin API show hook URLs through it.
func RedactURL(raw string) (shown string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", false
	}
	return u.Scheme + "://" + u.Host, true
}

// unwrapURLError drops *url.Error, whose message repeats the full URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
