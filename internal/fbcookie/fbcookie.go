// Package fbcookie parses, validates and mints Meta's _fbp and _fbc cookie
// values (spec/meta-capi.md §5) and finds the domain they belong on.
//
// Values are "fb.{subdomainIndex}.{creationTimeMillis}.{payload}" with an
// optional fifth "appendix" segment written by Meta's Parameter Builder. We
// accept and keep valid 5-segment values byte for byte but only ever mint the
// documented 4-segment form (§5.3: an appendix encodes a Meta library's
// language and version; forging one would misreport telemetry).
//
// Every function is pure apart from the randomness of NewFbp and is safe for
// concurrent use.
package fbcookie

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Cookie names.
const (
	FbpName = "_fbp"
	FbcName = "_fbc"
)

// MaxAge is the lifetime of _fbp and _fbc (§5.2: 90 days, refreshed on
// later visits).
const MaxAge = 90 * 24 * time.Hour

// MaxClickIDLen is the longest fbclid we keep; longer ones are ignored, as
// Meta's client Parameter Builder does (§5.5).
const MaxClickIDLen = 500

// Value is a parsed _fbp or _fbc.
type Value struct {
	SubdomainIndex int
	CreationTime   int64  // Unix milliseconds
	Payload        string // the random number (_fbp) or the click id (_fbc)
	Appendix       string // "" for the 4-segment form
}

// Parse validates s with the rules of §5.4 step 4: 4 or 5 dot-separated
// segments, "fb", a digit subdomain index, a digit creation time, a non-empty
// payload and, with 5 segments, a valid appendix. The check is on the
// envelope only; the click id's characters are never judged. ok is false for
// anything else (including surrounding spaces or an upper-case "FB").
func Parse(s string) (v Value, ok bool) {
	// The segments are cut one by one rather than split into a slice:
	// Parse runs on every request's _fbp and _fbc.
	rest, ok := strings.CutPrefix(s, "fb.")
	if !ok {
		return Value{}, false
	}
	idx, rest, ok := strings.Cut(rest, ".")
	if !ok {
		return Value{}, false
	}
	ts, rest, ok := strings.Cut(rest, ".")
	if !ok {
		return Value{}, false
	}
	payload, appendix, five := strings.Cut(rest, ".")
	if !digits(idx) || !digits(ts) || payload == "" {
		return Value{}, false
	}
	if five && (strings.IndexByte(appendix, '.') >= 0 || !validAppendix(appendix)) {
		return Value{}, false
	}
	i, err := strconv.Atoi(idx)
	if err != nil {
		return Value{}, false
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Value{}, false
	}
	return Value{SubdomainIndex: i, CreationTime: t, Payload: payload, Appendix: appendix}, true
}

// Valid reports whether s is an acceptable _fbp or _fbc value (see Parse).
func Valid(s string) bool {
	_, ok := Parse(s)
	return ok
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// legacyTokens are the 2-character appendices (the base64 of a language
// index byte: PHP, Python, Java, Node.js, Ruby, client JS; §5.3).
var legacyTokens = map[string]bool{"AQ": true, "Ag": true, "Aw": true, "BA": true, "BQ": true, "Bg": true}

// validAppendix applies the Parameter Builder 1.3.2 rule (§5.3): a legacy
// token, or 8 base64url characters decoding to 6 bytes whose first byte is
// the format 0x01 and whose second is a language index 1..6.
func validAppendix(a string) bool {
	if legacyTokens[a] {
		return true
	}
	if len(a) != 8 {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	var b [6]byte // 8 base64 characters are 6 bytes
	n, err := base64.RawURLEncoding.Decode(b[:], []byte(a))
	if err != nil || n != 6 {
		return false
	}
	return b[0] == 0x01 && b[1] >= 1 && b[1] <= 6
}

// Domain is where the cookies live.
type Domain struct {
	// Name is the cookie domain: the registrable domain (eTLD+1), or the
	// host itself for a host-only cookie. Lower case, no port, no brackets.
	Name string
	// HostOnly is true for IP addresses, localhost and other single-label
	// hosts: the cookie is set without a Domain attribute.
	HostOnly bool
	// Index is the subdomainIndex of values minted for this domain: the
	// number of labels of Name minus one, 0 when HostOnly (§5.1).
	Index int
}

// CookieDomain returns the domain on which _fbp/_fbc are set for a request
// to host (which may carry a scheme, a port or IPv6 brackets).
//
// The registrable domain comes from the Public Suffix List (§5.8 step 1), so
// example.co.uk stays example.co.uk (Meta's Parameter Builder would pick the
// public suffix co.uk, which browsers refuse; §5.4 step 2, pitfall 4).
// configured lists domains the operator declared (a site's domains): the
// first entry that host equals or is a subdomain of wins, unless it is itself
// a public suffix. IPs, localhost and single-label hosts are host-only with
// index 0.
func CookieDomain(host string, configured []string) Domain {
	h := bareHost(host)
	if h == "" {
		return Domain{HostOnly: true}
	}
	if h == "localhost" || !strings.Contains(h, ".") || isAddr(h) {
		return Domain{Name: h, HostOnly: true}
	}
	for _, c := range configured {
		d := bareHost(c)
		if d == "" || !strings.Contains(d, ".") || !isDomainOrSub(h, d) {
			continue
		}
		if IsPublicSuffix(d) {
			continue
		}
		return Domain{Name: d, Index: strings.Count(d, ".")}
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(h)
	if err != nil {
		// host is itself a public suffix (or malformed): a host-only
		// cookie is the only kind a browser keeps.
		return Domain{Name: h, HostOnly: true, Index: strings.Count(h, ".")}
	}
	return Domain{Name: d, Index: strings.Count(d, ".")}
}

// Covers reports whether cookies on d are first-party on a page of
// pageHost (lower case, without port, as in an Origin): pageHost is d's
// name or, unless d is host-only, one of its subdomains.
func (d Domain) Covers(pageHost string) bool {
	return pageHost != "" && d.Name != "" && (pageHost == d.Name || !d.HostOnly && isDomainOrSub(pageHost, d.Name))
}

// FirstPartyDomain returns CookieDomain(host, configured) and whether it
// Covers pageHost: whether cookies a relay at host sets are first-party on
// that page. When they cannot be (pageHost is not host and the two do not
// end in the same two labels, which every covering domain would give
// them) the domain is not looked up: ok is false and d is zero.
func FirstPartyDomain(host, pageHost string, configured []string) (d Domain, ok bool) {
	if h := bareHost(host); pageHost != h && !sameLastTwoLabels(pageHost, h) {
		return Domain{}, false
	}
	d = CookieDomain(host, configured)
	return d, d.Covers(pageHost)
}

// sameLastTwoLabels reports whether a and b both have two labels or more
// and their last two are the same.
func sameLastTwoLabels(a, b string) bool {
	a, b = lastTwoLabels(a), lastTwoLabels(b)
	return a != "" && a == b
}

// lastTwoLabels is what follows the next to last dot of s (all of s if it
// has one dot), or "" when s has no dot.
func lastTwoLabels(s string) string {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return ""
	}
	return s[strings.LastIndexByte(s[:i], '.')+1:]
}

// IsPublicSuffix reports whether d is a public suffix of the Public Suffix
// List, ICANN or private section (co.uk, github.io), which no cookie may be
// set on; a single label is one by the list's default rule. sitecfg refuses
// such a site domain and the /e Origin check does not let one admit its
// subdomains. The answers for configured domains (a
// few per site, so suffixMemoMax is far) are kept: the list is compiled
// in and the lookup costs a microsecond on every request.
func IsPublicSuffix(d string) bool {
	if v, ok := suffixMemo.Load(d); ok {
		return v.(bool)
	}
	ps, _ := publicsuffix.PublicSuffix(d)
	is := ps == d
	if suffixMemoLen.Add(1) <= suffixMemoMax {
		suffixMemo.Store(strings.Clone(d), is)
	}
	return is
}

var (
	suffixMemo    sync.Map // domain → is a public suffix
	suffixMemoLen atomic.Int64
)

const suffixMemoMax = 4096

// isAddr reports whether h is an IP address. Only a string with a colon
// (IPv6) or of digits and dots alone (IPv4) can be one; the others are not
// given to netip.ParseAddr, whose error would be built for nothing.
func isAddr(h string) bool {
	if strings.IndexByte(h, ':') < 0 {
		for i := 0; i < len(h); i++ {
			if c := h[i]; c != '.' && (c < '0' || c > '9') {
				return false
			}
		}
	}
	_, err := netip.ParseAddr(h)
	return err == nil
}

// isDomainOrSub reports whether host is d or a subdomain of it
// (host == d || strings.HasSuffix(host, "."+d), without building "."+d).
func isDomainOrSub(host, d string) bool {
	if len(host) == len(d) {
		return host == d
	}
	return len(host) > len(d) && host[len(host)-len(d)-1] == '.' && host[len(host)-len(d):] == d
}

// bareHost strips a scheme, a path, a port and IPv6 brackets, and lower-cases.
func bareHost(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i > 0 {
			return strings.ToLower(s[1:i])
		}
		return ""
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.Count(s, ":") == 1 {
		s = s[:i]
	}
	return strings.TrimSuffix(strings.ToLower(s), ".")
}

// fbpMin and fbpMax bound the random part of a minted _fbp: uniform in
// [1_000_000_000, 2_147_483_647), ten digits like Meta's examples (§5.8 step 3).
const (
	fbpMin = 1_000_000_000
	fbpMax = 2_147_483_647
)

// NewFbp mints a 4-segment _fbp for a cookie at subdomain index idx, created
// at now, with a random number from crypto/rand. It panics only if the
// operating system's random source fails.
func NewFbp(now time.Time, idx int) string {
	const span = fbpMax - fbpMin
	// Rejection sampling keeps the draw uniform: below limit, a uint32 is
	// uniform modulo span.
	const limit = (1 << 32) / span * span
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("fbcookie: crypto/rand: " + err.Error())
		}
		if n := binary.LittleEndian.Uint32(b[:]); n < limit {
			var a [64]byte
			v := appendPrefix(a[:0], idx, now)
			return string(strconv.AppendInt(v, int64(n%span)+fbpMin, 10))
		}
	}
}

// NewFbc builds a 4-segment _fbc for clickID, kept byte for byte.
func NewFbc(now time.Time, idx int, clickID string) string {
	var a [64]byte
	return string(append(appendPrefix(a[:0], idx, now), clickID...))
}

// appendPrefix appends "fb.{idx}.{now in Unix milliseconds}.".
func appendPrefix(b []byte, idx int, now time.Time) []byte {
	b = append(b, "fb."...)
	b = strconv.AppendInt(b, int64(idx), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	return append(b, '.')
}

// ClickID returns the fbclid of a page URL, or else of its referrer (§5.4
// step 5: the query wins): the first value of the exactly-named "fbclid"
// parameter, URL-decoded once, case kept. It returns "" when there is none
// or it is unusable (see UsableClickID).
func ClickID(pageURL, referrer string) string {
	for _, raw := range []string{pageURL, referrer} {
		// Without "fbclid" and without a %-escape no query key can
		// decode to "fbclid": skip url.Parse (most page views).
		if raw == "" || strings.IndexByte(raw, '%') < 0 && !strings.Contains(raw, "fbclid") {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil && len(q["fbclid"]) == 0 {
			continue
		}
		if vs := q["fbclid"]; len(vs) > 0 && UsableClickID(vs[0]) {
			return vs[0]
		}
	}
	return ""
}

// UsableClickID reports whether id can become an _fbc payload: non-empty, at
// most MaxClickIDLen bytes (§5.5), without a "." (which would make a value
// that Parse refuses on the next request, so a new _fbc would be minted on
// every visit; §5.1) and made of cookie-safe printable ASCII (RFC 6265
// cookie-octets), so it is stored and read back unchanged.
func UsableClickID(id string) bool {
	if id == "" || len(id) > MaxClickIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= 0x20 || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' || c == '.' {
			return false
		}
	}
	return true
}

// State is the outcome of Resolve: the values to use and to store.
type State struct {
	Fbp string
	Fbc string // "" when there is no click
	// FbpNew and FbcNew report values minted (or replaced) by this call;
	// other non-empty values are valid incoming values, kept byte for byte.
	FbpNew, FbcNew bool
}

// Resolve applies §5.8 steps 2-4 for one request: a valid incoming fbp is
// kept, else a new one is minted at domain index idx; a usable clickID gives
// a new fbc when there is no valid one or its segment 3 differs from clickID
// (compared case-sensitively), otherwise the valid incoming fbc is kept.
func Resolve(now time.Time, idx int, fbp, fbc, clickID string) State {
	var st State
	if Valid(fbp) {
		st.Fbp = fbp
	} else {
		st.Fbp, st.FbpNew = NewFbp(now, idx), true
	}
	st.Fbc, st.FbcNew = ResolveFbc(now, idx, fbc, clickID)
	return st
}

// ResolveFbc is the _fbc half of Resolve, for a caller that keeps no _fbp
// (so mints none): the value to use, and whether it was minted. idx is used
// only when UsableClickID(clickID).
func ResolveFbc(now time.Time, idx int, fbc, clickID string) (string, bool) {
	old, valid := Parse(fbc)
	switch {
	case UsableClickID(clickID) && (!valid || old.Payload != clickID):
		return NewFbc(now, idx, clickID), true
	case valid:
		return fbc, false
	}
	return "", false
}
