// Package netguard decides which addresses an outbound request the relay
// makes for an operator's setting (a lead webhook) may reach, so that a URL
// typed into the dashboard or the API cannot make the relay post raw leads
// to itself, to the private network it runs in, or to a cloud metadata
// endpoint (server-side request forgery).
//
// The same rules run twice: on the URL when the setting is saved (CheckURL:
// scheme and literal addresses; a host name is not resolved then), and on
// every connection (Dialer), after DNS, so a name that resolves to a refused
// address, or is re-pointed at one later (DNS rebinding), is refused too.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Policy is what a site allows its webhook.
type Policy struct {
	// AllowHTTP accepts plain http URLs (default https only).
	AllowHTTP bool
	// AllowPrivate accepts loopback, private (RFC 1918, IPv6 ULA) and
	// CGNAT addresses, for a relay that posts into its own network.
	// Link-local and metadata addresses stay refused.
	AllowPrivate bool
}

// ErrRefused marks a destination the policy refuses.
var ErrRefused = errors.New("destination refused")

// metadata are cloud metadata and host agent endpoints outside the
// link-local ranges (AWS's IPv6 one sits in the ULA range, which a private
// network opt-in would allow).
var metadata = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("168.63.129.16"),   // Azure wire server
}

// privateNets are refused unless Policy.AllowPrivate.
var privateNets = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT (RFC 6598)
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("0.0.0.0/8"), // "this network": 0.0.0.1 reaches the host on Linux
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
}

// nat64 embeds an IPv4 address in its last 32 bits; it is judged by that.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// CheckAddr returns nil when p lets a connection reach a, else an error
// wrapping ErrRefused that names the kind of address.
func CheckAddr(a netip.Addr, p Policy) error {
	a = a.Unmap().WithZone("")
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	kind := ""
	switch {
	case !a.IsValid():
		kind = "an invalid address"
	case a.IsUnspecified(), a == netip.IPv4Unspecified():
		kind = "an unspecified address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		kind = "a link-local address (cloud metadata lives there)"
	case a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		kind = "a multicast or broadcast address"
	}
	for _, m := range metadata {
		if a == m {
			kind = "a cloud metadata address"
		}
	}
	if kind == "" && !p.AllowPrivate {
		for _, n := range privateNets {
			if n.Contains(a) {
				kind = "a loopback, private or CGNAT address (allow it with the site's webhook-allow-private setting)"
			}
		}
	}
	if kind != "" {
		return fmt.Errorf("%w: %s is %s", ErrRefused, a, kind)
	}
	return nil
}

// CheckURL checks a webhook URL as it is saved: http(s) with a host, https
// unless p allows http, no user info, and a host that is not a refused
// literal address or a name for the local host.
func CheckURL(raw string, p Policy) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return errors.New("the webhook URL must be an https URL such as https://hooks.example.com/lead")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return fmt.Errorf("%w: the webhook URL must be https (allow plain http with the site's webhook-allow-http setting)", ErrRefused)
		}
	default:
		return errors.New("the webhook URL must be an https URL such as https://hooks.example.com/lead")
	}
	if u.User != nil {
		return errors.New("the webhook URL must not hold a user name or password; the request is signed instead")
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		return CheckAddr(a, p)
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return CheckAddr(netip.IPv6Loopback(), p)
	}
	return nil
}

// Dialer returns a dialer whose every connection is checked against p
// after name resolution; a refused address fails the dial with an error
// wrapping ErrRefused.
func Dialer(p Policy, timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: timeout,
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrRefused, address)
			}
			a, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("%w: %s is not an address", ErrRefused, host)
			}
			return CheckAddr(a, p)
		},
	}
}
