package leads_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/leads"
	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
)

const (
	rawEmail = "Jane.Doe@Example.com"
	rawPhone = "+1 (650) 555-1212"
)

// hook is a webhook receiver that records requests and answers with the
// queued statuses, then 200.
type hook struct {
	srv      *httptest.Server
	mu       sync.Mutex
	reqs     []hookReq
	statuses []int
}

type hookReq struct {
	header http.Header
	body   []byte
}

func newHook(t *testing.T, statuses ...int) *hook {
	h := &hook{statuses: statuses}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.reqs = append(h.reqs, hookReq{r.Header.Clone(), body})
		status := http.StatusOK
		if len(h.statuses) > 0 {
			status, h.statuses = h.statuses[0], h.statuses[1:]
		}
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) requests() []hookReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookReq(nil), h.reqs...)
}

type bundle struct {
	dir  string
	db   *sqlite.DB
	svc  *leads.Service
	site *store.Site
	hook *hook
	t0   time.Time
}

func openDB(t *testing.T, dir string) *sqlite.DB {
	t.Helper()
	box, err := secret.New(bytes.Repeat([]byte{9}, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, sqlite.FileName), box)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	return db
}

// setup opens a fresh store with one site whose webhook is a test server,
// and a service over it with a pipeline. edit adjusts the site.
func setup(t *testing.T, edit func(*store.Site), statuses ...int) *bundle {
	t.Helper()
	b := &bundle{dir: t.TempDir(), hook: newHook(t, statuses...), t0: time.Now().Truncate(time.Second)}
	b.db = openDB(t, b.dir)
	t.Cleanup(func() { b.db.Close() })
	b.site = &store.Site{Key: "shop", Name: "Shop", Domains: []string{"shop.example"}, APIKeyHash: "h1",
		PartialLeads: true, PartialLeadTimeout: 20 * time.Minute, WebhookURL: b.hook.srv.URL + "/hooks/lead?token=abc",
		// The test server is plain http on loopback: the operator's opt-ins.
		WebhookAllowHTTP: true, WebhookAllowPrivate: true, DefaultRegion: "US"}
	if edit != nil {
		edit(b.site)
	}
	if err := b.db.CreateSite(t.Context(), b.site); err != nil {
		t.Fatal(err)
	}
	b.svc = b.newService()
	return b
}

func (b *bundle) newService() *leads.Service {
	svc := leads.New(b.db, pipeline.New(b.db), slog.New(slog.DiscardHandler))
	svc.BackoffFunc = func(int) time.Duration { return time.Minute }
	return svc
}

// reopen closes the store and opens it again, as after a restart.
func (b *bundle) reopen(t *testing.T) {
	t.Helper()
	if err := b.db.Close(); err != nil {
		t.Fatal(err)
	}
	b.db = openDB(t, b.dir)
	t.Cleanup(func() { b.db.Close() })
	b.svc = b.newService()
}

func (b *bundle) capture(t *testing.T, at time.Time, submitted bool, fields map[string]string, consent string) {
	t.Helper()
	err := b.svc.Capture(t.Context(), b.site, leads.Capture{
		VisitorID: "v-1", FormID: "signup", Fields: fields, Submitted: submitted, At: at,
		PageURL: "https://shop.example/signup?utm=x", Fbp: "fb.1.1700000000000.123", Fbc: "fb.1.1700000000000.IwAR",
		IP: "203.0.113.7", UA: "Mozilla/5.0 test", Consent: consent,
	})
	if err != nil {
		t.Fatalf("Capture = %v", err)
	}
}

func (b *bundle) sweep(t *testing.T, at time.Time) int {
	t.Helper()
	n, err := b.svc.Sweep(t.Context(), at)
	if err != nil {
		t.Fatalf("Sweep(%v) = %v", at.Sub(b.t0), err)
	}
	return n
}

func (b *bundle) leads(t *testing.T, states ...string) []store.Lead {
	t.Helper()
	ls, err := b.db.ListLeads(t.Context(), store.LeadFilter{SiteKey: b.site.Key, States: states})
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func (b *bundle) outbox(t *testing.T) []store.Item {
	t.Helper()
	items, err := b.db.Items(t.Context(), b.site.Key, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

var someFields = map[string]string{"em": rawEmail, "fn": "Jane"}

func TestSessionBecomesPartialAfterTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.capture(t, b.t0, false, someFields, "")
	b.capture(t, b.t0.Add(5*time.Minute), false, map[string]string{"ph": rawPhone}, "")

	if n := b.sweep(t, b.t0.Add(24*time.Minute)); n != 0 {
		t.Fatalf("Sweep 19 min after the last capture = %d partial leads, want 0", n)
	}
	if n := b.sweep(t, b.t0.Add(25*time.Minute)); n != 1 {
		t.Fatalf("Sweep 20 min after the last capture = %d partial leads, want 1", n)
	}
	ls := b.leads(t)
	if len(ls) != 1 || ls[0].State != store.LeadPartial {
		t.Fatalf("leads = %+v, want one partial", ls)
	}
	l := ls[0]
	if l.Data.Fields["em"] != rawEmail || l.Data.Fields["ph"] != rawPhone || l.Data.Fields["fn"] != "Jane" {
		t.Errorf("fields = %v, want the captures merged", l.Data.Fields)
	}
	if !l.PartialAt.Equal(b.t0.Add(25 * time.Minute)) {
		t.Errorf("PartialAt = %v, want the sweep time", l.PartialAt)
	}
	if got := len(b.hook.requests()); got != 1 {
		t.Errorf("webhook requests = %d, want 1", got)
	}
}

// TestBlankedFieldIsErased: an empty value erases its key, with its hash;
// a key absent from a capture (one from a later page load) is kept; the
// partial lead forwarded afterwards has no phone either.
func TestBlankedFieldIsErased(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *store.Site) { s.PartialLeadForward = true })
	wantEm, _ := normalize.Hash(normalize.Email, rawEmail, normalize.Options{})
	wantPh, _ := normalize.Hash(normalize.Phone, rawPhone, normalize.Options{Region: "US"})
	b.capture(t, b.t0, false, map[string]string{"em": rawEmail, "ph": rawPhone}, "")
	if l := b.leads(t)[0]; l.Data.Fields["ph"] != rawPhone || l.EmailHash != wantEm || l.PhoneHash != wantPh {
		t.Fatalf("after {em, ph}: fields %v, hashes %q %q", l.Data.Fields, l.EmailHash, l.PhoneHash)
	}
	b.capture(t, b.t0.Add(time.Minute), false, map[string]string{"em": rawEmail, "ph": " "}, "")
	l := b.leads(t)[0]
	if _, ok := l.Data.Fields["ph"]; ok || l.PhoneHash != "" {
		t.Errorf("after {em, ph: blank}: fields %v, phone hash %q, want no phone", l.Data.Fields, l.PhoneHash)
	}
	if l.Data.Fields["em"] != rawEmail || l.EmailHash != wantEm {
		t.Errorf("after {em, ph: blank}: fields %v, email hash %q, want the email kept", l.Data.Fields, l.EmailHash)
	}
	// The name split: a blanked full name clears both halves.
	b.capture(t, b.t0.Add(2*time.Minute), false, map[string]string{"fn": "Jane", "ln": "Doe"}, "")
	b.capture(t, b.t0.Add(3*time.Minute), false, map[string]string{"fn": "", "ln": ""}, "")
	if l := b.leads(t)[0]; len(l.Data.Fields) != 1 || l.Data.Fields["em"] != rawEmail {
		t.Errorf("after a blanked name: fields %v, want em only", l.Data.Fields)
	}
	// Only clearing opens no session.
	if err := b.svc.Capture(t.Context(), b.site, leads.Capture{VisitorID: "v-2", FormID: "signup",
		Fields: map[string]string{"ph": ""}, PageURL: "https://shop.example/signup"}); err != nil {
		t.Fatal(err)
	}
	if ls := b.leads(t); len(ls) != 1 {
		t.Errorf("leads = %d after a capture that only clears, want 1", len(ls))
	}

	b.sweep(t, b.t0.Add(time.Hour))
	items := b.outbox(t)
	if len(items) != 1 {
		t.Fatalf("outbox = %d events, want the partial lead", len(items))
	}
	var ev struct {
		UserData map[string]any `json:"user_data"`
	}
	if err := json.Unmarshal(items[0].Payload, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.UserData["ph"] != nil || ev.UserData["fn"] != nil || ev.UserData["em"] == nil {
		t.Errorf("partial lead user_data = %v, want em and no ph or fn", ev.UserData)
	}
}

func TestShortTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *store.Site) { s.PartialLeadTimeout = 3 * time.Second })
	b.capture(t, b.t0, false, someFields, "")
	if n := b.sweep(t, b.t0.Add(2*time.Second)); n != 0 {
		t.Fatalf("Sweep after 2s = %d, want 0", n)
	}
	if n := b.sweep(t, b.t0.Add(3*time.Second)); n != 1 {
		t.Fatalf("Sweep after 3s = %d, want 1", n)
	}
}

func TestSubmitClosesFullLead(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *store.Site) { s.PartialLeadForward = true })
	b.capture(t, b.t0, false, someFields, "")
	b.capture(t, b.t0.Add(time.Minute), true, map[string]string{"ph": rawPhone}, "")
	if n := b.sweep(t, b.t0.Add(time.Hour)); n != 0 {
		t.Fatalf("Sweep = %d partial leads, want 0 after a submit", n)
	}
	ls := b.leads(t)
	if len(ls) != 1 || ls[0].State != store.LeadSubmitted || ls[0].ClosedAt.IsZero() {
		t.Fatalf("leads = %+v, want one submitted", ls)
	}
	if got := len(b.hook.requests()); got != 0 {
		t.Errorf("webhook requests = %d, want 0", got)
	}
	if got := b.outbox(t); len(got) != 0 {
		t.Errorf("outbox = %d events, want none: the collector sends the Lead", len(got))
	}
	// A new capture after the submit starts a new session.
	b.capture(t, b.t0.Add(2*time.Hour), false, someFields, "")
	if got := b.leads(t, store.LeadOpen); len(got) != 1 {
		t.Errorf("open sessions after a new capture = %d, want 1", len(got))
	}
}

func TestExactlyOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *store.Site) { s.PartialLeadForward = true })
	b.capture(t, b.t0, false, someFields, "")
	b.reopen(t) // the timer lives in the store

	due := b.t0.Add(21 * time.Minute)
	var total atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		svc := b.newService()
		wg.Go(func() {
			n, err := svc.Sweep(t.Context(), due)
			if err != nil {
				t.Errorf("Sweep = %v", err)
			}
			total.Add(int64(n))
		})
	}
	wg.Wait()
	total.Add(int64(b.sweep(t, due)))
	b.reopen(t)
	total.Add(int64(b.sweep(t, due.Add(time.Hour))))
	if total.Load() != 1 {
		t.Fatalf("partial leads over concurrent sweeps and a restart = %d, want 1", total.Load())
	}
	if got := len(b.hook.requests()); got != 1 {
		t.Errorf("webhook requests = %d, want 1", got)
	}
	if got := b.outbox(t); len(got) != 1 {
		t.Errorf("outbox = %d events, want 1", len(got))
	}
}

func TestWebhookSignatureAndRetry(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, http.StatusInternalServerError)
	b.capture(t, b.t0, false, map[string]string{"em": rawEmail, "ph": rawPhone}, "")
	due := b.t0.Add(20 * time.Minute)
	b.sweep(t, due)
	if got := len(b.hook.requests()); got != 1 {
		t.Fatalf("webhook requests after the first sweep = %d, want 1", got)
	}
	b.sweep(t, due.Add(30*time.Second)) // before the backoff
	if got := len(b.hook.requests()); got != 1 {
		t.Fatalf("webhook requests before the retry is due = %d, want 1", got)
	}
	b.sweep(t, due.Add(time.Minute))
	reqs := b.hook.requests()
	if len(reqs) != 2 {
		t.Fatalf("webhook requests after the retry = %d, want 2", len(reqs))
	}
	b.sweep(t, due.Add(time.Hour))
	if got := len(b.hook.requests()); got != 2 {
		t.Fatalf("webhook requests after delivery = %d, want 2", got)
	}

	secret, err := b.svc.WebhookSecret(t.Context(), b.site.Key)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		sig, tsHdr := r.header.Get(leads.SignatureHeader), r.header.Get(leads.TimestampHeader)
		if err := leads.Verify(secret, r.body, tsHdr, sig, time.Now(), leads.SignatureTolerance); err != nil {
			t.Errorf("request %d: signature %q: %v", i, sig, err)
		}
		if leads.Verify(secret+"x", r.body, tsHdr, sig, time.Now(), leads.SignatureTolerance) == nil || !strings.HasPrefix(sig, "sha256=") {
			t.Errorf("request %d: signature %q is not an HMAC under the site secret", i, sig)
		}
		ts, err := strconv.ParseInt(r.header.Get(leads.TimestampHeader), 10, 64)
		if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
			t.Errorf("request %d: timestamp %q", i, r.header.Get(leads.TimestampHeader))
		}
		var p leads.WebhookPayload
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Type != "partial_lead" || p.Fields["em"] != rawEmail || p.Fields["ph"] != rawPhone || p.SentAt != ts {
			t.Errorf("request %d: payload %+v", i, p)
		}
	}
	if reqs[0].header.Get(leads.DeliveryHeader) != reqs[1].header.Get(leads.DeliveryHeader) {
		t.Errorf("delivery id changed between retries")
	}
	log, err := b.db.WebhookAttempts(t.Context(), b.site.Key, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2 || log[1].Status != 500 || log[1].State != store.WebhookPending ||
		log[0].Status != 200 || log[0].State != store.WebhookDelivered {
		t.Errorf("delivery log = %+v, want a 500 then a 200", log)
	}
	for _, a := range log {
		if strings.Contains(a.Error, "token=abc") {
			t.Errorf("delivery log leaks the URL query: %q", a.Error)
		}
	}
}

func TestWebhookGivesUp(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, 500, 500, 500, 500)
	b.svc.WebhookMaxAttempts = 3
	b.capture(t, b.t0, false, someFields, "")
	at := b.t0.Add(20 * time.Minute)
	for range 6 {
		b.sweep(t, at)
		at = at.Add(time.Hour)
	}
	if got := len(b.hook.requests()); got != 3 {
		t.Errorf("webhook requests = %d, want 3 (then dead)", got)
	}
	log, _ := b.db.WebhookAttempts(t.Context(), b.site.Key, 10)
	if len(log) != 3 || log[0].State != store.WebhookDead {
		t.Errorf("delivery log = %+v, want the last dead", log)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 0.5, 30 * time.Second},
		{2, 0.5, time.Minute},
		{5, 0.5, 8 * time.Minute},
		{1, 0, 22500 * time.Millisecond},
		{20, 0.5, 6 * time.Hour},
		{100, 0.5, 6 * time.Hour},
	} {
		if got := leads.Backoff(tc.attempt, tc.r); got != tc.want {
			t.Errorf("Backoff(%d, %v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
		}
	}
}

func TestExportCSV(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.capture(t, b.t0, false, map[string]string{"em": rawEmail, "ph": rawPhone, "fn": "=HYPERLINK(1)"}, "")
	b.sweep(t, b.t0.Add(time.Hour))
	var out bytes.Buffer
	n, err := b.svc.Export(t.Context(), &out, b.site.Key, time.Time{}, nil)
	if err != nil || n != 1 {
		t.Fatalf("Export = %d, %v; want 1 lead", n, err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("rows = %v, want header and one lead", rows)
	}
	rec := map[string]string{}
	for i, col := range rows[0] {
		rec[col] = rows[1][i]
	}
	if rec["em"] != rawEmail || rec["ph"] != rawPhone || rec["state"] != "partial" || rec["page_url"] == "" {
		t.Errorf("exported row = %v, want the raw values", rec)
	}
	if rec["fn"] != "'=HYPERLINK(1)" {
		t.Errorf("fn = %q, want the formula defused", rec["fn"])
	}
	n, _ = b.svc.Export(t.Context(), io.Discard, b.site.Key, b.t0.Add(time.Minute), nil)
	if n != 0 {
		t.Errorf("Export since after the lead = %d, want 0", n)
	}
}

func TestForwardNeedsSettingAndConsent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		forward bool
		mode    string
		consent string
		want    bool
	}{
		{"forwarding off", false, store.ConsentNone, pipeline.ConsentGranted, false},
		{"mode none", true, store.ConsentNone, "", true},
		{"mode none, denied", true, store.ConsentNone, pipeline.ConsentDenied, false},
		{"required, unknown", true, store.ConsentRequired, "", false},
		{"required, granted", true, store.ConsentRequired, pipeline.ConsentGranted, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(s *store.Site) { s.PartialLeadForward, s.Consent = tc.forward, tc.mode })
			b.capture(t, b.t0, false, map[string]string{"em": rawEmail, "ph": rawPhone, "fn": "Jane"}, tc.consent)
			b.sweep(t, b.t0.Add(time.Hour))
			items := b.outbox(t)
			if got := len(items) == 1; got != tc.want || len(items) > 1 {
				t.Fatalf("outbox = %d events, want forwarded=%v", len(items), tc.want)
			}
			ls := b.leads(t)
			if !tc.want {
				if ls[0].ForwardState != store.ForwardSkipped {
					t.Errorf("ForwardState = %q, want skipped", ls[0].ForwardState)
				}
				return
			}
			if ls[0].ForwardState != store.ForwardSent {
				t.Errorf("ForwardState = %q (%s), want sent", ls[0].ForwardState, ls[0].ForwardError)
			}
			it := items[0]
			if it.EventName != store.DefaultPartialLeadEvent || it.Source != pipeline.SourceLead ||
				it.EventID != leads.EventID(ls[0].SessionID) || it.VisitorID != "v-1" {
				t.Errorf("item = %+v", it)
			}
			var ev struct {
				ActionSource   string `json:"action_source"`
				EventSourceURL string `json:"event_source_url"`
				UserData       struct {
					Em         []string `json:"em"`
					Ph         []string `json:"ph"`
					ExternalID []string `json:"external_id"`
					Fbp        string   `json:"fbp"`
					UA         string   `json:"client_user_agent"`
				} `json:"user_data"`
			}
			if err := json.Unmarshal(it.Payload, &ev); err != nil {
				t.Fatal(err)
			}
			wantEm, _ := normalize.Hash(normalize.Email, rawEmail, normalize.Options{})
			wantPh, _ := normalize.Hash(normalize.Phone, rawPhone, normalize.Options{Region: "US"})
			wantExt, _ := normalize.Hash(normalize.ExternalID, "v-1", normalize.Options{})
			if len(ev.UserData.Em) != 1 || ev.UserData.Em[0] != wantEm || len(ev.UserData.Ph) != 1 || ev.UserData.Ph[0] != wantPh {
				t.Errorf("user_data em/ph = %v/%v, want hashes %s/%s", ev.UserData.Em, ev.UserData.Ph, wantEm, wantPh)
			}
			if len(ev.UserData.ExternalID) != 1 || ev.UserData.ExternalID[0] != wantExt {
				t.Errorf("external_id = %v, want the hashed visitor id", ev.UserData.ExternalID)
			}
			if ev.ActionSource != "website" || !strings.HasPrefix(ev.EventSourceURL, "https://shop.example/signup") ||
				ev.UserData.Fbp == "" || ev.UserData.UA == "" {
				t.Errorf("event = %+v", ev)
			}
			if bytes.Contains(bytes.ToLower(it.Payload), []byte(strings.ToLower(rawEmail))) {
				t.Errorf("payload carries the raw email: %s", it.Payload)
			}
		})
	}
}

func TestForwardRetryNeverDoubleSends(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *store.Site) { s.PartialLeadForward = true })
	b.capture(t, b.t0, false, someFields, "")
	b.sweep(t, b.t0.Add(time.Hour))
	l := b.leads(t)[0]
	// A retry (crash after submit, before the forward was recorded) builds
	// the same event again.
	res, err := pipeline.New(b.db).Submit(t.Context(), []pipeline.Input{{
		Site: b.site, Event: leads.PartialEvent(b.site, &l), Source: pipeline.SourceLead, VisitorID: l.VisitorID,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != pipeline.Duplicate {
		t.Errorf("resubmitted partial lead = %s, want duplicate", res[0].Status)
	}
	if got := b.outbox(t); len(got) != 1 {
		t.Errorf("outbox = %d events, want 1", len(got))
	}
}

func TestPartialThenSubmitIsConverted(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *store.Site) { s.PartialLeadForward = true })
	b.capture(t, b.t0, false, someFields, "")
	b.sweep(t, b.t0.Add(21*time.Minute))
	b.capture(t, b.t0.Add(30*time.Minute), false, map[string]string{"ph": rawPhone}, "")
	b.capture(t, b.t0.Add(31*time.Minute), true, nil, "")
	for i := range 3 {
		if n := b.sweep(t, b.t0.Add(time.Duration(i+1)*time.Hour)); n != 0 {
			t.Fatalf("Sweep after the submit = %d partial leads, want 0", n)
		}
	}
	ls := b.leads(t)
	if len(ls) != 1 || ls[0].State != store.LeadConverted || ls[0].Data.Fields["ph"] != rawPhone {
		t.Fatalf("leads = %+v, want the partial converted, with its later values", ls)
	}
	if got := b.leads(t, store.LeadPartial); len(got) != 0 {
		t.Errorf("partial leads = %d, want 0 once converted", len(got))
	}
	items := b.outbox(t)
	if len(items) != 1 || items[0].EventName != store.DefaultPartialLeadEvent {
		t.Fatalf("outbox = %+v, want only the PartialLead: the Lead is the collector's", items)
	}
	if got := len(b.hook.requests()); got != 1 {
		t.Errorf("webhook requests = %d, want 1", got)
	}
}

func TestConvertedBeforeForwardIsNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *store.Site) { s.PartialLeadForward = true })
	b.capture(t, b.t0, false, someFields, "")
	// Turn due sessions partial without forwarding or posting.
	if _, err := b.db.ClaimDueLeads(t.Context(), b.t0.Add(time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	b.capture(t, b.t0.Add(2*time.Hour), true, nil, "")
	b.sweep(t, b.t0.Add(3*time.Hour))
	if got := b.outbox(t); len(got) != 0 {
		t.Errorf("outbox = %d events, want none for a lead converted before forwarding", len(got))
	}
	if got := len(b.hook.requests()); got != 0 {
		t.Errorf("webhook requests = %d, want none for a converted lead", got)
	}
}

func TestRetentionPurge(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *store.Site) { s.Retention = 2 * time.Hour })
	b.capture(t, b.t0, false, someFields, "")
	b.sweep(t, b.t0.Add(time.Hour))
	if got := b.leads(t); len(got) != 1 {
		t.Fatalf("leads within retention = %d, want 1", len(got))
	}
	b.sweep(t, b.t0.Add(2*time.Hour))
	if got := b.leads(t); len(got) != 0 {
		t.Fatalf("leads after retention = %d, want 0", len(got))
	}
	if log, _ := b.db.WebhookAttempts(t.Context(), b.site.Key, 10); len(log) != 0 {
		t.Errorf("delivery log after retention = %d rows, want 0", len(log))
	}
}

func TestCaptureRules(t *testing.T) {
	t.Parallel()
	b := setup(t, func(s *store.Site) { s.Consent = store.ConsentRequired })
	ctx := t.Context()
	if err := b.svc.Capture(ctx, b.site, leads.Capture{FormID: "f", Fields: someFields}); err == nil {
		t.Error("Capture without a visitor id = nil, want an error")
	}
	if err := b.svc.Capture(ctx, b.site, leads.Capture{VisitorID: "v", FormID: "f", Fields: someFields,
		Consent: pipeline.ConsentDenied}); err != nil {
		t.Fatal(err)
	}
	off := *b.site
	off.PartialLeads = false
	if err := b.svc.Capture(ctx, &off, leads.Capture{VisitorID: "v", FormID: "f", Fields: someFields}); err != nil {
		t.Fatal(err)
	}
	if got := b.leads(t); len(got) != 0 {
		t.Errorf("leads = %d, want none (consent denied, capture off)", len(got))
	}
}

func TestRawValuesSealedAtRest(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.capture(t, b.t0, false, map[string]string{"em": rawEmail, "fn": "Zebediah"}, "")
	b.sweep(t, b.t0.Add(time.Hour))
	if err := b.db.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{rawEmail, "Zebediah", "203.0.113.7"} {
		if fileContains(t, b.dir, raw) {
			t.Errorf("database files contain %q in plain text", raw)
		}
	}
}

func fileContains(t *testing.T, dir, s string) bool {
	t.Helper()
	for _, name := range []string{sqlite.FileName, sqlite.FileName + "-wal"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		if bytes.Contains(data, []byte(s)) {
			return true
		}
	}
	return false
}
