package leads_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/leads"
	"github.com/capirelay/capirelay/internal/store"
)

// lastAttempt returns the newest webhook attempt of the bundle's site.
func (b *bundle) lastAttempt(t *testing.T) store.WebhookAttempt {
	t.Helper()
	as, err := b.db.WebhookAttempts(t.Context(), b.site.Key, 1)
	if err != nil || len(as) != 1 {
		t.Fatalf("WebhookAttempts = %d, %v", len(as), err)
	}
	return as[0]
}

// TestWebhookRedirectNotFollowed: a 307 to another host is an answer, a
// failure, and the other host receives nothing (not the lead, not the
// signature).
func TestWebhookRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var stolen atomic.Int32
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
	defer thief.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, thief.URL+"/collect", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	b := setup(t, func(s *store.Site) { s.WebhookURL = redirector.URL + "/hook" })
	b.capture(t, b.t0, false, map[string]string{"em": rawEmail}, "")
	b.sweep(t, b.t0.Add(20*time.Minute))
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the redirect target received %d requests, want none", n)
	}
	a := b.lastAttempt(t)
	if a.State != store.WebhookPending || a.Status != http.StatusTemporaryRedirect || !strings.Contains(a.Error, "redirect") {
		t.Fatalf("attempt = %+v, want a failed attempt (HTTP 307, redirects not followed) to retry", a)
	}
}

// TestWebhookRefusedAtDialTime: a loopback URL stored without the private
// network opt-in (saved before the rules, or written to the store
// directly) is refused when sending, and the server receives nothing.
func TestWebhookRefusedAtDialTime(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *store.Site) { s.WebhookAllowPrivate = false })
	b.capture(t, b.t0, false, map[string]string{"em": rawEmail}, "")
	b.sweep(t, b.t0.Add(20*time.Minute))
	if n := len(b.hook.requests()); n != 0 {
		t.Fatalf("the loopback webhook received %d requests, want none", n)
	}
	if a := b.lastAttempt(t); a.State != store.WebhookPending || !strings.Contains(a.Error, "refused") {
		t.Fatalf("attempt = %+v, want refused", a)
	}
}

// TestSignatureCoversTimestamp: the signature is over timestamp "." body,
// so re-dating a captured request breaks it, and Verify refuses a stale
// timestamp even with a matching signature.
func TestSignatureCoversTimestamp(t *testing.T) {
	t.Parallel()
	const secret = "whsec_test"
	body := []byte(`{"type":"partial_lead"}`)
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := leads.Sign(secret, ts, body)
	// The documented construction, spelled out as the README's example does.
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + string(body)))
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); sig != want {
		t.Fatalf("Sign = %s, want HMAC-SHA256 of timestamp.body %s", sig, want)
	}
	for _, tc := range []struct {
		name, ts, sig string
		body          []byte
		at            time.Time
		ok            bool
	}{
		{"fresh", ts, sig, body, now.Add(time.Minute), true},
		{"re-dated", strconv.FormatInt(now.Unix()+3600, 10), sig, body, now.Add(time.Hour), false},
		{"other body", ts, sig, []byte(`{"type":"x"}`), now, false},
		{"stale", ts, sig, body, now.Add(leads.SignatureTolerance + time.Second), false},
		{"from the future", ts, sig, body, now.Add(-leads.SignatureTolerance - time.Second), false},
		{"not a number", "soon", leads.Sign(secret, "soon", body), body, now, false},
	} {
		err := leads.Verify(secret, tc.body, tc.ts, tc.sig, tc.at, leads.SignatureTolerance)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Verify = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
