package collect

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/capirelay/capirelay/internal/fbcookie"
)

// Visitor id cookie: a random first-party id the tag and /e share; it
// becomes the event's external_id.
const (
	VisitorCookie = "_cr_vid"
	VisitorMaxAge = 365 * 24 * time.Hour
)

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
