package collect

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/fbcookie"
)

// Visitor id cookie: a random first-party id the tag and /e share; it
// becomes the event's external_id.
const (
	VisitorCookie = "_cr_vid"
	VisitorMaxAge = 365 * 24 * time.Hour
)

// ConsentCookie holds the visitor's decision ("granted" or "denied"), as
// the tag writes it on the site's registrable domain.
const ConsentCookie = "_cr_consent"

// validVisitorID reports whether v looks like an id the tag or we minted:
// 16 to 64 of A-Z a-z 0-9 _ - (the tag's /^[\w-]{16,64}$/).
func validVisitorID(v string) bool {
	if len(v) < 16 || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// newVisitorID returns 128 random bits as 32 hex characters.
func newVisitorID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cookieValue returns the value of the named request cookie, or "". A
// request whose Cookie headers do not contain the name at all has no such
// cookie: only then are its cookies not parsed.
func cookieValue(r *http.Request, name string) string {
	found := false
	for _, line := range r.Header["Cookie"] {
		if strings.Contains(line, name) {
			found = true
			break
		}
	}
	if !found {
		return ""
	}
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// appendBrowserCookie appends the Set-Cookie value of a first-party cookie
// the tag can read: Path=/, SameSite=Lax, Secure on https, not HttpOnly
// (the tag and Meta's Pixel read _fbp/_fbc), on the registrable domain or
// host-only. Nothing is appended for a name net/http refuses.
//
// The value is written directly when nothing in it needs net/http's checks
// (a token name, a value of plain cookie bytes, a domain name net/http
// keeps, a positive Max-Age); anything else is http.Cookie's String, which
// http.SetCookie writes. Both give the same header (FuzzSetBrowserCookie).
func appendBrowserCookie(b []byte, name, value string, d fbcookie.Domain, maxAge time.Duration, secure bool) []byte {
	age := int(maxAge / time.Second)
	if age <= 0 || !isCookieToken(name) || !plainCookieValue(value) || !d.HostOnly && !isCookieDomainName(d.Name) {
		return append(b, browserCookie(name, value, d, maxAge, secure).String()...)
	}
	b = append(b, name...)
	b = append(b, '=')
	b = append(b, value...)
	b = append(b, "; Path=/"...)
	if !d.HostOnly && d.Name != "" {
		b = append(b, "; Domain="...)
		b = append(b, strings.TrimPrefix(d.Name, ".")...)
	}
	b = append(b, "; Max-Age="...)
	b = strconv.AppendInt(b, int64(age), 10)
	if secure {
		b = append(b, "; Secure"...)
	}
	return append(b, "; SameSite=Lax"...)
}

func browserCookie(name, value string, d fbcookie.Domain, maxAge time.Duration, secure bool) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   int(maxAge / time.Second),
		SameSite: http.SameSiteLaxMode,
		Secure:   secure,
	}
	if !d.HostOnly {
		c.Domain = d.Name
	}
	return c
}

// isCookieToken: a non-empty cookie name of letters, digits and _ - . (a
// subset of the tokens net/http accepts).
func isCookieToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return s != ""
}

// plainCookieValue: bytes net/http writes as they are, unquoted.
func plainCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == ';' || c == '\\' || c == ',' {
			return false
		}
	}
	return true
}

// isCookieDomainName is net/http's check of a Domain attribute (a domain
// name; net/http also keeps IPv4 addresses, which take http.SetCookie).
func isCookieDomainName(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	if s[0] == '.' {
		s = s[1:]
	}
	last := byte('.')
	ok := false // once a letter is seen
	partlen := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		default:
			return false
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			ok = true
			partlen++
		case '0' <= c && c <= '9':
			partlen++
		case c == '-':
			if last == '.' {
				return false
			}
			partlen++
		case c == '.':
			if last == '.' || last == '-' {
				return false
			}
			if partlen > 63 || partlen == 0 {
				return false
			}
			partlen = 0
		}
		last = c
	}
	if last == '-' || partlen > 63 {
		return false
	}
	return ok
}

// secure reports whether the relay's cookies get the Secure attribute: the
// request came over TLS or through a trusted proxy that says so, or the
// relay's public URL is https.
func (b *Browser) secure(r *http.Request) bool {
	return b.SecureCookies || requestScheme(r, b.TrustedProxies) == "https"
}

// clearCookies expires _fbp, _fbc and the visitor id on d and host-only:
// every copy the relay or the tag may have set where the relay can reach.
func clearCookies(w http.ResponseWriter, d fbcookie.Domain, secure bool) {
	for _, name := range []string{fbcookie.FbpName, fbcookie.FbcName, VisitorCookie} {
		for _, hostOnly := range []bool{false, true} {
			if !hostOnly && (d.HostOnly || d.Name == "") {
				continue
			}
			c := browserCookie(name, "", fbcookie.Domain{Name: d.Name, HostOnly: hostOnly}, 0, secure)
			c.MaxAge = -1 // Max-Age=0 on the wire: delete now
			w.Header().Add("Set-Cookie", c.String())
		}
	}
}

// hasConsentEvent reports whether the body carries a consent decision.
func hasConsentEvent(body *browserBody) bool {
	for i := range body.Events {
		if body.Events[i].Type == "consent" {
			return true
		}
	}
	return false
}
