package admin

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/capirelay/capirelay/internal/store"
)

var update = flag.Bool("update", false, "write page screenshots under testdata/screenshots")

const chromiumPath = "/usr/bin/chromium"

// browser starts headless Chromium for one test, or skips (fails in CI)
// when it is not installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is required in CI: %v", err)
		}
		t.Skip("install chromium (apt-get install chromium) to run the dashboard browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // start the browser with no deadline
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel)
	return tctx
}

// shot writes a full-page screenshot when the test runs with -update.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*update {
		return
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100 means PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("testdata", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestBrowser drives the dashboard in real Chromium: log in, create a site,
// see an event in Live events, replay a dead letter; it visits every page
// and, with -update, saves their screenshots.
func TestBrowser(t *testing.T) {
	b := setupWith(t, func(c *Config) { c.PublicURL = "" }) // plain http: no Secure cookie
	ctx := browser(t)
	base := b.srv.URL

	// Log in: the dashboard sends us to the login page first.
	must(t, "open dashboard", chromedp.Do(ctx,
		chromedp.Navigate(base+"/admin/events"),
		chromedp.WaitVisible(chromedp.ID("password")),
	))
	shot(t, ctx, "login")
	must(t, "log in", chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("events-filter")),
	))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	must(t, "location", err)
	if !strings.HasSuffix(loc, "/admin/events") {
		t.Fatalf("after login at %s, want back at /admin/events", loc)
	}

	// Create a site.
	must(t, "create site", chromedp.Do(ctx,
		chromedp.Navigate(base+"/admin/sites"),
		chromedp.SendKeys(chromedp.ID("site-name"), "Corner Shop"),
		chromedp.SendKeys(chromedp.ID("site-domains"), "cornershop.example"),
		chromedp.SendKeys(chromedp.ID("site-pixel"), "123456789012345"),
		chromedp.Click(chromedp.ID("create-site-submit")),
		chromedp.WaitVisible(chromedp.ID("api-key-value")),
	))
	key, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("api-key-value")))
	must(t, "read api key", err)
	sites, err := b.db.ListSites(t.Context())
	must(t, "list sites", err)
	if len(sites) != 1 || sites[0].Name != "Corner Shop" || sites[0].APIKeyHash != TokenHash(strings.TrimSpace(key)) {
		t.Fatalf("sites after the form: %+v (key shown %q)", sites, key)
	}
	s := sites[0]
	shot(t, ctx, "site-created")

	// An event enqueued directly shows in Live events with its payload.
	ud := hashedUserData()
	ud["fbc"] = "fb.1.1700000000000.IwAR0test"
	id := b.mustEnqueue(t, s.Key, "Purchase", time.Now(), payload("Purchase", ud))
	b.mustEnqueue(t, s.Key, "PageView", time.Now(), payload("PageView", map[string]any{"fbp": "fb.1.1.2", "client_user_agent": "ua"}))
	row := `li.event[data-id="` + strconv.FormatInt(id, 10) + `"]`
	must(t, "live events", chromedp.Do(ctx,
		chromedp.Navigate(base+"/admin/events?site="+s.Key),
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.Click(chromedp.CSS(row+" summary")),
		chromedp.WaitVisible(chromedp.CSS(row+" pre.payload")),
	))
	name, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row+" .ename")))
	must(t, "event name", err)
	pl, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row+" pre.payload")))
	must(t, "payload", err)
	if name != "Purchase" || !strings.Contains(pl, `"em"`) || !strings.Contains(pl, "198.51.100.0/24") {
		t.Fatalf("event row: name %q payload %q", name, pl)
	}
	shot(t, ctx, "events")

	// Replay a dead letter.
	dead := b.mustEnqueue(t, s.Key, "Lead", time.Now().Add(-2*time.Hour), payload("Lead", hashedUserData()))
	b.mustDead(t, s.Key, dead, "Meta refused the event: Invalid parameter (code 100, subcode 2804050)")
	expired := b.mustEnqueue(t, s.Key, "Lead", time.Now().Add(-8*24*time.Hour), payload("Lead", hashedUserData()))
	b.mustDead(t, s.Key, expired, "event_time is older than Meta's 7-day window")
	deadID := strconv.FormatInt(dead, 10)
	must(t, "dead letters", chromedp.Do(ctx,
		chromedp.Navigate(base+"/admin/dead-letters"),
		chromedp.WaitVisible(chromedp.ID("replay-"+deadID)),
		chromedp.WaitVisible(chromedp.ID("expired-"+strconv.FormatInt(expired, 10))),
	))
	shot(t, ctx, "dead-letters")
	must(t, "replay", chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("replay-"+deadID)),
		chromedp.WaitVisible(chromedp.ID("replayed")),
	))
	it, err := b.db.Item(t.Context(), dead)
	must(t, "item", err)
	if it.State != store.StatePending {
		t.Fatalf("replayed item is %s, want pending", it.State)
	}

	// Every other page renders in the browser.
	for _, p := range []struct{ name, path, sel string }{
		{"overview", "/admin/", "activity-chart"},
		{"sites", "/admin/sites", "sites"},
		{"install", "/admin/sites/" + s.Key + "/install", "checklist"},
		{"match-quality", "/admin/match-quality", "quality"},
		{"leads", "/admin/leads", "leads-empty"},
	} {
		must(t, p.name, chromedp.Do(ctx, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.ID(p.sel))))
		shot(t, ctx, p.name)
		if p.name == "match-quality" {
			n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#quality tbody tr").length`))
			must(t, "quality rows", err)
			if n != 3 {
				t.Errorf("match quality shows %d event names, want 3", n)
			}
		}
	}

	// A phone-sized viewport: the overview has no horizontal scroll.
	must(t, "phone", chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible(chromedp.ID("activity-chart")),
	))
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	must(t, "overflow", err)
	if overflow {
		t.Error("the overview scrolls sideways on a 390 px wide phone")
	}
	shot(t, ctx, "overview-phone")
	must(t, "phone events", chromedp.Do(ctx, chromedp.Navigate(base+"/admin/events"), chromedp.WaitVisible(chromedp.ID("event-list"))))
	shot(t, ctx, "events-phone")
}
