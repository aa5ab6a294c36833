package admin

import (
	"container/list"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Login guard limits. One address (an IPv6 /64, which one host usually
// holds whole) may try 5 passwords at once, then one every 12 s. Across all
// addresses, 50 wrong passwords at once and then one every 6 s (10 a
// minute) are allowed; past that every login is refused for 15 minutes, so
// a spray from many addresses gets at most about 200 guesses an hour.
const (
	loginBurst      = 5
	loginEvery      = 12 * time.Second
	failureBurst    = 50
	failureEvery    = 6 * time.Second
	lockoutDuration = 15 * time.Minute
	// guardAddresses bounds the addresses remembered; past it the least
	// recently seen one is dropped (about 200 bytes each).
	guardAddresses = 4096
	// refusalLogInterval is how often refused logins are logged (counted).
	refusalLogInterval = 10 * time.Second
)

// loginGuard decides whether a login attempt may check a password at all,
// before any PBKDF2 work: per address (IPv4) or /64 (IPv6), a global budget
// of wrong passwords with a temporary lockout, and one password check at a
// time, so a spray never holds more than one core.
type loginGuard struct {
	mu        sync.Mutex
	addrs     map[string]*list.Element // key → element of lru holding *guardEntry
	lru       *list.List               // most recently seen first
	cap       int
	failures  *rate.Limiter
	lockUntil time.Time
	lockout   time.Duration
	checking  chan struct{} // holds one token while a password is checked

	refusals int       // refused attempts not yet logged
	loggedAt time.Time // when refusals were last logged
}

type guardEntry struct {
	key string
	lim *rate.Limiter
}

func newLoginGuard() *loginGuard {
	return &loginGuard{
		addrs:    map[string]*list.Element{},
		lru:      list.New(),
		cap:      guardAddresses,
		failures: rate.NewLimiter(rate.Every(failureEvery), failureBurst),
		lockout:  lockoutDuration,
		checking: make(chan struct{}, 1),
	}
}

// guardKey is the unit one client is limited by: the address for IPv4
// (also when written IPv4-mapped), the /64 for IPv6.
func guardKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// admit lets one attempt from ip check a password, returning done, to be
// called with whether the password was wrong; or nil and how long to wait.
func (g *loginGuard) admit(ip string, now time.Time) (done func(wrong bool), wait time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.lockUntil) {
		return nil, g.lockUntil.Sub(now)
	}
	if lim := g.entry(guardKey(ip)); !lim.AllowN(now, 1) {
		return nil, tokenWait(lim, now)
	}
	select {
	case g.checking <- struct{}{}:
	default: // another check is running: a person logging in retries
		return nil, time.Second
	}
	return func(wrong bool) {
		<-g.checking
		if wrong {
			g.fail(now)
		}
	}, 0
}

// tokenWait is how long from now until lim has a token again (at most
// loginEvery for the per-address limiter).
func tokenWait(lim *rate.Limiter, now time.Time) time.Duration {
	missing := 1 - lim.TokensAt(now)
	if missing <= 0 || lim.Limit() <= 0 {
		return 0
	}
	return time.Duration(missing / float64(lim.Limit()) * float64(time.Second))
}

// retryAfter is a refused login's wait in whole seconds, rounded up and at
// least one: the Retry-After header and the message both say it.
func retryAfter(wait time.Duration) int {
	return max(1, int((wait+time.Second-1)/time.Second))
}

// waitText says a wait of secs seconds: in seconds under two minutes,
// else in minutes rounded up ("15 minutes"), never less than the header.
func waitText(secs int) string {
	switch {
	case secs == 1:
		return "1 second"
	case secs < 120:
		return strconv.Itoa(secs) + " seconds"
	}
	return strconv.Itoa((secs+59)/60) + " minutes"
}

// fail spends the global budget; an empty budget locks every login out.
func (g *loginGuard) fail(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.failures.AllowN(now, 1) {
		g.lockUntil = now.Add(g.lockout)
		// The budget starts full again after the lockout.
		g.failures = rate.NewLimiter(g.failures.Limit(), g.failures.Burst())
	}
}

// entry returns key's limiter, making it the most recent and dropping the
// least recent address past the bound.
func (g *loginGuard) entry(key string) *rate.Limiter {
	if el, ok := g.addrs[key]; ok {
		g.lru.MoveToFront(el)
		return el.Value.(*guardEntry).lim
	}
	if g.lru.Len() >= g.cap {
		old := g.lru.Back()
		g.lru.Remove(old)
		delete(g.addrs, old.Value.(*guardEntry).key)
	}
	e := &guardEntry{key: key, lim: rate.NewLimiter(rate.Every(loginEvery), loginBurst)}
	g.addrs[key] = g.lru.PushFront(e)
	return e.lim
}

// refused counts a refused attempt and returns how many to log now: the
// count since the last log once refusalLogInterval has passed, else 0.
func (g *loginGuard) refused(now time.Time) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refusals++
	if now.Sub(g.loggedAt) < refusalLogInterval {
		return 0
	}
	n := g.refusals
	g.refusals, g.loggedAt = 0, now
	return n
}

// size is how many addresses the guard remembers.
func (g *loginGuard) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lru.Len()
}
