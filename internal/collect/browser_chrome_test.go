package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/capirelay/capirelay/internal/browsertest"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/tag"
)

// chromeSite serves a shop's pages, the tag and /e from one test server.
// Chromium reaches it as www.example.co.uk (host-resolver rules), so cookie
// domains behave as on a real site under a two-label public suffix; Meta's
// own hosts resolve nowhere, as behind an ad blocker.
type chromeSite struct {
	bb   *browserBundle
	srv  *httptest.Server
	base string // http://www.example.co.uk:PORT

	mu     sync.Mutex
	bodies []string          // every raw /e body
	pages  map[string]string // path → HTML served instead of chromePage
	setCk  []string          // every Set-Cookie /e answered
	// answered counts the /e requests answered (bodies those received).
	answered int
}

// waitAnswered waits until every /e request received has been answered,
// so that no response still in flight (its Set-Cookie included) reaches
// the browser after what the test does next.
func (cs *chromeSite) waitAnswered(t *testing.T) {
	t.Helper()
	sharedtest.WaitFor(t, 10*time.Second, "every /e request's answer", func() bool {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		return cs.answered == len(cs.bodies)
	})
}

const chromeHost = "www.example.co.uk"

var chromeHostRules = []string{
	"MAP *.example.co.uk 127.0.0.1",
	"MAP connect.facebook.net ~NOTFOUND",
	"MAP *.facebook.com ~NOTFOUND",
	"MAP facebook.com ~NOTFOUND",
}

func startChromeSite(t *testing.T) *chromeSite {
	t.Helper()
	cs := &chromeSite{bb: setupBrowser(t)}
	mux := http.NewServeMux()
	mux.Handle("GET /t.js", &tag.Handler{ConfigFunc: func(ctx context.Context, key string) (tag.Config, error) {
		s, err := cs.bb.db.Site(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return tag.Config{}, tag.ErrUnknownSite
		}
		if err != nil {
			return tag.Config{}, err
		}
		return tag.Config{Consent: s.Consent}, nil
	}})
	mux.HandleFunc("POST /e", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		cs.mu.Lock()
		cs.bodies = append(cs.bodies, string(b))
		cs.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		cs.bb.b.ServeHTTP(w, r)
		cs.mu.Lock()
		cs.setCk = append(cs.setCk, w.Header()["Set-Cookie"]...)
		cs.answered++
		cs.mu.Unlock()
	})
	mux.Handle("OPTIONS /e", cs.bb.b)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		cs.mu.Lock()
		page, ok := cs.pages[r.URL.Path]
		cs.mu.Unlock()
		if ok {
			fmt.Fprint(w, page)
			return
		}
		key := r.URL.Query().Get("site")
		if key == "" {
			key = "shop"
		}
		fmt.Fprint(w, chromePage(cs.base, key))
	})
	mux.HandleFunc("POST /thanks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>Thanks</title><p>Thanks!")
	})
	cs.srv = httptest.NewServer(mux)
	t.Cleanup(cs.srv.Close)
	u, _ := url.Parse(cs.srv.URL)
	cs.base = "http://" + chromeHost + ":" + u.Port()
	return cs
}

// chromePage is a landing page with Meta's Pixel base code (which cannot
// load: Meta is blocked), a recording fbq stub for dual mode, the capirelay
// snippet and a sign-up form with a password field, opted in as a Lead
// (a form with a password is no Lead by default).
func chromePage(base, siteKey string) string {
	return `<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
<script>window.fbqCalls=[];window.fbq=function(){fbqCalls.push(Array.prototype.slice.call(arguments))};</script>
<script async src="https://connect.facebook.net/en_US/fbevents.js"></script>
` + tag.Snippet(base, siteKey) + `
<script>capirelay('identify', {country: 'gb'});</script>
</head><body>
<form id="signup" action="/thanks" method="post" data-capirelay-event="Lead">
<label for="em">Email</label><input id="em" name="email" type="email">
<label>Phone <input id="ph" name="phone" type="tel"></label>
<input id="fn" name="first_name" placeholder="First name">
<input id="ln" name="last_name" placeholder="Last name">
<input id="pw" name="password" type="password" placeholder="Password">
<input type="hidden" name="csrf" value="hidden-token-value">
<div data-capirelay-ignore><input id="note" name="email_backup" type="email"></div>
<button id="go" type="submit">Sign up</button>
</form></body></html>`
}

func (cs *chromeSite) rawBodies() string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return strings.Join(cs.bodies, "\n")
}

// checkFastPath fails the test unless every /e body the tag sent took the
// hand-written decoder, and decoded as encoding/json decodes it.
func (cs *chromeSite) checkFastPath(t *testing.T) {
	t.Helper()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.bodies) == 0 {
		t.Error("the tag sent no /e body")
	}
	for _, raw := range cs.bodies {
		fast, ok := fastBrowserBody([]byte(raw))
		if !ok {
			t.Errorf("a tag body took the encoding/json path: %s", raw)
			continue
		}
		if slow, err := slowBrowserBody([]byte(raw)); err != nil || !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s:\nfast %+v\nslow %+v, %v", raw, fast, slow, err)
		}
	}
}

// waitCapture polls the captures OnCapture received until one satisfies ok.
func (cs *chromeSite) waitCapture(t *testing.T, what string, ok func(Capture) bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		cs.bb.mu.Lock()
		found := slices.ContainsFunc(cs.bb.captures, ok)
		cs.bb.mu.Unlock()
		if found {
			return
		}
	}
	t.Fatalf("OnCapture never got %s; /e bodies:\n%s", what, cs.rawBodies())
}

// waitItem polls the outbox until an item satisfies ok.
func (cs *chromeSite) waitItem(t *testing.T, what string, ok func(store.Item, map[string]any) bool) (store.Item, map[string]any) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, it := range cs.bb.items(t) {
			if p := payload(t, it); ok(it, p) {
				return it, p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s in the outbox; /e bodies:\n%s", what, cs.rawBodies())
	return store.Item{}, nil
}

func TestChromeAcceptance(t *testing.T) {
	cs := startChromeSite(t)
	ctx := browsertest.New(t, browsertest.Options{HostRules: chromeHostRules, Timeout: 90 * time.Second})

	var cmu sync.Mutex
	var console []chromedp.ConsoleMessage
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			cmu.Lock()
			console = append(console, m)
			cmu.Unlock()
		}
	}()

	const clickID = "IwAR2F4-dbP0l7Mn1IawQQ_MiXeDCaSe-xYz"
	landing := cs.base + "/landing?utm_source=fb&fbclid=" + clickID
	if err := chromedp.Do(ctx, chromedp.Navigate(landing)); err != nil {
		t.Fatal(err)
	}

	// 1. PageView stored with fbp, fbc, user agent, IP and the page URL.
	_, pv := cs.waitItem(t, "PageView", func(it store.Item, p map[string]any) bool {
		return it.EventName == "PageView" && p["event_source_url"] == landing
	})
	ud := pv["user_data"].(map[string]any)
	if ud["client_user_agent"] != browsertest.UserAgent || ud["client_ip_address"] != "127.0.0.1" {
		t.Errorf("PageView user_data = %v", ud)
	}

	// 2. _fbp and _fbc on the registrable domain, in Meta's format, the click
	// id's case kept, and the same values in the event.
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{landing}})
	if err != nil {
		t.Fatal(err)
	}
	cookies := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		cookies[c.Name] = c
	}
	fbp, fbc, vid := cookies["_fbp"], cookies["_fbc"], cookies["_cr_vid"]
	if fbp == nil || fbc == nil || vid == nil {
		t.Fatalf("cookies = %+v, want _fbp, _fbc and _cr_vid", res.Cookies)
	}
	if !regexp.MustCompile(`^fb\.2\.\d{13}\.\d{10}$`).MatchString(fbp.Value) {
		t.Errorf("_fbp = %q, want fb.2.<ms>.<10 digits>", fbp.Value)
	}
	if !regexp.MustCompile(`^fb\.2\.\d{13}\.` + clickID + `$`).MatchString(fbc.Value) {
		t.Errorf("_fbc = %q, want fb.2.<ms>.%s", fbc.Value, clickID)
	}
	for _, c := range []*network.Cookie{fbp, fbc, vid} {
		if c.Domain != ".example.co.uk" || c.HTTPOnly || c.Path != "/" || c.SameSite != network.CookieSameSiteLax {
			t.Errorf("cookie %s: domain %q httpOnly %v path %q sameSite %q", c.Name, c.Domain, c.HTTPOnly, c.Path, c.SameSite)
		}
	}
	if days := (fbp.Expires - float64(time.Now().Unix())) / 86400; days < 89 || days > 91 {
		t.Errorf("_fbp expires in %.1f days, want 90", days)
	}
	if ud["fbp"] != fbp.Value || ud["fbc"] != fbc.Value {
		t.Errorf("PageView fbp/fbc = %v/%v, cookies %q/%q", ud["fbp"], ud["fbc"], fbp.Value, fbc.Value)
	}

	// 3. A track call keeps its eventID, and fbq gets the same one.
	id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`capirelay('track', 'AddToCart', {value: 9.5, currency: 'EUR'}, {eventID: 'evt-x-1'})`))
	if err != nil || id != "evt-x-1" {
		t.Fatalf("capirelay('track') = %q, %v", id, err)
	}
	_, atc := cs.waitItem(t, "AddToCart", func(it store.Item, p map[string]any) bool { return it.EventName == "AddToCart" })
	if atc["event_id"] != "evt-x-1" {
		t.Errorf("AddToCart event_id = %v, want evt-x-1", atc["event_id"])
	}
	calls, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](`JSON.stringify(fbqCalls)`))
	if err != nil {
		t.Fatal(err)
	}
	var fbq string
	json.Unmarshal(calls, &fbq)
	if !strings.Contains(fbq, `["track","AddToCart",{"value":9.5,"currency":"EUR"},{"eventID":"evt-x-1"}]`) {
		t.Errorf("fbq calls = %s, want the AddToCart with eventID evt-x-1", fbq)
	}
	pvID, _ := pv["event_id"].(string)
	if !strings.Contains(fbq, `["track","PageView",{},{"eventID":"`+pvID+`"}]`) {
		t.Errorf("fbq calls = %s, want the PageView with eventID %s", fbq, pvID)
	}

	// 4. SPA navigation is a PageView of its own.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`history.pushState({}, '', '/app/step-2')`)); err != nil {
		t.Fatal(err)
	}
	cs.waitItem(t, "SPA PageView", func(it store.Item, p map[string]any) bool {
		return it.EventName == "PageView" && p["event_source_url"] == cs.base+"/app/step-2"
	})

	// 5. Typing a lead form and submitting it: a Lead with em, ph, fn, ln
	// hashed, the same fbp/fbc; the password never leaves the browser.
	const password = "S3cret-Pa55word-xyzzy"
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("em"), "Ada.Lovelace@Example.com"),
		chromedp.SendKeys(chromedp.ID("ph"), "+44 20 7946 0958"),
		chromedp.SendKeys(chromedp.ID("fn"), "Ada"),
		chromedp.SendKeys(chromedp.ID("ln"), "Lovelace"),
		chromedp.SendKeys(chromedp.ID("pw"), password),
		chromedp.SendKeys(chromedp.ID("note"), "ignored@example.com"),
		chromedp.Sleep(1200*time.Millisecond), // the 800 ms input debounce
		chromedp.Click(chromedp.ID("go")),
	); err != nil {
		t.Fatal(err)
	}
	lead, lp := cs.waitItem(t, "Lead", func(it store.Item, p map[string]any) bool { return it.EventName == "Lead" })
	lud := lp["user_data"].(map[string]any)
	for _, k := range []string{"em", "ph", "fn", "ln", "country"} {
		v, _ := lud[k].([]any)
		if len(v) != 1 || !hex64.MatchString(fmt.Sprint(v[0])) {
			t.Errorf("Lead user_data.%s = %v, want one SHA-256", k, lud[k])
		}
	}
	if lud["fbp"] != fbp.Value || lud["fbc"] != fbc.Value {
		t.Errorf("Lead fbp/fbc = %v/%v, want %q/%q", lud["fbp"], lud["fbc"], fbp.Value, fbc.Value)
	}
	if lead.VisitorID != vid.Value {
		t.Errorf("Lead visitor id = %q, want %q", lead.VisitorID, vid.Value)
	}
	raw := cs.rawBodies()
	for _, secret := range []string{password, "hidden-token-value", "ignored@example.com"} {
		if strings.Contains(raw, secret) {
			t.Errorf("%q was sent to /e", secret)
		}
	}
	if !strings.Contains(raw, `"type":"capture"`) || !strings.Contains(raw, "Ada.Lovelace@Example.com") {
		t.Errorf("no field capture reached /e:\n%s", raw)
	}
	// OnCapture runs after the request's events are committed: wait for the
	// submit to reach it rather than read the captures as the Lead lands.
	cs.waitCapture(t, "the submitted form", func(c Capture) bool {
		return c.Submitted && c.FormID == "signup" && c.Fields["em"] == "Ada.Lovelace@Example.com" && c.Fields["ln"] == "Lovelace"
	})
	cs.bb.mu.Lock()
	for _, c := range cs.bb.captures {
		if _, ok := c.Fields["pw"]; ok {
			t.Errorf("capture has a password field: %+v", c.FormID)
		}
	}
	cs.bb.mu.Unlock()

	// The submit navigates to /thanks: let that load finish first, or it
	// may abort the next navigation (net::ERR_ABORTED).
	for deadline := time.Now().Add(10 * time.Second); ; {
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + " " + document.readyState`))
		if err == nil && state == "/thanks complete" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the form's submit did not load /thanks: %q, %v", state, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// 6. A later visit keeps the cookies byte for byte (no new click id).
	if err := chromedp.Do(ctx, chromedp.Navigate(cs.base+"/second")); err != nil {
		t.Fatal(err)
	}
	_, second := cs.waitItem(t, "second PageView", func(it store.Item, p map[string]any) bool {
		return it.EventName == "PageView" && p["event_source_url"] == cs.base+"/second"
	})
	sud := second["user_data"].(map[string]any)
	if sud["fbp"] != fbp.Value || sud["fbc"] != fbc.Value {
		t.Errorf("second visit fbp/fbc = %v/%v, want %q/%q kept", sud["fbp"], sud["fbc"], fbp.Value, fbc.Value)
	}

	cs.checkFastPath(t)

	// 7. No exception and no console error from the tag.
	cmu.Lock()
	defer cmu.Unlock()
	for _, m := range console {
		if m.IsException() || m.Type == chromedp.ConsoleError && strings.Contains(m.URL, "/t.js") {
			t.Errorf("console: %s %s:%d %s", m.Type, m.URL, m.Line, m)
		}
	}
}

// TestChromeConsentRequired: on a site whose consent mode is "required" the
// tag sets no cookie and captures nothing until consent; the event sent
// before is held and released by the grant.
func TestChromeConsentRequired(t *testing.T) {
	cs := startChromeSite(t)
	mustCreateSite(t, cs.bb.db, "euco", store.ConsentRequired, "example.co.uk")
	ctx := browsertest.New(t, browsertest.Options{HostRules: chromeHostRules})
	page := cs.base + "/eu?site=euco&fbclid=ClickBeforeConsent"
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	held, _ := cs.waitItem(t, "held PageView", func(it store.Item, p map[string]any) bool {
		return it.SiteKey == "euco" && it.EventName == "PageView"
	})
	if held.State != store.StateHeld {
		t.Errorf("PageView before consent: state %s, want held", held.State)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("em"), "before@example.com"), chromedp.Sleep(1100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	cookies, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cookies, "_fbp") || strings.Contains(cookies, "_fbc") || strings.Contains(cookies, "_cr_vid") {
		t.Errorf("cookies before consent: %q", cookies)
	}
	if raw := cs.rawBodies(); strings.Contains(raw, "before@example.com") || strings.Contains(raw, `"fbp":"fb.`) {
		t.Errorf("captured or used cookies before consent:\n%s", raw)
	}

	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`capirelay('consent', 'granted')`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		it, err := cs.bb.db.Item(context.Background(), held.ID)
		if err != nil {
			t.Fatal(err)
		}
		if it.State == store.StatePending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("held PageView still %s after consent; bodies:\n%s", it.State, cs.rawBodies())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cookies, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`_fbc=fb\.2\.\d{13}\.ClickBeforeConsent`).MatchString(cookies) || !strings.Contains(cookies, "_fbp=fb.2.") {
		t.Errorf("cookies after consent: %q", cookies)
	}
	cs.checkFastPath(t)
}
