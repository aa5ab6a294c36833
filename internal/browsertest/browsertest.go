// Package browsertest starts a real headless Chromium for tests, through
// chromedp. Tests that use it fail in CI (CI=true) when Chromium is missing
// and skip elsewhere.
//
// The browser gets a normal desktop user agent (capirelay drops
// "HeadlessChrome" as a bot), a fresh profile, no background traffic, and
// optional --host-resolver-rules, so pages can be served from 127.0.0.1
// under real-looking host names (cookie domains can then be tested).
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// UserAgent is a desktop Chrome user agent without "Headless".
const UserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"

// Paths where Chromium is looked for, in order; CAPIRELAY_CHROMIUM wins.
var Paths = []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}

// Chromium returns the browser binary. Missing: t.Fatal when CI=true, else
// t.Skip.
func Chromium(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("CAPIRELAY_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range Paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("chromium not found; install it (apt-get install chromium)")
	}
	tb.Skip("install chromium (apt-get install chromium)")
	return ""
}

// Options tune the browser.
type Options struct {
	// HostRules is Chromium's --host-resolver-rules, e.g.
	// "MAP *.example.co.uk 127.0.0.1, MAP connect.facebook.net ~NOTFOUND".
	HostRules []string
	// UserAgent overrides UserAgent.
	UserAgent string
	// Timeout bounds the whole browser session; zero: 60 seconds.
	Timeout time.Duration
}

// New starts Chromium and returns the context of its first tab. The browser
// is closed and its profile removed when the test ends.
func New(tb testing.TB, o Options) context.Context {
	tb.Helper()
	path := Chromium(tb)
	ua := o.UserAgent
	if ua == "" {
		ua = UserAgent
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.UserAgent(ua),
	)
	if len(o.HostRules) > 0 {
		opts = append(opts, chromedp.Flag("host-resolver-rules", strings.Join(o.HostRules, ", ")))
	}
	base, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	alloc, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	tb.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		cancelTimeout()
	})
	if err := chromedp.Do(ctx); err != nil { // start the browser now
		tb.Fatalf("start chromium: %v", err)
	}
	return ctx
}
