package collect

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/capirelay/capirelay/internal/browsertest"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/tag"
)

// setPage serves body (inside a page with a recording fbq stub and the
// snippet of siteKey) at path.
func (cs *chromeSite) setPage(path, siteKey, head, body string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.pages == nil {
		cs.pages = map[string]string{}
	}
	cs.pages[path] = `<!doctype html><html><head><meta charset="utf-8"><title>Page</title>
<script>window.fbqCalls=[];window.fbq=function(){fbqCalls.push(Array.prototype.slice.call(arguments))};</script>
` + tag.Snippet(cs.base, siteKey) + head + `
</head><body><iframe name="sink" style="width:1px;height:1px"></iframe>` + body + `</body></html>`
}

// tagEvents decodes every event the tag sent so far.
func (cs *chromeSite) tagEvents(t *testing.T) []browserEvent {
	t.Helper()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out []browserEvent
	for _, raw := range cs.bodies {
		b, err := slowBrowserBody([]byte(raw))
		if err != nil {
			t.Fatalf("tag body %s: %v", raw, err)
		}
		out = append(out, b.Events...)
	}
	return out
}

// waitEvent polls the tag's bodies until an event satisfies ok.
func (cs *chromeSite) waitEvent(t *testing.T, what string, ok func(e browserEvent) bool) browserEvent {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, e := range cs.tagEvents(t) {
			if ok(e) {
				return e
			}
		}
	}
	t.Fatalf("the tag sent no %s; bodies:\n%s", what, cs.rawBodies())
	return browserEvent{}
}

func run(t *testing.T, ctx context.Context, js string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](js)); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
}

func open(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
}

// TestChromeNoPaymentData: card numbers typed into fields the tag would
// otherwise capture as a phone (labels in German and Spanish, a field
// named ccnum) never leave the browser, nor does anything else of a form
// with a payment field; a card-like value in a plain phone field, or given
// to identify under Meta's name, is not sent either.
func TestChromeNoPaymentData(t *testing.T) {
	cs := startChromeSite(t)
	cs.setPage("/pay", "shop", "", `
<form id="de" action="/x" target="sink"><label>E-Mail <input id="de-em" type="email"></label>
<label>Kartennummer <input id="de-cc" type="tel"></label><button id="de-go">Bezahlen</button></form>
<form id="es"><label>Correo <input id="es-em" type="email"></label>
<input id="es-cc" type="tel" placeholder="Número de tarjeta"></form>
<form id="fr"><label>Courriel <input id="fr-em" type="email"></label>
<label>Numéro de carte <input id="fr-cc" type="tel"></label></form>
<form id="nm"><input id="nm-cc" type="tel" name="ccnum"><input id="nm-ph" type="tel" name="phone"></form>
<form id="ac"><label>Email <input id="ac-em" type="email"></label><input id="ac-num" name="number" autocomplete="cc-number"></form>
<form id="ib"><label>Phone <input id="ib-ph" type="tel"></label><label>IBAN <input id="ib-iban"></label></form>
<form id="plain"><label>Email <input id="pl-em" type="email"></label><label>Phone <input id="pl-ph" type="tel"></label></form>`)
	ctx := browsertest.New(t, browsertest.Options{HostRules: chromeHostRules})
	open(t, ctx, cs.base+"/pay")
	cards := []string{"4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005", "4242424242424242", "6011 1111 1111 1117"}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("de-em"), "de@example.com"),
		chromedp.SendKeys(chromedp.ID("de-cc"), cards[0]),
		chromedp.SendKeys(chromedp.ID("es-em"), "es@example.com"),
		chromedp.SendKeys(chromedp.ID("es-cc"), cards[1]),
		chromedp.SendKeys(chromedp.ID("fr-em"), "fr@example.com"),
		chromedp.SendKeys(chromedp.ID("fr-cc"), cards[2]),
		chromedp.SendKeys(chromedp.ID("nm-cc"), cards[3]),
		chromedp.SendKeys(chromedp.ID("nm-ph"), "+44 20 7946 0958"),
		chromedp.SendKeys(chromedp.ID("ac-em"), "ac@example.com"),
		chromedp.SendKeys(chromedp.ID("ac-num"), "4000 0566 5566 5556"),
		chromedp.SendKeys(chromedp.ID("ib-ph"), "+49 30 1234567"),
		chromedp.SendKeys(chromedp.ID("ib-iban"), "DE89370400440532013000"),
		chromedp.SendKeys(chromedp.ID("pl-ph"), cards[4]),
		chromedp.SendKeys(chromedp.ID("pl-em"), "plain@example.com"),
		chromedp.Sleep(1200*time.Millisecond), // the input debounce
		chromedp.Click(chromedp.ID("de-go")),
	); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, `capirelay('identify', {phone: '4111-1111-1111-1111', email: 'id@example.com'}); capirelay('track', 'Contact')`)
	cs.waitEvent(t, "plain form capture", func(e browserEvent) bool { return e.Type == "capture" && e.Fields["em"] == "plain@example.com" })
	contact := cs.waitEvent(t, "Contact", func(e browserEvent) bool { return e.Name == "Contact" })
	time.Sleep(300 * time.Millisecond)

	raw := cs.rawBodies()
	digits := regexp.MustCompile(`\d`)
	for _, c := range append(cards, "4111-1111-1111-1111", "4000 0566 5566 5556") {
		if strings.Contains(raw, c) || strings.Contains(raw, strings.Join(digits.FindAllString(c, -1), "")) {
			t.Errorf("card number %s was sent to /e", c)
		}
	}
	for _, v := range []string{"DE89370400440532013000", "+49 30 1234567", "ac@example.com"} {
		if strings.Contains(raw, v) {
			t.Errorf("%s of a payment form was sent to /e", v)
		}
	}
	for _, e := range cs.tagEvents(t) {
		if slices.Contains([]string{"de", "es", "fr", "nm", "ac", "ib"}, e.Form) {
			t.Errorf("a payment form was sent: %+v", e)
		}
		if e.Type == "capture" && e.Form == "plain" && e.Fields["ph"] != "" {
			t.Errorf("a card number was captured as a phone: %+v", e.Fields)
		}
	}
	if contact.User["em"] != "id@example.com" || contact.User["ph"] != "" {
		t.Errorf("identify with a card-like phone: user = %v, want the email only", contact.User)
	}
}

// TestChromeCardFieldNames: a form with a card field named the way
// checkout forms often name it (cc_number, cc_exp, exp_month, "Security
// code", a card number placeholder on a tel input) is a payment form: none
// of it leaves the browser. Ordinary lead forms, one with a captcha
// labelled "Security code" and one asking for years of experience
// (exp_years), are still captured.
func TestChromeCardFieldNames(t *testing.T) {
	cs := startChromeSite(t)
	cs.setPage("/checkout", "shop", "", `
<form id="num"><label>Email <input id="num-em" type="email"></label><input id="num-cc" type="tel" name="cc_number"></form>
<form id="exp"><label>Email <input id="exp-em" type="email"></label><input id="exp-cc" name="billing_cc_exp"></form>
<form id="sec"><label>Email <input id="sec-em" type="email"></label><label>Security code <input id="sec-cc" type="tel"></label></form>
<form id="month"><label>Email <input id="month-em" type="email"></label><select name="exp_month"><option>01</option></select>
<input id="month-cc" name="exp_year"></form>
<form id="holder"><label>Email <input id="holder-em" type="email"></label><input id="holder-cc" type="tel" name="number" placeholder="1234 1234 1234 1234"></form>
<form id="captcha"><label>Email <input id="captcha-em" type="email"></label><img alt="">
<label>Security code <input id="captcha-code" name="captcha_code"></label></form>
<form id="plain"><label>Email <input id="pl-em" type="email"></label><label>Phone <input id="pl-ph" type="tel" placeholder="0123 456 7890"></label>
<label>Name <input id="pl-nm" name="name"></label><label>City <input id="pl-ct" name="city"></label>
<label>Years of experience <input id="pl-exp" name="exp_years"></label></form>`)
	ctx := browsertest.New(t, browsertest.Options{HostRules: chromeHostRules})
	open(t, ctx, cs.base+"/checkout")
	payment := []string{"num", "exp", "sec", "month", "holder"}
	var typing []chromedp.Action[chromedp.Void]
	for _, id := range payment {
		typing = append(typing, chromedp.SendKeys(chromedp.ID(id+"-em"), id+"@example.com"), chromedp.SendKeys(chromedp.ID(id+"-cc"), "12"))
	}
	typing = append(typing,
		chromedp.SendKeys(chromedp.ID("captcha-em"), "captcha@example.com"),
		chromedp.SendKeys(chromedp.ID("captcha-code"), "x7k2"),
		chromedp.SendKeys(chromedp.ID("pl-em"), "plain@example.com"),
		chromedp.SendKeys(chromedp.ID("pl-ph"), "+44 20 7946 0958"),
		chromedp.SendKeys(chromedp.ID("pl-nm"), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.ID("pl-ct"), "London"),
		chromedp.SendKeys(chromedp.ID("pl-exp"), "7"),
		chromedp.Click(chromedp.ID("pl-em")), // blur: the last capture is sent
	)
	if err := chromedp.Do(ctx, typing...); err != nil {
		t.Fatal(err)
	}
	cs.waitEvent(t, "captcha form capture", func(e browserEvent) bool {
		return e.Type == "capture" && e.Form == "captcha" && e.Fields["em"] == "captcha@example.com"
	})
	plain := cs.waitEvent(t, "plain form capture", func(e browserEvent) bool { return e.Type == "capture" && e.Fields["ct"] == "London" })
	want := map[string]string{"em": "plain@example.com", "ph": "+44 20 7946 0958", "fn": "Ada", "ln": "Lovelace", "ct": "London"}
	if !maps.Equal(plain.Fields, want) {
		t.Errorf("plain form fields = %q, want %q", plain.Fields, want)
	}
	time.Sleep(300 * time.Millisecond)
	for _, e := range cs.tagEvents(t) {
		if slices.Contains(payment, e.Form) {
			t.Errorf("a payment form was sent: %+v", e)
		}
	}
}

// TestChromeErasedField: a phone and a name the visitor typed and then
// deleted are sent as "" (the relay erases them); the Lead still carries
// the phone given to identify.
func TestChromeErasedField(t *testing.T) {
	cs := startChromeSite(t)
	cs.setPage("/contact", "shop", "", `
<form id="contact" action="/c" target="sink"><label>Email <input id="em" type="email"></label>
<label>Phone <input id="ph" type="tel"></label><label>Full name <input id="nm" name="name"></label>
<button id="go">Send</button></form>`)
	ctx := browsertest.New(t, browsertest.Options{HostRules: chromeHostRules})
	open(t, ctx, cs.base+"/contact")
	const phone = "+44 20 7946 0958"
	// Passing through blank fields erases nothing: a capture from a later
	// page load must not erase what the visitor typed on an earlier one.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("ph")),
		chromedp.Click(chromedp.ID("nm")),
		chromedp.SendKeys(chromedp.ID("em"), "ada@example.com"),
		chromedp.Click(chromedp.ID("ph")),
	); err != nil {
		t.Fatal(err)
	}
	cs.waitCapture(t, "the email alone", func(c Capture) bool { return maps.Equal(c.Fields, map[string]string{"em": "ada@example.com"}) })
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("ph"), phone),
		chromedp.SendKeys(chromedp.ID("nm"), "Ada Lovelace"),
		chromedp.Click(chromedp.ID("em")),
	); err != nil {
		t.Fatal(err)
	}
	cs.waitCapture(t, "the typed fields", func(c Capture) bool { return c.Fields["ph"] == phone && c.Fields["ln"] == "Lovelace" })
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("ph"), kb.End+strings.Repeat(kb.Backspace, len(phone))),
		chromedp.SendKeys(chromedp.ID("nm"), kb.End+strings.Repeat(kb.Backspace, len("Ada Lovelace"))),
		chromedp.Click(chromedp.ID("em")),
	); err != nil {
		t.Fatal(err)
	}
	cs.waitCapture(t, "the erased fields", func(c Capture) bool {
		want := map[string]string{"em": "ada@example.com", "ph": "", "fn": "", "ln": ""}
		return maps.Equal(c.Fields, want) && !c.Submitted
	})

	run(t, ctx, `capirelay('identify', {phone: '+44 20 7946 0000'})`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("go"))); err != nil {
		t.Fatal(err)
	}
	lead := cs.waitEvent(t, "Lead", func(e browserEvent) bool { return e.Name == "Lead" })
	if lead.User["em"] != "ada@example.com" || lead.User["ph"] != "+44 20 7946 0000" {
		t.Errorf("Lead user = %v, want the email and identify's phone", lead.User)
	}
}

// TestChromeLeadRules: only a real lead form's submit is a Lead; forms sent
// by script count; data-capirelay-event names the event, data-capirelay-
// ignore silences the form. Every form posts into a hidden iframe, so the
// page stays.
func TestChromeLeadRules(t *testing.T) {
	cs := startChromeSite(t)
	cs.setPage("/forms", "shop", "", `
<form id="search" role="search" action="/s" target="sink"><input name="q" type="search" id="q"><input type="email" name="email"><button id="search-go">Search</button></form>
<form id="lone" action="/s" target="sink"><input name="q" type="search"><button id="lone-go">Go</button></form>
<form id="login" action="/l" target="sink"><input type="email" name="email" id="login-em"><input type="password" name="password"><button id="login-go">Log in</button></form>
<form id="cancel" action="/c" target="sink" onsubmit="event.preventDefault()"><input type="email" name="email" id="cancel-em"><button id="cancel-go">Send</button></form>
<form id="nofield" action="/n" target="sink"><input name="message"><button id="nofield-go">Send</button></form>
<form id="good" action="/g" target="sink"><input type="email" name="email" id="good-em"><button id="good-go">Subscribe</button></form>
<form id="script" action="/p" target="sink"><input type="tel" name="phone" id="script-ph"></form>
<form id="request" action="/r" target="sink"><input type="email" name="email" id="request-em"></form>
<form id="optin" action="/o" target="sink" data-capirelay-event="Subscribe" onsubmit="event.preventDefault()"><input name="nickname"><button id="optin-go">Join</button></form>
<div data-capirelay-ignore><form id="ignored" action="/i" target="sink"><input type="email" name="email"><button id="ignored-go">Send</button></form></div>`)
	ctx := browsertest.New(t, browsertest.Options{HostRules: chromeHostRules})
	open(t, ctx, cs.base+"/forms")
	for _, id := range []string{"search", "lone", "login", "cancel", "nofield", "good", "optin", "ignored"} {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID(id+"-go"))); err != nil {
			t.Fatal(err)
		}
	}
	run(t, ctx, `document.getElementById('script').submit()`)
	run(t, ctx, `document.getElementById('request').requestSubmit()`)
	cs.waitEvent(t, "the requestSubmit Lead", func(e browserEvent) bool { return e.Submit && e.Form == "request" })
	time.Sleep(500 * time.Millisecond)

	var got []string
	for _, e := range cs.tagEvents(t) {
		if e.Submit {
			got = append(got, e.Name+" "+e.Form)
		}
	}
	slices.Sort(got)
	want := []string{"Lead good", "Lead request", "Lead script", "Subscribe optin"}
	if !slices.Equal(got, want) {
		t.Errorf("submits sent = %q, want %q", got, want)
	}
}

// TestChromeBlankFieldKeepsValue: an empty optional "Mobile phone" does
// not erase the phone typed into another field of the same form.
func TestChromeBlankFieldKeepsValue(t *testing.T) {
	cs := startChromeSite(t)
	cs.setPage("/contact", "shop", "", `
<form id="contact" action="/c" target="sink"><label>Email <input id="em" type="email"></label>
<label>Phone <input id="ph" type="tel"></label><label>Mobile phone (optional) <input id="mob" type="tel"></label>
<button id="go">Send</button></form>`)
	ctx := browsertest.New(t, browsertest.Options{HostRules: chromeHostRules})
	open(t, ctx, cs.base+"/contact")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("em"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("ph"), "+44 20 7946 0958"),
		chromedp.Click(chromedp.ID("mob")), // focus and leave it blank
		chromedp.Click(chromedp.ID("go")),
	); err != nil {
		t.Fatal(err)
	}
	lead := cs.waitEvent(t, "Lead", func(e browserEvent) bool { return e.Name == "Lead" })
	if lead.User["ph"] != "+44 20 7946 0958" || lead.User["em"] != "ada@example.com" {
		t.Errorf("Lead user = %v, want em and ph", lead.User)
	}
	_, p := cs.waitItem(t, "stored Lead", func(it store.Item, p map[string]any) bool { return it.EventName == "Lead" })
	if ud := p["user_data"].(map[string]any); ud["ph"] == nil {
		t.Errorf("stored Lead user_data lacks ph: %v", ud)
	}
}

// fbqCalls returns the page's recorded fbq calls as JSON.
func fbqCalls(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(fbqCalls)`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestChromeConsentKeepsClick: under consent "required", a Purchase sent
// before the decision, on a landing page whose fbclid the SPA then strips,
// is released with the grant's fbp and the click's fbc; the Pixel (dual
// mode) hears nothing before the decision, then the decisions themselves.
func TestChromeConsentKeepsClick(t *testing.T) {
	cs := startChromeSite(t)
	mustCreateSite(t, cs.bb.db, "euco", store.ConsentRequired, "example.co.uk")
	cs.setPage("/eu", "euco", "", `<p>EU shop</p>`)
	ctx := browsertest.New(t, browsertest.Options{HostRules: chromeHostRules})
	const click = "IwAR0Held-Click_Case"
	open(t, ctx, cs.base+"/eu?fbclid="+click)
	run(t, ctx, `capirelay('track', 'Purchase', {value: 20, currency: 'EUR'}, {eventID: 'order-9'})`)
	held, _ := cs.waitItem(t, "held Purchase", func(it store.Item, p map[string]any) bool { return it.EventName == "Purchase" })
	if held.State != store.StateHeld {
		t.Fatalf("Purchase before consent: %s, want held", held.State)
	}
	run(t, ctx, `history.replaceState({}, '', '/eu')`) // the SPA drops the click id
	if calls := fbqCalls(t, ctx); calls != "[]" {
		t.Errorf("fbq called before any consent decision: %s", calls)
	}

	run(t, ctx, `capirelay('consent', 'granted')`)
	var it *store.Item
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var err error
		if it, err = cs.bb.db.Item(context.Background(), held.ID); err != nil {
			t.Fatal(err)
		}
		if it.State == store.StatePending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("held Purchase still %s; bodies:\n%s", it.State, cs.rawBodies())
		}
	}
	fbp, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie.match(/_fbp=([^;]+)/)[1]`))
	if err != nil {
		t.Fatal(err)
	}
	ud := payload(t, *it)["user_data"].(map[string]any)
	if ud["fbp"] != fbp {
		t.Errorf("released Purchase fbp = %v, want the grant's %s", ud["fbp"], fbp)
	}
	if fbc, _ := ud["fbc"].(string); !regexp.MustCompile(`^fb\.2\.\d{13}\.` + click + `$`).MatchString(fbc) {
		t.Errorf("released Purchase fbc = %q, want fb.2.<ms>.%s", fbc, click)
	}
	run(t, ctx, `capirelay('track', 'AddToCart', {}, {eventID: 'after-grant'})`)
	run(t, ctx, `capirelay('consent', 'denied')`)
	calls := fbqCalls(t, ctx)
	for _, want := range []string{`["consent","grant"]`, `"AddToCart",{},{"eventID":"after-grant"}]`, `["consent","revoke"]`} {
		if !strings.Contains(calls, want) {
			t.Errorf("fbq calls = %s, want %s", calls, want)
		}
	}
	if strings.Index(calls, `"grant"`) > strings.Index(calls, "AddToCart") {
		t.Errorf("fbq calls = %s: the grant must come first", calls)
	}

	// The next page tells the Pixel the stored decision before any event.
	run(t, ctx, `capirelay('consent', 'granted')`)
	time.Sleep(200 * time.Millisecond) // the _cr_consent cookie
	open(t, ctx, cs.base+"/eu")
	cs.waitEvent(t, "the second page's PageView", func(e browserEvent) bool { return e.Name == "PageView" && strings.HasSuffix(e.URL, "/eu") })
	if calls := fbqCalls(t, ctx); !strings.HasPrefix(calls, `[["consent","grant"],["track","PageView"`) {
		t.Errorf("fbq calls on the next page = %s, want the stored grant first", calls)
	}
}

// cookieCounts counts the cookies the browser would send to url, by name.
func cookieCounts(t *testing.T, ctx context.Context, url string) (map[string]int, []*network.Cookie) {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, c := range res.Cookies {
		n[c.Name]++
	}
	return n, res.Cookies
}

// TestChromeOneCookieEach: a site configured with its www subdomain (as
// the README's example), the relay under the same origin: the tag and /e
// agree on the registrable domain, so the browser holds one _fbp, one
// _fbc and one visitor id; "denied" removes them all, and the next page
// removes any an answer set again after the denial.
func TestChromeOneCookieEach(t *testing.T) {
	cs := startChromeSite(t)
	mustCreateSite(t, cs.bb.db, "www", store.ConsentNone, "www.example.co.uk")
	cs.setPage("/w", "www", "", `<p>www shop</p>`)
	ctx := browsertest.New(t, browsertest.Options{HostRules: chromeHostRules})
	page := cs.base + "/w?fbclid=OneCookieClick"
	open(t, ctx, page)
	cs.waitItem(t, "PageView", func(it store.Item, p map[string]any) bool { return it.SiteKey == "www" })
	run(t, ctx, `capirelay('track', 'ViewContent')`) // a second /e: the relay's cookies are in the jar by now
	cs.waitItem(t, "ViewContent", func(it store.Item, p map[string]any) bool { return it.EventName == "ViewContent" })
	n, all := cookieCounts(t, ctx, page)
	for _, name := range []string{"_fbp", "_fbc", "_cr_vid"} {
		if n[name] != 1 {
			t.Errorf("%d cookies named %s, want 1: %s", n[name], name, cookieList(all))
		}
	}
	for _, c := range all {
		if c.Name != ConsentCookie && c.Domain != ".example.co.uk" {
			t.Errorf("cookie %s on %q, want .example.co.uk", c.Name, c.Domain)
		}
	}
	cs.mu.Lock()
	setCk := strings.Join(cs.setCk, "\n")
	cs.mu.Unlock()
	if !strings.Contains(setCk, "_fbp=") {
		t.Errorf("/e set no cookie (the test needs the relay's copies): %s", setCk)
	}

	// An event's answer waits for its commit's fsync, the denial's does
	// not: one still in flight would set the cookies again after the
	// denial cleared them (under CI's load it did).
	cs.waitAnswered(t)
	run(t, ctx, `capirelay('consent', 'denied')`)
	waitNoIDCookies(t, ctx, page, "after denied")

	// An answer to an event sent before the denial that arrives after it
	// sets the relay's copies again (as above, before waitAnswered): the
	// next page, still denied, removes them. (The denial's own answer
	// clears the relay's copies: it comes first.)
	cs.waitEvent(t, "denial", func(e browserEvent) bool { return e.Type == "consent" && e.State == "denied" })
	cs.waitAnswered(t)
	for _, name := range []string{"_fbp", "_fbc", "_cr_vid"} {
		if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: name, Value: "fb.1.1700000000000.123456789",
			URL: page, Domain: ".example.co.uk", Path: "/"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, all = cookieCounts(t, ctx, page); n["_fbp"] != 1 {
		t.Fatalf("the late answer's cookies were not set: %s", cookieList(all))
	}
	open(t, ctx, cs.base+"/w")
	waitNoIDCookies(t, ctx, page, "a page opened after denied")
}

// waitNoIDCookies waits up to 10 s until the browser holds none of the
// visitor's id cookies for url.
func waitNoIDCookies(t *testing.T, ctx context.Context, url, when string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n, all := cookieCounts(t, ctx, url)
		if n["_fbp"]+n["_fbc"]+n["_cr_vid"] == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s the browser keeps %s", when, cookieList(all))
		}
	}
}

func cookieList(cs []*network.Cookie) string {
	var s []string
	for _, c := range cs {
		s = append(s, fmt.Sprintf("%s@%s", c.Name, c.Domain))
	}
	return strings.Join(s, " ")
}

// TestChromeIdentifyAndPageViews: identify takes Meta's advanced-matching
// names; a PageView is sent when the path or query changes, not for a hash
// change nor for a replaceState that only drops query parameters.
func TestChromeIdentifyAndPageViews(t *testing.T) {
	cs := startChromeSite(t)
	cs.setPage("/spa", "shop", "", `<p>app</p>`)
	ctx := browsertest.New(t, browsertest.Options{HostRules: chromeHostRules})
	open(t, ctx, cs.base+"/spa?fbclid=SpaClick&utm_source=fb")
	run(t, ctx, `capirelay('identify', {email: 'Ada@Example.com', phone: '+44 20 7946 0958', first_name: 'Ada', last_name: 'Lovelace',
		city: 'London', state: 'LND', zip: 'SW1A 1AA', country: 'GB', gender: 'f', date_of_birth: '19901210', external_id: 'crm-1'})`)
	run(t, ctx, `capirelay('track', 'Contact')`)
	_, p := cs.waitItem(t, "Contact", func(it store.Item, p map[string]any) bool { return it.EventName == "Contact" })
	ud := p["user_data"].(map[string]any)
	for _, k := range []string{"em", "ph", "fn", "ln", "ct", "st", "zp", "country", "ge", "db", "external_id"} {
		if ud[k] == nil {
			t.Errorf("Contact user_data lacks %s: %v", k, ud)
		}
	}

	for _, js := range []string{
		`history.replaceState({}, '', '/spa?utm_source=fb')`,  // drops fbclid: no PageView
		`location.hash = 'section-2'`,                         // hash: none
		`history.pushState({}, '', '/spa?utm_source=fb#top')`, // hash again: none
		`history.pushState({}, '', '/spa/step-2')`,            // path: PageView
		`history.pushState({}, '', '/spa/step-2?tab=plans')`,  // query: PageView
		`history.replaceState({}, '', '/spa/step-3')`,         // path by replaceState: PageView
		`history.back()`, // popstate to step-2 (step-3 replaced ?tab=plans): PageView
	} {
		run(t, ctx, js)
		time.Sleep(150 * time.Millisecond)
	}
	cs.waitEvent(t, "popstate PageView", func(e browserEvent) bool {
		return e.Name == "PageView" && strings.HasSuffix(e.URL, "/spa/step-2") && strings.HasSuffix(e.Ref, "/spa/step-3")
	})
	time.Sleep(300 * time.Millisecond)
	var got []string
	for _, e := range cs.tagEvents(t) {
		if e.Name == "PageView" {
			got = append(got, strings.TrimPrefix(e.URL, cs.base))
		}
	}
	// Each PageView is its own beacon: they may arrive in any order.
	want := []string{"/spa?fbclid=SpaClick&utm_source=fb", "/spa/step-2", "/spa/step-2?tab=plans", "/spa/step-3", "/spa/step-2"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("PageViews = %q, want %q", got, want)
	}
}
