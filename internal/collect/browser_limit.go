package collect

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Per-IP limits of /e when Browser leaves them zero: a page view, a few
// captures and a submit fit in a burst; a sustained 20 requests a second
// from one address is not a person.
const (
	DefaultPerIPRate  rate.Limit = 20
	DefaultPerIPBurst            = 40
	// maxLimiters bounds memory: the least recently seen addresses are
	// forgotten first (a forgotten address starts with a full burst).
	maxLimiters = 100_000
)

// ipLimiter is an LRU of token buckets keyed by client address; IPv6
// clients are keyed by their /64, which one household or host usually holds
// whole. It is safe for concurrent use.
type ipLimiter struct {
	rate  rate.Limit
	burst int
	max   int

	mu  sync.Mutex
	m   map[netip.Addr]*list.Element
	lru list.List // of *ipBucket, most recent first
}

type ipBucket struct {
	key netip.Addr
	lim *rate.Limiter
}

func newIPLimiter(r rate.Limit, burst, max int) *ipLimiter {
	return &ipLimiter{rate: r, burst: burst, max: max, m: make(map[netip.Addr]*list.Element)}
}

func limiterKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.Addr()
		}
	}
	return a
}

// allow takes one token for a at now.
func (l *ipLimiter) allow(a netip.Addr, now time.Time) bool {
	if l.rate == rate.Inf {
		return true
	}
	key := limiterKey(a)
	l.mu.Lock()
	var lim *rate.Limiter
	if e, ok := l.m[key]; ok {
		l.lru.MoveToFront(e)
		lim = e.Value.(*ipBucket).lim
	} else {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.m[key] = l.lru.PushFront(&ipBucket{key: key, lim: lim})
		for l.lru.Len() > l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.m, old.Value.(*ipBucket).key)
		}
	}
	l.mu.Unlock()
	return lim.AllowN(now, 1)
}
