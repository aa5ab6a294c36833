package collect

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"regexp"
	"time"

	"github.com/capirelay/capirelay/internal/fbcookie"
)

// Visitor id cookie: a random first-party id the tag and /e share; it
// becomes the event's external_id.
const (
	VisitorCookie = "_cr_vid"
	VisitorMaxAge = 365 * 24 * time.Hour
)

var visitorIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)

// validVisitorID reports whether v looks like an id the tag or we minted.
func validVisitorID(v string) bool { return visitorIDRe.MatchString(v) }

// newVisitorID returns 128 random bits as 32 hex characters.
func newVisitorID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cookieValue returns the value of the named request cookie, or "".
func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// setBrowserCookie sets or refreshes a first-party cookie the tag can read:
// Path=/, SameSite=Lax, Secure on https, not HttpOnly (the tag and Meta's
// Pixel read _fbp/_fbc), on the registrable domain or host-only.
func setBrowserCookie(w http.ResponseWriter, name, value string, d fbcookie.Domain, maxAge time.Duration, secure bool) {
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
	http.SetCookie(w, c)
}
