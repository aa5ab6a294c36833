package store

import (
	"context"
	"time"
)

// AdminSession is one logged-in dashboard session. The cookie holds a random
// token; the store keeps only its SHA-256 (IDHash), so a copy of the database
// does not let anyone in.
type AdminSession struct {
	IDHash    string // hex SHA-256 of the cookie value
	CSRF      string // per-session CSRF token, checked on every POST
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AdminToken is an admin API token. The token itself is shown once at
// creation and never stored; Hash is its hex SHA-256.
type AdminToken struct {
	ID         int64
	Name       string
	Hash       string
	Scope      string // what it may do (the admin package's scopes); "" at creation means "write"
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time // zero: never
	RevokedAt  time.Time // zero: not revoked
}

// Active reports whether t may be used at now.
func (t *AdminToken) Active(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// MinuteCount is the outbox activity of one minute: events stored (In),
// delivered and dead-lettered during it.
type MinuteCount struct {
	Minute    time.Time // start of the minute
	In        int
	Delivered int
	Dead      int
}

// ErrorCount groups outbox items by site and last error.
type ErrorCount struct {
	SiteKey string
	Reason  string
	State   string // StatePending (will be retried) or StateDead
	Count   int
	Last    time.Time // newest created_at among them
}

// Admin is what the operator dashboard and admin API keep beside the core
// tables: the admin password, sessions, API tokens, and aggregate reads over
// the outbox. Implementations are safe for concurrent use.
type Admin interface {
	// AdminPasswordHash returns the stored password hash; ErrNotFound when
	// none was set.
	AdminPasswordHash(ctx context.Context) (string, error)
	// SetAdminPasswordHash replaces the password hash and ends every session.
	SetAdminPasswordHash(ctx context.Context, hash string) error

	CreateAdminSession(ctx context.Context, s *AdminSession) error
	// AdminSession returns the session with idHash unless it expired by now;
	// ErrNotFound otherwise.
	AdminSession(ctx context.Context, idHash string, now time.Time) (*AdminSession, error)
	DeleteAdminSession(ctx context.Context, idHash string) error

	// CreateAdminToken stores t (ID and CreatedAt are set); ErrDuplicate on a
	// hash clash.
	CreateAdminToken(ctx context.Context, t *AdminToken) error
	// AdminTokenByHash returns the token with hash, revoked or expired
	// ones too (the caller says which), and records the use of an active
	// one at now; ErrNotFound when there is none.
	AdminTokenByHash(ctx context.Context, hash string, now time.Time) (*AdminToken, error)
	// ListAdminTokens lists every token, revoked and expired ones too,
	// oldest first.
	ListAdminTokens(ctx context.Context) ([]AdminToken, error)
	// RevokeAdminToken marks a token revoked at now (a revoked one keeps
	// its first time); ErrNotFound when there is none.
	RevokeAdminToken(ctx context.Context, id int64, now time.Time) error

	// Activity counts outbox items per minute in [since, until): stored by
	// created_at, delivered and dead by delivered_at. Minutes with no
	// activity are omitted; the result is oldest first.
	Activity(ctx context.Context, since, until time.Time) ([]MinuteCount, error)
	// DeliveryLatencies returns created-to-delivered durations of at most
	// limit items delivered since, newest deliveries first.
	DeliveryLatencies(ctx context.Context, since time.Time, limit int) ([]time.Duration, error)
	// Errors groups items created since that carry a last error, by site,
	// state and reason, most frequent first.
	Errors(ctx context.Context, since time.Time, limit int) ([]ErrorCount, error)
}
