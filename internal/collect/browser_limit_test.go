package collect

import (
	"container/list"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// refIPLimiter is ipLimiter as first written: container/list for the LRU
// and a rate.Limiter per address.
type refIPLimiter struct {
	rate  rate.Limit
	burst int
	max   int
	mu    sync.Mutex
	m     map[netip.Addr]*list.Element
	lru   list.List
}

type refBucket struct {
	key netip.Addr
	lim *rate.Limiter
}

func (l *refIPLimiter) allow(a netip.Addr, now time.Time) bool {
	if l.rate == rate.Inf {
		return true
	}
	key := limiterKey(a)
	l.mu.Lock()
	var lim *rate.Limiter
	if e, ok := l.m[key]; ok {
		l.lru.MoveToFront(e)
		lim = e.Value.(*refBucket).lim
	} else {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.m[key] = l.lru.PushFront(&refBucket{key: key, lim: lim})
		for l.lru.Len() > l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.m, old.Value.(*refBucket).key)
		}
	}
	l.mu.Unlock()
	return lim.AllowN(now, 1)
}

// TestIPLimiterMatchesRate: the same answers as a rate.Limiter per address
// in an LRU of the same size, over random addresses (IPv4, and IPv6 that
// share /64s), times that mostly move on and sometimes step back, and
// limits from tiny to large; with few slots, addresses are forgotten and
// come back with a full burst.
func TestIPLimiterMatchesRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	addrs := make([]netip.Addr, 0, 24)
	for i := range 12 {
		addrs = append(addrs, netip.MustParseAddr("198.51.100."+strconv.Itoa(i)))
		addrs = append(addrs, netip.MustParseAddr("2001:db8:0:"+strconv.Itoa(i%5)+"::"+strconv.Itoa(i)))
	}
	// Times with a monotonic clock reading (time.Now) and without.
	for _, start := range []time.Time{time.Unix(1_760_000_000, 0), time.Now()} {
		for _, lim := range []rate.Limit{0.5, 1, 3, 20, 1000, 0, -1} {
			for _, burst := range []int{0, 1, 2, 5, 40} {
				for _, max := range []int{1, 3, 8, 100} {
					got := newIPLimiter(lim, burst, max)
					want := &refIPLimiter{rate: lim, burst: burst, max: max, m: map[netip.Addr]*list.Element{}}
					now := start
					for step := range 3000 {
						switch n := rng.IntN(10); {
						case n < 6:
							now = now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
						case n < 7:
							now = now.Add(-time.Duration(rng.IntN(500)) * time.Millisecond)
						case n < 8:
							now = now.Add(time.Duration(rng.IntN(10)) * time.Second)
						}
						a := addrs[rng.IntN(len(addrs))]
						if g, w := got.allow(a, now), want.allow(a, now); g != w {
							t.Fatalf("rate %v burst %d max %d step %d %s: allow = %v, rate.Limiter says %v", lim, burst, max, step, a, g, w)
						}
					}
					if len(got.m) != len(want.m) || len(got.m) > max {
						t.Fatalf("rate %v burst %d max %d: %d addresses kept, want %d", lim, burst, max, len(got.m), len(want.m))
					}
				}
			}
		}
	}
}

func BenchmarkIPLimiter(b *testing.B) {
	l := newIPLimiter(DefaultPerIPRate, DefaultPerIPBurst, maxLimiters)
	addrs := make([]netip.Addr, 1<<16)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.allow(addrs[i&0xffff], now.Add(time.Duration(i)*time.Microsecond))
	}
}
