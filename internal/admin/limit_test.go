package admin

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// loginFrom posts a login from addr (host:port) and returns the status.
func (b *bundle) loginFrom(t *testing.T, addr, pw string) int {
	t.Helper()
	return b.loginAnswer(t, addr, pw).Code
}

// loginAnswer posts a login from addr (host:port) and returns the answer.
func (b *bundle) loginAnswer(t *testing.T, addr, pw string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", "/admin/login", strings.NewReader(url.Values{"password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	return rec
}

// TestLoginLimitIPv6Prefix: one host holds a whole /64, so its addresses
// share one budget; another /64 does not.
func TestLoginLimitIPv6Prefix(t *testing.T) {
	b := setup(t)
	for i := range loginBurst {
		if got := b.loginFrom(t, fmt.Sprintf("[2001:db8:1:2::%x]:4711", i+1), "wrong password!"); got != http.StatusUnauthorized {
			t.Fatalf("attempt %d = %d, want 401", i+1, got)
		}
	}
	if got := b.loginFrom(t, "[2001:db8:1:2:ffff::99]:4711", testPassword); got != http.StatusTooManyRequests {
		t.Fatalf("another address of the same /64 = %d, want 429", got)
	}
	if got := b.loginFrom(t, "[2001:db8:1:3::1]:4711", testPassword); got != http.StatusSeeOther {
		t.Fatalf("an address of another /64 = %d, want 303", got)
	}
}

func TestGuardKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not-an-ip", "not-an-ip"},
	} {
		if got := guardKey(tc.in); got != tc.want {
			t.Errorf("guardKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestLoginGlobalLockout sprays wrong passwords from many addresses, each
// within its own budget: past the global failure budget every login is
// refused, the right password from a fresh address too, without checking
// any password, until the lockout ends.
func TestLoginGlobalLockout(t *testing.T) {
	b := setup(t)
	now := time.Now()
	b.h.now = func() time.Time { return now }
	statuses := map[int]int{}
	for i := range 2 * failureBurst {
		statuses[b.loginFrom(t, fmt.Sprintf("198.51.100.%d:1", i+1), "wrong password!")]++
	}
	if statuses[http.StatusUnauthorized] != failureBurst+1 || statuses[http.StatusTooManyRequests] != failureBurst-1 {
		t.Fatalf("spray statuses = %v, want %d wrong then locked out", statuses, failureBurst+1)
	}
	checks := b.h.passwordChecks.Load()
	if got := b.loginFrom(t, "203.0.113.1:1", testPassword); got != http.StatusTooManyRequests {
		t.Fatalf("right password during the lockout = %d, want 429", got)
	}
	if n := b.h.passwordChecks.Load(); n != checks {
		t.Errorf("refused attempts checked %d passwords, want none", n-checks)
	}
	now = now.Add(lockoutDuration + time.Second)
	if got := b.loginFrom(t, "203.0.113.1:1", testPassword); got != http.StatusSeeOther {
		t.Fatalf("right password after the lockout = %d, want 303", got)
	}
}

// TestLoginOneCheckAtATime: while a password is being checked, another
// attempt is refused without checking its own.
func TestLoginOneCheckAtATime(t *testing.T) {
	b := setup(t)
	b.h.logins.checking <- struct{}{} // a check in progress
	if got := b.loginFrom(t, "192.0.2.9:1", testPassword); got != http.StatusTooManyRequests {
		t.Fatalf("attempt during another check = %d, want 429", got)
	}
	if n := b.h.passwordChecks.Load(); n != 0 {
		t.Fatalf("%d passwords checked, want none", n)
	}
	<-b.h.logins.checking
	if got := b.loginFrom(t, "192.0.2.9:1", testPassword); got != http.StatusSeeOther {
		t.Fatalf("attempt after it = %d, want 303", got)
	}
}

// TestLoginGuardBounded: a spray from more addresses than the guard keeps
// holds its memory at the bound, dropping the least recently seen.
func TestLoginGuardBounded(t *testing.T) {
	g := newLoginGuard()
	g.cap = 100
	now := time.Now()
	use := func(ip string) {
		if done, _ := g.admit(ip, now); done != nil {
			done(false)
		}
	}
	for range loginBurst {
		use("192.0.2.1") // spends its whole burst
	}
	for i := range 1000 {
		use(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	if n := g.size(); n != 100 {
		t.Fatalf("guard holds %d addresses, want the bound 100", n)
	}
	if _, ok := g.addrs["192.0.2.1"]; ok {
		t.Error("the least recently seen address is still held")
	}
	if _, ok := g.addrs["10.0.3.231"]; !ok {
		t.Error("the most recent address was dropped")
	}
}

// TestLoginRefusalsLoggedOncePerInterval: a spray's refusals come out as
// one counted line per interval, not a line each.
func TestLoginRefusalsLoggedOncePerInterval(t *testing.T) {
	g := newLoginGuard()
	now := time.Now()
	var logged []int
	for i := range 1000 {
		if n := g.refused(now.Add(time.Duration(i) * 25 * time.Millisecond)); n > 0 {
			logged = append(logged, n)
		}
	}
	// 25 s of refusals: the first at once, then one line per 10 s.
	if len(logged) != 3 || logged[0] != 1 || logged[1] != 400 || logged[2] != 400 {
		t.Fatalf("logged counts %v, want [1 400 400]", logged)
	}
}

// TestLoginRefusalSaysItsWait: a refused login's message gives the wait
// its Retry-After header does (it said "a few minutes" with Retry-After:
// 12), for one address past its burst, in a lockout and during another
// check.
func TestLoginRefusalSaysItsWait(t *testing.T) {
	b := setup(t)
	now := time.Now()
	b.h.now = func() time.Time { return now }
	refused := func(addr string) (retry, msg string) {
		t.Helper()
		rec := b.loginAnswer(t, addr, testPassword)
		if rec.Code != http.StatusTooManyRequests {
			t.Fatalf("login from %s = %d, want 429", addr, rec.Code)
		}
		m := regexp.MustCompile(`id="login-error">([^<]*)<`).FindStringSubmatch(rec.Body.String())
		if m == nil {
			t.Fatalf("no message on the refused login page")
		}
		return rec.Header().Get("Retry-After"), m[1]
	}
	for range loginBurst {
		b.loginFrom(t, "192.0.2.1:1", "wrong password!")
	}
	for _, tc := range []struct {
		after       time.Duration
		retry, text string
	}{
		{0, "12", "Try again in 12 seconds."},
		{4500 * time.Millisecond, "8", "Try again in 8 seconds."},
		{11500 * time.Millisecond, "1", "Try again in 1 second."},
	} {
		now = now.Add(tc.after)
		retry, msg := refused("192.0.2.1:1")
		if retry != tc.retry || !strings.HasSuffix(msg, tc.text) {
			t.Errorf("%v on: Retry-After %s, message %q; want %s and %q", tc.after, retry, msg, tc.retry, tc.text)
		}
		now = now.Add(-tc.after)
	}

	b.h.logins.lockUntil = now.Add(lockoutDuration)
	if retry, msg := refused("192.0.2.2:1"); retry != "900" || !strings.HasSuffix(msg, "Try again in 15 minutes.") {
		t.Errorf("lockout: Retry-After %s, message %q; want 900 and 15 minutes", retry, msg)
	}
	b.h.logins.lockUntil = time.Time{}

	b.h.logins.checking <- struct{}{}
	if retry, msg := refused("192.0.2.3:1"); retry != "1" || !strings.HasSuffix(msg, "Try again in 1 second.") {
		t.Errorf("during another check: Retry-After %s, message %q; want 1 and 1 second", retry, msg)
	}
	<-b.h.logins.checking
}

func TestWaitText(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want string
	}{
		{0, "1 second"}, {time.Millisecond, "1 second"}, {time.Second, "1 second"}, {1001 * time.Millisecond, "2 seconds"},
		{12 * time.Second, "12 seconds"}, {119 * time.Second, "119 seconds"}, {120 * time.Second, "2 minutes"},
		{14*time.Minute + time.Second, "15 minutes"}, {15 * time.Minute, "15 minutes"},
	} {
		if got := waitText(retryAfter(tc.wait)); got != tc.want {
			t.Errorf("waitText(retryAfter(%v)) = %q, want %q", tc.wait, got, tc.want)
		}
	}
}
