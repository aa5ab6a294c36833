package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/capirelay/capirelay/internal/browsertest"
	"github.com/capirelay/capirelay/internal/capitest"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/leads"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/sitecfg"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/tag"
)

// shop is a customer's site served with the whole relay under its own
// domain (www.shop.co.uk, resolved to 127.0.0.1 by Chromium), delivering to
// a fake Graph API. Meta's own hosts resolve nowhere, as behind an ad
// blocker.
type shop struct {
	relay *relay
	site  *store.Site
	base  string
}

var shopHostRules = []string{"MAP *.shop.co.uk 127.0.0.1", "MAP connect.facebook.net ~NOTFOUND", "MAP *.facebook.com ~NOTFOUND"}

func newShop(t *testing.T, pixel string, tune func(s *store.Site)) *shop {
	t.Helper()
	graph := capitest.New()
	t.Cleanup(graph.Close)
	cfg := config.Config{DataDir: t.TempDir(), GraphURL: graph.URL, BatchLinger: 50 * time.Millisecond}
	a, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := CreateSite(context.Background(), a.Store, sitecfg.Update{Name: new("Shop"), Domains: &[]string{"shop.co.uk"}, PixelID: &pixel, AccessToken: new("EAAB-shop")})
	if err != nil {
		t.Fatal(err)
	}
	s.DefaultRegion = "gb"
	if tune != nil {
		tune(s)
	}
	if err := a.Store.UpdateSite(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{page...}", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/t.js" {
			a.Handler().ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, shopPage(s.Key))
	})
	mux.Handle("/", a.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		a.Shutdown(context.Background())
	})
	u, _ := url.Parse(srv.URL)
	return &shop{relay: &relay{app: a, srv: srv, graph: graph}, site: s, base: "http://www.shop.co.uk:" + u.Port()}
}

// shopPage has a quote form with a password field, opted in as a Lead (a
// form with a password is none by default).
func shopPage(siteKey string) string {
	return `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
<script async src="https://connect.facebook.net/en_US/fbevents.js"></script>
` + tag.Snippet("", siteKey) + `
</head><body>
<form id="quote" action="/thanks" method="get" data-capirelay-event="Lead">
<input id="em" name="email" type="email"><input id="ph" name="phone" type="tel">
<input id="fn" name="first_name" autocomplete="given-name"><input id="ln" name="last_name" autocomplete="family-name">
<input id="pw" name="password" type="password">
<button id="go" type="submit">Get a quote</button>
</form></body></html>`
}

// graphEvent waits for an event at the fake Graph API.
func (s *shop) graphEvent(t *testing.T, pixel, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, raw := range s.relay.graph.Events(pixel) {
			var ev map[string]any
			json.Unmarshal(raw, &ev)
			if ok(ev) {
				return ev
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s reached the Graph API", what)
	return nil
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func hashed(t *testing.T, ud map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		v, _ := ud[k].([]any)
		if len(v) != 1 || !hex64.MatchString(fmt.Sprint(v[0])) {
			t.Errorf("user_data.%s = %v, want one SHA-256 hash", k, ud[k])
		}
	}
}

// TestBrowserEventsReachGraph: with Meta blocked in the browser, a PageView
// and a form's Lead still reach the Graph API, hashed, with fbp and fbc.
func TestBrowserEventsReachGraph(t *testing.T) {
	s := newShop(t, "109001", nil)
	ctx := browsertest.New(t, browsertest.Options{HostRules: shopHostRules, Timeout: 90 * time.Second})
	const clickID = "IwAR-MixedCase_ClickID-7Qz"
	landing := s.base + "/offer?fbclid=" + clickID
	if err := chromedp.Do(ctx, chromedp.Navigate(landing)); err != nil {
		t.Fatal(err)
	}
	pv := s.graphEvent(t, "109001", "PageView", func(ev map[string]any) bool {
		return ev["event_name"] == "PageView" && ev["event_source_url"] == landing
	})
	ud := pv["user_data"].(map[string]any)
	fbp, _ := ud["fbp"].(string)
	fbc, _ := ud["fbc"].(string)
	if !regexp.MustCompile(`^fb\.2\.\d{13}\.\d+$`).MatchString(fbp) || !regexp.MustCompile(`^fb\.2\.\d{13}\.`+clickID+`$`).MatchString(fbc) {
		t.Errorf("fbp %q, fbc %q", fbp, fbc)
	}
	if ud["client_user_agent"] != browsertest.UserAgent || ud["client_ip_address"] != "127.0.0.1" {
		t.Errorf("ua %v, ip %v", ud["client_user_agent"], ud["client_ip_address"])
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("em"), "Grace.Hopper@Example.com"),
		chromedp.SendKeys(chromedp.ID("ph"), "020 7946 0958"),
		chromedp.SendKeys(chromedp.ID("fn"), "Grace"),
		chromedp.SendKeys(chromedp.ID("ln"), "Hopper"),
		chromedp.SendKeys(chromedp.ID("pw"), "hunter2-never-sent"),
		chromedp.Click(chromedp.ID("go")),
	); err != nil {
		t.Fatal(err)
	}
	lead := s.graphEvent(t, "109001", "Lead", func(ev map[string]any) bool { return ev["event_name"] == "Lead" })
	lud := lead["user_data"].(map[string]any)
	hashed(t, lud, "em", "ph", "fn", "ln")
	if lud["fbp"] != fbp || lud["fbc"] != fbc {
		t.Errorf("Lead fbp/fbc = %v/%v, want %s/%s", lud["fbp"], lud["fbc"], fbp, fbc)
	}
	// +44 20 7946 0958 in E.164 digits, from the site's default region.
	if v := lud["ph"].([]any)[0]; v != sha("442079460958") {
		t.Errorf("ph = %v, want the hash of 442079460958", v)
	}
	// The form is sent with GET: the thank-you page's URL holds every field,
	// the password among them. Its PageView reaches Meta without them.
	thanks := s.graphEvent(t, "109001", "thank-you PageView", func(ev map[string]any) bool {
		u, _ := ev["event_source_url"].(string)
		return ev["event_name"] == "PageView" && strings.HasPrefix(u, s.base+"/thanks")
	})
	if thanks["event_source_url"] != s.base+"/thanks" || thanks["referrer_url"] != landing {
		t.Errorf("thank-you PageView: event_source_url %v, referrer_url %v", thanks["event_source_url"], thanks["referrer_url"])
	}
	for _, raw := range s.relay.graph.Events("109001") {
		if bytes.Contains(raw, []byte("hunter2")) || bytes.Contains(raw, []byte("Grace")) {
			t.Fatalf("raw personal data or a password reached Meta: %s", raw)
		}
	}

	// Identity stitching: a conversion the backend posts later, naming the
	// visitor only by their email, or only by the visitor id the site passed
	// to its backend as external_id, is delivered with what the visitor gave
	// before: fbp, fbc, em, ph.
	vid, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie.match(/_cr_vid=([^;]+)/)[1]`))
	if err != nil || vid == "" {
		t.Fatalf("visitor id cookie: %q %v", vid, err)
	}
	if err := s.relay.app.Identity.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, key, err := rotateShopKey(s)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	for _, c := range []struct{ id, field, value string }{
		{"crm-by-email", "em", "grace.hopper@example.com"},
		{"crm-by-visitor", "external_id", vid},
	} {
		code, out := s.relay.post(t, key, map[string]any{"event_name": "Purchase", "event_time": now, "event_id": c.id,
			"action_source": "system_generated", "user_data": map[string]any{c.field: c.value},
			"custom_data": map[string]any{"value": 120, "currency": "GBP"}})
		if code != 200 {
			t.Fatalf("server event: %d %v", code, out)
		}
		ev := s.graphEvent(t, "109001", c.id, func(ev map[string]any) bool { return ev["event_id"] == c.id })
		sud := ev["user_data"].(map[string]any)
		if sud["fbp"] != fbp || sud["fbc"] != fbc {
			t.Errorf("%s: fbp/fbc = %v/%v, want the browser's", c.id, sud["fbp"], sud["fbc"])
		}
		hashed(t, sud, "em", "ph")
		if v, _ := sud["ph"].([]any); len(v) == 0 || v[0] != sha("442079460958") {
			t.Errorf("%s: ph = %v, want the phone typed before", c.id, sud["ph"])
		}
	}
}

// rotateShopKey rotates the shop's api key and returns it (the one
// from creation was not kept).
func rotateShopKey(s *shop) (*store.Site, string, error) {
	key, err := RotateAPIKey(context.Background(), s.relay.app.Store, s.site.Key)
	return s.site, key, err
}

type hookRecorder struct {
	mu     sync.Mutex
	bodies [][]byte
	sigs   []string
	stamps []string
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, b)
	h.sigs = append(h.sigs, r.Header.Get(leads.SignatureHeader))
	h.stamps = append(h.stamps, r.Header.Get(leads.TimestampHeader))
	h.mu.Unlock()
}

// TestBrowserPartialLead: a visitor types an email and a phone and leaves.
// After the timeout there is a partial lead: in the export with its raw
// values, at the webhook with a valid signature, and at Meta only when
// forwarding is on (consent mode none allows it).
func TestBrowserPartialLead(t *testing.T) {
	for _, forward := range []bool{false, true} {
		t.Run(fmt.Sprintf("forward=%v", forward), func(t *testing.T) {
			hooks := &hookRecorder{}
			hookSrv := httptest.NewServer(hooks)
			defer hookSrv.Close()
			s := newShop(t, "109002", func(s *store.Site) {
				s.PartialLeadTimeout = 2 * time.Second
				s.WebhookURL = hookSrv.URL
				s.WebhookAllowHTTP, s.WebhookAllowPrivate = true, true // a plain http test server on loopback
				s.PartialLeadForward = forward
			})
			ctx := browsertest.New(t, browsertest.Options{HostRules: shopHostRules, Timeout: 90 * time.Second})
			if err := chromedp.Do(ctx,
				chromedp.Navigate(s.base+"/quote"),
				chromedp.SendKeys(chromedp.ID("em"), "Alan.Turing@Example.com"),
				chromedp.SendKeys(chromedp.ID("ph"), "+44 20 7946 0000"),
				chromedp.Click(chromedp.ID("fn")), // blur: the capture is sent
				chromedp.Sleep(1200*time.Millisecond),
				chromedp.Navigate("about:blank"), // leaves without submitting
			); err != nil {
				t.Fatal(err)
			}
			var partial []store.Lead
			deadline := time.Now().Add(20 * time.Second)
			for len(partial) == 0 && time.Now().Before(deadline) {
				all, err := s.relay.app.Store.ListLeads(context.Background(), store.LeadFilter{SiteKey: s.site.Key})
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range all {
					if l.State == store.LeadPartial {
						partial = append(partial, l)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			if len(partial) != 1 {
				t.Fatalf("partial leads = %d, want 1", len(partial))
			}
			var csv bytes.Buffer
			if err := leads.WriteCSV(&csv, partial); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(csv.String(), "Alan.Turing@Example.com") || !strings.Contains(csv.String(), "+44 20 7946 0000") {
				t.Errorf("export lacks the raw values:\n%s", csv.String())
			}
			secret, err := s.relay.app.Store.WebhookSecret(context.Background(), s.site.Key, leads.NewWebhookSecret())
			if err != nil {
				t.Fatal(err)
			}
			sharedtest.WaitFor(t, 20*time.Second, "webhook", func() bool {
				hooks.mu.Lock()
				defer hooks.mu.Unlock()
				return len(hooks.bodies) > 0
			})
			hooks.mu.Lock()
			body, sig, ts := hooks.bodies[0], hooks.sigs[0], hooks.stamps[0]
			hooks.mu.Unlock()
			if err := leads.Verify(secret, body, ts, sig, time.Now(), leads.SignatureTolerance); err != nil {
				t.Errorf("webhook signature %q: %v", sig, err)
			}
			if !bytes.Contains(body, []byte("Alan.Turing@Example.com")) {
				t.Errorf("webhook body lacks the lead: %s", body)
			}
			if !forward {
				// Once the sweeper decided the forward (skipped), none can
				// follow: wait for that decision, not for time to pass.
				sharedtest.WaitFor(t, 20*time.Second, "the forward decided", func() bool {
					l, err := s.relay.app.Store.Lead(context.Background(), partial[0].ID)
					return err == nil && l.ForwardState != store.ForwardPending && l.ForwardState != store.ForwardNone
				})
				if l, _ := s.relay.app.Store.Lead(context.Background(), partial[0].ID); l.ForwardState != store.ForwardSkipped {
					t.Fatalf("forward state with forwarding off = %q, want skipped", l.ForwardState)
				}
				for _, raw := range s.relay.graph.Events("109002") {
					if bytes.Contains(raw, []byte(`"PartialLead"`)) {
						t.Fatal("a partial lead reached Meta with forwarding off")
					}
				}
				return
			}
			ev := s.graphEvent(t, "109002", "PartialLead", func(ev map[string]any) bool { return ev["event_name"] == "PartialLead" })
			ud := ev["user_data"].(map[string]any)
			hashed(t, ud, "em", "ph")
			if ud["em"].([]any)[0] != sha("alan.turing@example.com") || ud["ph"].([]any)[0] != sha("442079460000") {
				t.Errorf("PartialLead em/ph = %v/%v", ud["em"], ud["ph"])
			}
		})
	}
}

// TestBrowserErasedField: a visitor types a phone, then deletes it; the
// lead keeps no phone, nor its hash.
func TestBrowserErasedField(t *testing.T) {
	s := newShop(t, "109003", nil)
	ctx := browsertest.New(t, browsertest.Options{HostRules: shopHostRules, Timeout: 60 * time.Second})
	const phone = "+44 20 7946 0000"
	lead := func(ok func(l store.Lead) bool) (l store.Lead) {
		sharedtest.WaitFor(t, 20*time.Second, "the lead", func() bool {
			all, err := s.relay.app.Store.ListLeads(context.Background(), store.LeadFilter{SiteKey: s.site.Key})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) == 1 {
				l = all[0]
			}
			return len(all) == 1 && ok(l)
		})
		return l
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.base+"/quote"),
		chromedp.SendKeys(chromedp.ID("em"), "Alan.Turing@Example.com"),
		chromedp.SendKeys(chromedp.ID("ph"), phone),
		chromedp.Click(chromedp.ID("fn")), // blur: the capture is sent
	); err != nil {
		t.Fatal(err)
	}
	if l := lead(func(l store.Lead) bool { return l.Data.Fields["ph"] == phone }); l.PhoneHash == "" {
		t.Errorf("lead with a phone has no phone hash")
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("ph"), kb.End+strings.Repeat(kb.Backspace, len(phone))),
		chromedp.SendKeys(chromedp.ID("fn"), "Alan"),
		chromedp.Click(chromedp.ID("em")),
	); err != nil {
		t.Fatal(err)
	}
	l := lead(func(l store.Lead) bool { return l.Data.Fields["fn"] == "Alan" })
	if _, ok := l.Data.Fields["ph"]; ok || l.PhoneHash != "" {
		t.Errorf("after the phone was deleted: fields %q, phone hash %q", l.Data.Fields, l.PhoneHash)
	}
	if l.Data.Fields["em"] != "Alan.Turing@Example.com" || l.EmailHash == "" {
		t.Errorf("the email was lost: fields %q, email hash %q", l.Data.Fields, l.EmailHash)
	}
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestDemoPage: the built-in demo site works out of the box: a newcomer
// types into /demo, submits, and the sandbox holds the Lead Meta would
// have received, hashed.
func TestDemoPage(t *testing.T) {
	cfg := config.Config{DataDir: t.TempDir(), GraphURL: "http://127.0.0.1:1", BatchLinger: 50 * time.Millisecond, Demo: true}
	a, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	srv := httptest.NewServer(a.Handler())
	defer func() {
		srv.Close()
		a.Shutdown(context.Background())
	}()
	ctx := browsertest.New(t, browsertest.Options{Timeout: 60 * time.Second})
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/demo"),
		chromedp.SendKeys(chromedp.ID("em"), "Newcomer@Example.com"),
		chromedp.SendKeys(chromedp.ID("fn"), "Ada"),
		chromedp.Click(chromedp.ID("ph")),
		chromedp.Click(chromedp.ID("send")),
	); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			items, _ := a.Store.Items(context.Background(), "", "", 20)
			for _, it := range items {
				t.Logf("outbox: %s %s %s %s", it.EventName, it.State, it.LastError, it.Payload)
			}
		}
	}()
	sharedtest.WaitFor(t, 20*time.Second, "the Lead in the sandbox", func() bool {
		recs, err := a.Store.SandboxRecords(context.Background(), DemoSiteKey, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if bytes.Contains(r.Payload, []byte(`"event_name":"Lead"`)) {
				if bytes.Contains(r.Payload, []byte("Newcomer")) || !bytes.Contains(r.Payload, []byte(sha("newcomer@example.com"))) {
					t.Fatalf("sandbox Lead not hashed: %s", r.Payload)
				}
				return true
			}
		}
		return false
	})
}
