package admin

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/store"
)

// PBKDF2IterationsMin is the iteration count of new password hashes: OWASP's
// 2023 figure for PBKDF2-HMAC-SHA256 (about a quarter second per guess on
// one core, which the login rate limit multiplies).
const PBKDF2IterationsMin = 600_000

const (
	hashScheme  = "pbkdf2-sha256"
	saltSize    = 16
	derivedSize = 32
	cookieName  = "capirelay_admin"
	csrfField   = "csrf"
	csrfHeader  = "X-CSRF-Token"
	tokenPrefix = "cra_"
	minPassword = 12
)

// HashPassword returns a PBKDF2-HMAC-SHA256 hash of password with a random
// salt, encoded as "pbkdf2-sha256$<iterations>$<salt>$<hash>" (base64).
// It refuses passwords shorter than 12 characters.
func HashPassword(password string) (string, error) {
	if utf8.RuneCountInString(password) < config.MinAdminPassword {
		return "", fmt.Errorf("the admin password must have at least %d characters", config.MinAdminPassword)
	}
	salt := make([]byte, saltSize)
	rand.Read(salt)
	dk, err := pbkdf2.Key(sha256.New, password, salt, PBKDF2IterationsMin, derivedSize)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", hashScheme, PBKDF2IterationsMin, enc.EncodeToString(salt), enc.EncodeToString(dk)), nil
}

// CheckPassword reports whether password matches encoded (from
// HashPassword). It fails on a malformed hash.
func CheckPassword(encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 4 || parts[0] != hashScheme {
		return false, errors.New("admin password hash: unknown format")
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 {
		return false, errors.New("admin password hash: bad iteration count")
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false, errors.New("admin password hash: bad encoding")
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	if err != nil {
		return false, fmt.Errorf("check password: %w", err)
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Admin API token scopes; each allows what the one before does, and more.
const (
	ScopeRead     = "read"     // GET requests only
	ScopeWrite    = "write"    // every API call except changing where webhooks go
	ScopeWebhooks = "webhooks" // also webhook settings, which decide where raw leads are posted
)

// Scopes lists the scopes in order.
var Scopes = []string{ScopeRead, ScopeWrite, ScopeWebhooks}

// DefaultTokenTTL is how long a new admin API token lasts unless told
// otherwise (capirelay admin create-token --expires).
const DefaultTokenTTL = 90 * 24 * time.Hour

func scopeLevel(scope string) int {
	for i, s := range Scopes {
		if s == scope {
			return i + 1
		}
	}
	return 0
}

// ValidScope reports whether scope is one of Scopes.
func ValidScope(scope string) bool { return scopeLevel(scope) > 0 }

// NewAPIToken returns a new admin API token and the hash to store. The token
// is shown once and never stored.
func NewAPIToken() (token, hash string) {
	token = tokenPrefix + randomString(32)
	return token, TokenHash(token)
}

// TokenHash is the stored form of an API token or session id: hex SHA-256.
// The values have 256 random bits, so a fast hash is enough.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// principal is who made an authenticated request.
type principal struct {
	session *store.AdminSession // dashboard login
	token   *store.AdminToken   // API token
}

// may reports whether p is allowed what scope allows. A dashboard session
// (the password) may do everything.
func (p *principal) may(scope string) bool {
	if p == nil {
		return false
	}
	return p.session != nil || (p.token != nil && scopeLevel(p.token.Scope) >= scopeLevel(scope))
}

// requireScope refuses the request's principal unless it may do scope;
// field names what needed it.
func requireScope(ctx context.Context, scope, field string) error {
	if principalFrom(ctx).may(scope) {
		return nil
	}
	return errorf(http.StatusForbidden, field, "%s needs an admin API token with scope %s (capirelay admin create-token --scope %s)", field, scope, scope)
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p *principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}

// csrfToken is the session's CSRF token, "" for API token requests.
func csrfToken(ctx context.Context) string {
	if p := principalFrom(ctx); p != nil && p.session != nil {
		return p.session.CSRF
	}
	return ""
}

// wrap adds authentication, CSRF checks and error rendering to a route.
func (h *Handler) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asJSON := rt.access == api
		if rt.access != public {
			p, err := h.authenticate(r, rt.access)
			if err != nil {
				if !asJSON && r.Method == http.MethodGet && errors.Is(err, errUnauthenticated) {
					http.Redirect(w, r, "/admin/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				h.fail(w, r, asJSON, err)
				return
			}
			r = r.WithContext(withPrincipal(r.Context(), p))
			w.Header().Set("Cache-Control", "no-store")
		}
		if err := rt.handle(w, r); err != nil {
			h.fail(w, r, asJSON, err)
		}
	})
}

var errUnauthenticated = &Error{Status: http.StatusUnauthorized, Msg: "log in first (or send Authorization: Bearer <admin API token>)"}

// authenticate finds the session or API token of r and checks CSRF.
func (h *Handler) authenticate(r *http.Request, access int) (*principal, error) {
	ctx := r.Context()
	if access == api {
		if auth := r.Header.Get("Authorization"); auth != "" {
			tok, ok := strings.CutPrefix(auth, "Bearer ")
			if !ok || tok == "" {
				return nil, errUnauthenticated
			}
			t, err := h.admin.AdminTokenByHash(ctx, TokenHash(strings.TrimSpace(tok)), h.now())
			if errors.Is(err, store.ErrNotFound) {
				return nil, &Error{Status: http.StatusUnauthorized, Msg: "unknown admin API token"}
			}
			if err != nil {
				return nil, err
			}
			now := h.now()
			switch {
			case !t.RevokedAt.IsZero():
				return nil, &Error{Status: http.StatusUnauthorized, Msg: "this admin API token was revoked"}
			case !t.Active(now):
				return nil, &Error{Status: http.StatusUnauthorized, Msg: fmt.Sprintf(
					"this admin API token expired on %s; create a new one with capirelay admin create-token", t.ExpiresAt.UTC().Format(time.DateOnly))}
			case r.Method != http.MethodGet && r.Method != http.MethodHead && scopeLevel(t.Scope) < scopeLevel(ScopeWrite):
				return nil, &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("this admin API token is read-only (scope %s)", t.Scope)}
			}
			return &principal{token: t}, nil
		}
	}
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return nil, errUnauthenticated
	}
	s, err := h.admin.AdminSession(ctx, TokenHash(c.Value), h.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		got := r.Header.Get(csrfHeader)
		if got == "" && access == page {
			got = r.PostFormValue(csrfField)
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) != 1 {
			return nil, &Error{Status: http.StatusForbidden, Msg: "the form expired or did not come from this dashboard; reload the page and try again"}
		}
	}
	return &principal{session: s}, nil
}

// checkPassword compares against CAPIRELAY_ADMIN_PASSWORD when set, else the
// stored hash. errNoPassword when neither exists.
func (h *Handler) checkPassword(ctx context.Context, pw string) (bool, error) {
	h.passwordChecks.Add(1)
	if h.cfg.AdminPassword != "" {
		a, b := sha256.Sum256([]byte(pw)), sha256.Sum256([]byte(h.cfg.AdminPassword))
		return subtle.ConstantTimeCompare(a[:], b[:]) == 1, nil
	}
	enc, err := h.admin.AdminPasswordHash(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return false, errNoPassword
	}
	if err != nil {
		return false, err
	}
	return CheckPassword(enc, pw)
}

var errNoPassword = &Error{Status: http.StatusServiceUnavailable,
	Msg: "no admin password is set: run `capirelay admin set-password` or set CAPIRELAY_ADMIN_PASSWORD"}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) error {
	return h.render(w, r, http.StatusOK, "login", "Log in", loginView{Next: safeNext(r.URL.Query().Get("next"))})
}

type loginView struct {
	Next  string
	Error string
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) error {
	ip := h.clientIP(r)
	// The guard decides before any password work: a refused attempt costs
	// no PBKDF2, so a spray cannot take CPU from ingest.
	done, wait := h.logins.admit(ip, h.now())
	if done == nil {
		if h.metrics != nil {
			h.metrics.RateLimited.WithLabelValues("admin_login").Inc()
		}
		// A spray is thousands of refusals a second: one line per
		// interval with their count, not one per refusal.
		if n := h.logins.refused(h.now()); n > 0 {
			h.log.Warn("admin logins refused by the rate limit", "count", n, "last_client_ip", ip, "interval", refusalLogInterval)
		}
		// The page and the header give the same wait: 12 s for one
		// address past its burst, up to 15 minutes in a lockout.
		secs := retryAfter(wait)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		return h.render(w, r, http.StatusTooManyRequests, "login", "Log in",
			loginView{Error: "Too many login attempts. Try again in " + waitText(secs) + "."})
	}
	wrong := false // only a wrong password spends the global failure budget
	defer func() { done(wrong) }()
	// SameSite=Strict stops other sites from riding a session; for the login
	// form itself, refuse a cross-site post (login CSRF).
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			return &Error{Status: http.StatusForbidden, Msg: "cross-site login refused"}
		}
	}
	next := safeNext(r.PostFormValue("next"))
	ok, err := h.checkPassword(r.Context(), r.PostFormValue("password"))
	if errors.Is(err, errNoPassword) {
		return h.render(w, r, http.StatusServiceUnavailable, "login", "Log in", loginView{Next: next, Error: errNoPassword.Msg})
	}
	if err != nil {
		return err
	}
	if !ok {
		wrong = true
		h.log.Info("admin login failed", "client_ip", ip)
		return h.render(w, r, http.StatusUnauthorized, "login", "Log in", loginView{Next: next, Error: "Wrong password."})
	}
	id := randomString(32)
	now := h.now()
	s := &store.AdminSession{IDHash: TokenHash(id), CSRF: randomString(32), CreatedAt: now, ExpiresAt: now.Add(h.cfg.SessionTTL)}
	if err := h.admin.CreateAdminSession(r.Context(), s); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true, Secure: h.secure(r),
		SameSite: http.SameSiteStrictMode, Expires: s.ExpiresAt})
	h.log.Info("admin logged in", "client_ip", ip)
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) error {
	if p := principalFrom(r.Context()); p != nil && p.session != nil {
		if err := h.admin.DeleteAdminSession(r.Context(), p.session.IDHash); err != nil {
			return err
		}
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, Secure: h.secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/admin/login", http.StatusSeeOther)
	return nil
}

// secure reports whether cookies must be Secure: the request came over TLS
// or the relay's public URL is https (TLS ends at a proxy).
func (h *Handler) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(h.cfg.PublicURL, "https://")
}

// safeNext keeps a post-login redirect inside the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/admin/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/admin/"
	}
	return next
}

func (h *Handler) clientIP(r *http.Request) string {
	if h.cfg.ClientIP != nil {
		return h.cfg.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
