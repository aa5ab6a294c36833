// Package store declares what capirelay keeps durably and the errors its
// implementations return. The SQLite and PostgreSQL packages implement it;
// storetest holds the one contract suite both pass. Driver types never leave
// the implementations.
//
// Secrets: implementations are given a secret.Box at Open and seal access
// tokens, outbox payloads (they carry IP addresses and user agents) and raw
// lead values before they reach disk. Callers see plaintext.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors every implementation returns (wrapped with context).
var (
	ErrNotFound  = errors.New("not found")
	ErrDuplicate = errors.New("already exists")
	ErrConflict  = errors.New("conflict")
	// ErrUnavailable means the store could not durably write (disk full,
	// read-only, connection lost); ingest answers 503.
	ErrUnavailable = errors.New("store unavailable")
)

// Consent modes of a site.
const (
	ConsentNone     = "none"
	ConsentRequired = "required"
	ConsentLDU      = "ldu"
)

// Site is one advertiser property: its domains, its pixel and how to deliver.
type Site struct {
	Key           string // public site key used by the tag (t.js?site=KEY)
	Name          string
	Domains       []string // registrable domains; each admits its subdomains
	PixelID       string
	AccessToken   string // plaintext in memory, sealed at rest; "" = sandbox
	APIKeyHash    string // hex SHA-256 of the api key; the key itself is never stored
	TestEventCode string
	Consent       string // ConsentNone (default), ConsentRequired, ConsentLDU
	DefaultRegion string // ISO alpha-2 used for phones etc. without a country

	PartialLeads       bool          // capture partial leads (default true)
	PartialLeadTimeout time.Duration // idle time before a lead session is partial (default 20m)
	PartialLeadForward bool          // send a CAPI event for partial leads (default false)
	PartialLeadEvent   string        // name of that event (default PartialLead)
	WebhookURL         string
	// WebhookAllowHTTP lets WebhookURL be plain http; WebhookAllowPrivate
	// lets it reach loopback, private and CGNAT addresses (never link-local
	// or cloud metadata ones). Both are off by default.
	WebhookAllowHTTP    bool
	WebhookAllowPrivate bool
	Retention           time.Duration // partial lead retention (default 30 days)

	// Identity is how far identity stitching goes: IdentityFull (default),
	// IdentityVisitor or IdentityOff.
	Identity string
	// ClickWindow is how long after a click its fbc may be added to the
	// person's later events (default 7 days).
	ClickWindow time.Duration

	Paused      bool   // delivery paused (invalid token, permission)
	PauseReason string // why, for operators
	Demo        bool   // the built-in demo site

	CreatedAt time.Time
	UpdatedAt time.Time
}

// Identity modes of a site.
const (
	// IdentityFull links events by the tag's visitor id, external_id and
	// email (the default).
	IdentityFull = "full"
	// IdentityVisitor links only events of the same browser.
	IdentityVisitor = "visitor"
	// IdentityOff neither learns nor enriches.
	IdentityOff = "off"
)

// IdentityModes are the valid values of Site.Identity.
var IdentityModes = []string{IdentityFull, IdentityVisitor, IdentityOff}

// IdentityMode is s.Identity with its default.
func (s *Site) IdentityMode() string {
	if s.Identity == "" {
		return IdentityFull
	}
	return s.Identity
}

// FbcWindow is s.ClickWindow with its default.
func (s *Site) FbcWindow() time.Duration {
	if s.ClickWindow <= 0 {
		return DefaultClickWindow
	}
	return s.ClickWindow
}

// Sandbox reports whether the site delivers to the local sandbox.
func (s *Site) Sandbox() bool { return s.AccessToken == "" || s.PixelID == "" }

// Sites manages sites.
type Sites interface {
	CreateSite(ctx context.Context, s *Site) error // ErrDuplicate on key or api key clash
	Site(ctx context.Context, key string) (*Site, error)
	SiteByAPIKeyHash(ctx context.Context, hash string) (*Site, error)
	ListSites(ctx context.Context) ([]*Site, error)
	// UpdateSite writes every field of s except Key, CreatedAt, AccessToken,
	// APIKeyHash and Paused/PauseReason (which have their own calls).
	UpdateSite(ctx context.Context, s *Site) error
	// SetAccessToken stores a new token and un-pauses the site.
	SetAccessToken(ctx context.Context, key, token string) error
	SetAPIKeyHash(ctx context.Context, key, hash string) error
	SetPaused(ctx context.Context, key string, paused bool, reason string) error
	DeleteSite(ctx context.Context, key string) error
}

// NewEvent is an event ready for the outbox: normalized, hashed, serialized.
type NewEvent struct {
	SiteKey   string
	EventName string
	EventID   string
	EventTime time.Time
	Payload   []byte // the server event JSON exactly as it will be sent, or its sealed copy (Sealed)
	VisitorID string // browser visitor id, "" for server events
	Held      bool   // waiting for consent: stored but not dispatched
	Source    string // "server", "browser", "import", "lead"
	// TestEventCode overrides the site's test_event_code for this event
	// (a request's own test_event_code); "" = the site's.
	TestEventCode string
	// Enriched names the user_data keys identity stitching added (names
	// only, never values), for the live-event page.
	Enriched []string
	// Params are the request's other top-level Graph parameters
	// (partner_agent, namespace_id, upload_*) as an encoded query string
	// (capi.RequestParams), sent with the event; "" = none.
	Params string
	// Sealed says Payload is already sealed by the store's SealPayload;
	// else Enqueue seals it.
	Sealed bool
}

// Status is what Enqueue did with one event.
type Status string

// Enqueue outcomes.
const (
	Accepted  Status = "accepted"
	Duplicate Status = "duplicate"
)

// EnqueueResult is the outcome of one NewEvent.
type EnqueueResult struct {
	Status Status // Accepted or Duplicate
	ID     int64  // outbox id when accepted
}

// JoinKeys and SplitKeys store a list of user_data key names (NewEvent
// and Item's Enriched) in one text column.
func JoinKeys(keys []string) string { return strings.Join(keys, ",") }

// SplitKeys is the inverse of JoinKeys.
func SplitKeys(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// DedupWindow is how long (site, event_name, event_id) is remembered.
const DedupWindow = 48 * time.Hour

// Item states.
const (
	StatePending   = "pending"
	StateInflight  = "inflight"
	StateDelivered = "delivered"
	StateDead      = "dead"
	StateHeld      = "held"
)

// Item is one outbox row as the dispatcher and the dashboard see it.
type Item struct {
	ID            int64
	SiteKey       string
	EventName     string
	EventID       string
	EventTime     time.Time
	Payload       []byte
	State         string
	Attempts      int
	NextAttempt   time.Time
	LastError     string
	TraceID       string // fbtrace_id of the last answer
	Source        string
	VisitorID     string
	TestEventCode string
	Params        string // as NewEvent.Params
	CreatedAt     time.Time
	DeliveredAt   time.Time
	Enriched      []string // the user_data keys identity stitching added
}

// OutcomeKind is what happened to one claimed item.
type OutcomeKind int

// Outcome kinds. The zero value is no kind: Complete refuses it.
const (
	OutcomeDelivered OutcomeKind = iota + 1
	OutcomeRetry
	OutcomeDead
	OutcomeRelease // give the claim back untouched (pixel paused, shutdown)
)

func (k OutcomeKind) String() string {
	switch k {
	case OutcomeDelivered:
		return "delivered"
	case OutcomeRetry:
		return "retry"
	case OutcomeDead:
		return "dead"
	case OutcomeRelease:
		return "release"
	}
	return fmt.Sprintf("OutcomeKind(%d)", int(k))
}

// DeadClass says why an item was given up on, for metrics and operators;
// Outcome.Reason says it in words.
type DeadClass string

// Dead-letter classes.
const (
	DeadExpired  DeadClass = "expired"  // event_time left Meta's 7-day window
	DeadRejected DeadClass = "rejected" // Meta refused the event itself
)

// Outcome is what happened to one claimed item.
type Outcome struct {
	ID      int64
	Kind    OutcomeKind
	RetryAt time.Time // OutcomeRetry
	Reason  string    // OutcomeRetry/OutcomeDead: readable, no PII, no token
	Class   DeadClass // OutcomeDead: why, as a label
	TraceID string
}

// HeldFill returns the payload a held event is released with (opened, as
// it will be sent), or the same bytes to keep it.
type HeldFill func(payload []byte) []byte

// PayloadSealer is a store that lets its callers seal payloads as Enqueue
// would, so that a NewEvent carries its payload sealed (Sealed) and no
// plaintext copy of it outlives its encoding: the pipeline encodes each
// event into one buffer and seals it at once, where it used to keep every
// payload of a request until the commit (9 % of the bytes the relay
// allocated at full load).
type PayloadSealer interface {
	SealPayload(plaintext []byte) []byte
}

// Outbox is the durable queue.
type Outbox interface {
	// Enqueue drops repeats of (site, event_name, event_id) seen within
	// DedupWindow and stores the rest; it returns only once the write is
	// durable. Concurrent calls share one transaction (group commit).
	Enqueue(ctx context.Context, evs []NewEvent) ([]EnqueueResult, error)
	// Claim leases up to limit due items of one site to owner until
	// now+lease. Items whose lease ran out are due again.
	Claim(ctx context.Context, siteKey, owner string, limit int, now time.Time, lease time.Duration) ([]Item, error)
	// Complete records outcomes of items claimed by owner.
	Complete(ctx context.Context, owner string, outs []Outcome, now time.Time) error
	// DueSites lists sites that have items due at now, and the earliest
	// next attempt among those that do not.
	DueSites(ctx context.Context, now time.Time) (due []string, next time.Time, err error)
	// Release gives back every claim of owner (shutdown).
	Release(ctx context.Context, owner string) error
	// ReleaseHeld makes held events of a visitor pending (consent granted)
	// or deletes them (denied); returns how many. On a grant, a non-nil
	// fill rewrites each payload as it is released (the grant's fbp/fbc).
	ReleaseHeld(ctx context.Context, siteKey, visitorID string, granted bool, fill HeldFill) (int, error)
	// Replay makes a dead item pending again.
	Replay(ctx context.Context, id int64, now time.Time) error
	Item(ctx context.Context, id int64) (*Item, error)
	// Items lists the newest items of a site (all sites when siteKey is ""),
	// optionally of one state, newest first.
	Items(ctx context.Context, siteKey, state string, limit int) ([]Item, error)
	// Depth counts pending+inflight items per site.
	Depth(ctx context.Context) (map[string]int, error)
	// Prune deletes delivered items older than before and expired dedup keys.
	Prune(ctx context.Context, deliveredBefore, seenBefore time.Time) (int, error)
}

// SandboxRecord is one payload the sandbox destination received.
type SandboxRecord struct {
	ID      int64
	SiteKey string
	At      time.Time
	Payload []byte // the request body as Meta would have received it (no token)
}

// Sandbox keeps what the sandbox destination received.
type Sandbox interface {
	RecordSandbox(ctx context.Context, siteKey string, at time.Time, payload []byte) error
	// SandboxRecords lists records after afterID, oldest first.
	SandboxRecords(ctx context.Context, siteKey string, afterID int64, limit int) ([]SandboxRecord, error)
}

// Store is everything an implementation provides.
type Store interface {
	Sites
	Outbox
	PayloadSealer
	Sandbox
	Leads
	Identities
	Forgetter
	Admin
	Ping(ctx context.Context) error
	Close() error
}

// Site defaults.
const (
	DefaultPartialLeadTimeout = 20 * time.Minute
	DefaultPartialLeadEvent   = "PartialLead"
	DefaultRetention          = 30 * 24 * time.Hour
	DefaultClickWindow        = 7 * 24 * time.Hour
)

// SiteDefaults fills the zero fields of s with their defaults.
func SiteDefaults(s *Site) {
	if s.Consent == "" {
		s.Consent = ConsentNone
	}
	if s.PartialLeadTimeout == 0 {
		s.PartialLeadTimeout = DefaultPartialLeadTimeout
	}
	if s.PartialLeadEvent == "" {
		s.PartialLeadEvent = DefaultPartialLeadEvent
	}
	if s.Retention == 0 {
		s.Retention = DefaultRetention
	}
	if s.Identity == "" {
		s.Identity = IdentityFull
	}
	if s.ClickWindow == 0 {
		s.ClickWindow = DefaultClickWindow
	}

	if s.Domains == nil {
		s.Domains = []string{}
	}
}
