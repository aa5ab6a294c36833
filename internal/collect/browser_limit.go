package collect

import (
	"math"
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
	DefaultPerIPBurst int        = 40
	// maxLimiters bounds memory: the least recently seen addresses are
	// forgotten first (a forgotten address starts with a full burst).
	maxLimiters int = 100_000
)

// ipLimiter is an LRU of token buckets keyed by client address; IPv6
// clients are keyed by their /64, which one household or host usually holds
// whole. It is safe for concurrent use.
//
// Each bucket is a rate.Limiter's state (tokens and the time they were
// counted) and answers as rate.Limiter.AllowN(now, 1) does
// (TestIPLimiterMatchesRate). The buckets live in one slice, linked into
// the LRU list by index, and the least recent one is reused for a new
// address once max are kept: a request allocates nothing once the slice
// has grown. Neither the slice nor the map holds a pointer, so the garbage
// collector does not walk the (up to maxLimiters) entries.
type ipLimiter struct {
	rate  rate.Limit
	burst int
	max   int

	mu      sync.Mutex
	m       map[limiterAddr]int32 // address → index in buckets
	buckets []ipBucket
	// head and tail are the most and least recently seen buckets; -1
	// when there are none.
	head, tail int32
	// epoch is the first time allow was given: buckets keep times as
	// durations since it.
	epoch    time.Time
	hasEpoch bool
}

// limiterAddr is a limiter key (see limiterKey) without netip.Addr's
// pointer: its 16 bytes and whether it is IPv4 (limiter keys have no zone).
type limiterAddr struct {
	a   [16]byte
	is4 bool
}

type ipBucket struct {
	key    limiterAddr
	tokens float64
	// last is when tokens were counted, as a duration since the epoch;
	// fresh until the first count (rate.Limiter's zero last).
	last       time.Duration
	fresh      bool
	prev, next int32 // towards head, towards tail; -1 at the ends
}

func newIPLimiter(r rate.Limit, burst, max int) *ipLimiter {
	return &ipLimiter{rate: r, burst: burst, max: max, m: make(map[limiterAddr]int32), head: -1, tail: -1}
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
	k := limiterKey(a)
	key := limiterAddr{a: k.As16(), is4: k.Is4()}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.hasEpoch {
		l.epoch, l.hasEpoch = now, true
	}
	i, ok := l.m[key]
	if ok {
		l.unlink(i)
	} else {
		i = l.take(key)
	}
	l.pushFront(i)
	return l.buckets[i].allow(now.Sub(l.epoch), l.rate, l.burst)
}

// take returns a bucket for key, full: a new one, or the least recently
// seen one once max are kept.
func (l *ipLimiter) take(key limiterAddr) int32 {
	var i int32
	if len(l.buckets) < max(l.max, 1) {
		i = int32(len(l.buckets))
		l.buckets = append(l.buckets, ipBucket{})
	} else {
		i = l.tail
		l.unlink(i)
		delete(l.m, l.buckets[i].key)
	}
	l.buckets[i] = ipBucket{key: key, tokens: float64(l.burst), fresh: true, prev: -1, next: -1}
	l.m[key] = i
	return i
}

func (l *ipLimiter) unlink(i int32) {
	b := &l.buckets[i]
	if b.prev >= 0 {
		l.buckets[b.prev].next = b.next
	} else {
		l.head = b.next
	}
	if b.next >= 0 {
		l.buckets[b.next].prev = b.prev
	} else {
		l.tail = b.prev
	}
	b.prev, b.next = -1, -1
}

func (l *ipLimiter) pushFront(i int32) {
	b := &l.buckets[i]
	b.prev, b.next = -1, l.head
	if l.head >= 0 {
		l.buckets[l.head].prev = i
	}
	l.head = i
	if l.tail < 0 {
		l.tail = i
	}
}

// allow is rate.Limiter's AllowN(now, 1) on the bucket's state, with the
// same arithmetic (x/time/rate v0.16: reserveN with no wait allowed); now
// is a duration since the limiter's epoch, and now - last is the
// time.Time.Sub that rate.Limiter takes.
func (b *ipBucket) allow(now time.Duration, limit rate.Limit, burst int) bool {
	tokens := b.tokens
	if !b.fresh { // a fresh bucket is full: rate.Limiter adds a huge delta, capped
		last := b.last
		if now < last {
			last = now
		}
		tokens += tokensFromDuration(limit, now-last)
	}
	if fb := float64(burst); tokens > fb {
		tokens = fb
	}
	tokens--
	var wait time.Duration
	if tokens < 0 {
		wait = durationFromTokens(limit, -tokens)
	}
	if 1 > burst || wait > 0 {
		return false
	}
	b.last, b.tokens, b.fresh = now, tokens, false
	return true
}

func tokensFromDuration(limit rate.Limit, d time.Duration) float64 {
	if limit <= 0 {
		return 0
	}
	return d.Seconds() * float64(limit)
}

func durationFromTokens(limit rate.Limit, tokens float64) time.Duration {
	if limit <= 0 {
		return rate.InfDuration
	}
	d := (tokens / float64(limit)) * float64(time.Second)
	if d > float64(math.MaxInt64) {
		return rate.InfDuration
	}
	return time.Duration(d)
}
