package collect

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address of the client that sent r (spec §5.6, Go
// rule). When the socket peer is one of the trusted proxies, the
// X-Forwarded-For hops are read from the right and the first address that is
// not a trusted proxy is the client: the left-most hops are whatever the
// client chose to send and prove nothing. Otherwise the socket address is the
// client. IPv6 addresses are kept as they are, IPv4-mapped IPv6 addresses are
// unmapped, and ports and zones are dropped. The zero Addr means unknown.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHost(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	client := peer
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		// The comma-separated parts of the header, from the right.
		for rest, more := hops[i], true; more; {
			part := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				rest, part = rest[:j], rest[j+1:]
			} else {
				more = false
			}
			a := parseHost(strings.TrimSpace(part))
			if !a.IsValid() {
				// Garbage where a proxy we trust should have written an
				// address: stop at the last hop we could vouch for.
				return client
			}
			client = a
			if !isTrusted(a, trusted) {
				return a
			}
		}
	}
	// Every hop is a trusted proxy: the left-most one is the client.
	return client
}

// parseHost parses "ip", "ip:port", "[ipv6]:port" or "[ipv6]".
func parseHost(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	// netip.ParseAddrPort takes "ipv4:port" and "[ipv6]:port" only: a
	// bare address (no colon, or an IPv6 without brackets, as
	// X-Forwarded-For writes them) goes to ParseAddr without building the
	// error ParseAddrPort would return.
	if i := strings.LastIndexByte(s, ':'); i >= 0 && (s[0] == '[' || strings.IndexByte(s[:i], ':') < 0) {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().Unmap().WithZone("")
		}
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// requestScheme is "https" when r came over TLS, or through a trusted proxy
// that says so in X-Forwarded-Proto; "http" otherwise.
func requestScheme(r *http.Request, trusted []netip.Prefix) string {
	if r.TLS != nil {
		return "https"
	}
	if peer := parseHost(r.RemoteAddr); peer.IsValid() && isTrusted(peer, trusted) {
		proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
		if strings.EqualFold(strings.TrimSpace(proto), "https") {
			return "https"
		}
	}
	return "http"
}
