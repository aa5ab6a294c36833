package collect

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxUntrustedPeers bounds the peers remembered as having sent an
// ignored X-Forwarded-For: an install has one or two proxies, and a
// stranger spraying the header from many addresses must not grow memory.
const maxUntrustedPeers = 64

// untrustedProxies remembers the peers that sent X-Forwarded-For without
// being trusted. Behind such a proxy every visitor has the proxy's IP:
// events carry the wrong client_ip_address and all visitors share one
// per-IP rate limit. The operator is told once per peer in the log (at most
// one warning a minute) and on the dashboard's install checklist.
type untrustedProxies struct {
	mu    sync.Mutex
	peers map[netip.Addr]time.Time // last seen
	warn  *rate.Limiter
}

// seen records a request from peer whose X-Forwarded-For was ignored; it
// reports whether the peer is new and a warning may be logged now.
func (u *untrustedProxies) seen(peer netip.Addr, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.peers == nil {
		u.peers = map[netip.Addr]time.Time{}
		u.warn = rate.NewLimiter(rate.Every(time.Minute), 1)
	}
	if _, ok := u.peers[peer]; ok {
		u.peers[peer] = now
		return false
	}
	if len(u.peers) >= maxUntrustedPeers {
		return false
	}
	u.peers[peer] = now
	return u.warn.AllowN(now, 1)
}

// list returns the remembered peers seen since since.
func (u *untrustedProxies) list(since time.Time) []netip.Addr {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []netip.Addr
	for p, at := range u.peers {
		if !at.Before(since) {
			out = append(out, p)
		}
	}
	return out
}

// forwardedByStranger returns the socket peer of r when r carries
// X-Forwarded-For and that peer is not a trusted proxy.
func forwardedByStranger(r *http.Request, trusted []netip.Prefix) (netip.Addr, bool) {
	if len(r.Header["X-Forwarded-For"]) == 0 {
		return netip.Addr{}, false
	}
	peer := parseHost(r.RemoteAddr)
	return peer, peer.IsValid() && !isTrusted(peer, trusted)
}

// noteForwarded logs and remembers a proxy whose X-Forwarded-For is not
// believed.
func (b *Browser) noteForwarded(r *http.Request, now time.Time) {
	peer, ok := forwardedByStranger(r, b.TrustedProxies)
	if !ok {
		return
	}
	if b.Metrics != nil {
		b.Metrics.UntrustedForwarded.Inc()
	}
	if b.untrusted.seen(peer, now) && b.Logger != nil {
		b.Logger.Warn("X-Forwarded-For from an untrusted peer is ignored: every visitor behind it gets its IP and shares its rate limit; add the proxy to CAPIRELAY_TRUSTED_PROXIES",
			"peer", peer.String())
	}
}

// UntrustedProxies lists the peers that sent X-Forwarded-For without being
// in TrustedProxies during the last day (for the dashboard's install
// checklist).
func (b *Browser) UntrustedProxies() []string {
	var out []string
	for _, p := range b.untrusted.list(b.now().Add(-24 * time.Hour)) {
		out = append(out, p.String())
	}
	return out
}
