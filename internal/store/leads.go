package store

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Lead states. A session is open while the visitor fills a form; a submit
// closes it as a full lead (submitted); the sweeper turns an open session
// whose due time passed into a partial lead; a partial lead whose visitor
// submits later is converted.
const (
	LeadOpen      = "open"
	LeadSubmitted = "submitted"
	LeadPartial   = "partial"
	LeadConverted = "converted"
)

// Forward states of a partial lead's CAPI event.
const (
	ForwardNone     = ""         // not a partial lead (yet)
	ForwardPending  = "pending"  // to be decided and submitted by the sweeper
	ForwardSent     = "sent"     // accepted by the pipeline (or a duplicate)
	ForwardSkipped  = "skipped"  // forwarding off, no consent, or converted
	ForwardRejected = "rejected" // the pipeline refused the event
)

// Webhook job states.
const (
	WebhookPending   = "pending"
	WebhookDelivered = "delivered"
	WebhookDead      = "dead"
	WebhookSkipped   = "skipped" // no webhook URL, or the lead converted first
)

// LeadData is what a visitor typed and the context of the page. It is
// sealed at rest as a whole.
type LeadData struct {
	Fields  map[string]string `json:"fields"` // em ph fn ln ct st zp country db: raw values
	PageURL string            `json:"page_url,omitempty"`
	Fbp     string            `json:"fbp,omitempty"`
	Fbc     string            `json:"fbc,omitempty"`
	IP      string            `json:"ip,omitempty"`
	UA      string            `json:"ua,omitempty"`
}

// Lead is one lead session of a (site, visitor, form), from the first field
// captured to a submit or to becoming a partial lead.
type Lead struct {
	ID        int64
	SessionID string // random; the partial lead's event_id derives from it
	SiteKey   string
	VisitorID string
	FormID    string
	State     string // LeadOpen, LeadSubmitted, LeadPartial, LeadConverted
	Data      LeadData
	Consent   string // the visitor's consent state at the last capture
	// EmailHash and PhoneHash are the SHA-256 user_data values of the
	// captured em and ph ("" when absent or invalid); erasure finds a
	// person's leads by them without opening every sealed row.
	EmailHash string
	PhoneHash string

	StartedAt    time.Time
	UpdatedAt    time.Time // last capture
	DueAt        time.Time // open sessions: when it becomes partial
	PartialAt    time.Time
	ClosedAt     time.Time // submitted or converted
	ExpiresAt    time.Time // purged from then on
	ForwardState string
	ForwardError string
}

// LeadFilter selects leads for listing and export.
type LeadFilter struct {
	SiteKey string   // required
	States  []string // empty means every state
	Since   time.Time
	Limit   int // 0 means no limit
}

// WebhookJob is one durable webhook delivery of a partial lead.
type WebhookJob struct {
	ID          int64
	LeadID      int64
	SiteKey     string
	State       string
	Attempts    int // including the current claim
	NextAttempt time.Time
	LastError   string
	CreatedAt   time.Time
	Lead        *Lead // filled by ClaimWebhooks
}

// WebhookAttempt is the outcome of one delivery attempt, kept in the
// delivery log. Error never contains personal data.
type WebhookAttempt struct {
	JobID    int64
	Attempt  int
	At       time.Time
	Status   int // HTTP status, 0 when no answer
	Error    string
	Duration time.Duration
	// State is the job's state afterwards; when WebhookPending, the job is
	// tried again at RetryAt.
	State   string
	RetryAt time.Time
}

// Leads keeps lead sessions, partial leads and their webhook jobs. Methods
// are safe for concurrent use, also from several processes.
type Leads interface {
	// UpsertLead runs fn on the active (open or partial) lead of (site,
	// visitor, form) and writes the result back, in one transaction. When
	// there is none, fn gets a Lead with ID 0 (and SessionID set) and the
	// result is inserted. fn may run more than once and must not have side
	// effects; an error from it aborts without writing.
	UpsertLead(ctx context.Context, siteKey, visitorID, formID string, fn func(*Lead) error) (*Lead, error)
	// ClaimDueLeads turns up to limit open leads due at now into partial
	// leads, each with a pending forward and a pending webhook job, in one
	// transaction: a lead becomes partial exactly once.
	ClaimDueLeads(ctx context.Context, now time.Time, limit int) ([]Lead, error)
	// ClaimLeadForwards leases up to limit partial leads whose forward is
	// pending until now+lease.
	ClaimLeadForwards(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Lead, error)
	// CompleteLeadForward records the forward outcome (ForwardSent,
	// ForwardSkipped or ForwardRejected with a reason free of personal data).
	CompleteLeadForward(ctx context.Context, id int64, state, reason string) error
	// ClaimWebhooks leases up to limit due pending webhook jobs until
	// now+lease, counting the attempt, with their lead.
	ClaimWebhooks(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]WebhookJob, error)
	// CompleteWebhook logs one attempt and sets the job's state.
	CompleteWebhook(ctx context.Context, a WebhookAttempt) error
	// WebhookAttempts lists the delivery log of a site, newest first.
	WebhookAttempts(ctx context.Context, siteKey string, limit int) ([]WebhookAttempt, error)
	// WebhookSecret returns the site's webhook signing secret, storing
	// newSecret first when the site has none.
	WebhookSecret(ctx context.Context, siteKey, newSecret string) (string, error)
	// Lead returns one lead; ErrNotFound when absent.
	Lead(ctx context.Context, id int64) (*Lead, error)
	// ListLeads lists leads of a site, oldest activity first.
	ListLeads(ctx context.Context, f LeadFilter) ([]Lead, error)
	// PurgeLeads deletes leads (with their webhook jobs and log) that
	// expired at now.
	PurgeLeads(ctx context.Context, now time.Time) (int, error)
}

// Identity kinds that are indexed for lookups (hash → visitor).
const (
	KeyEmail      = "em"
	KeyPhone      = "ph"
	KeyExternalID = "external_id"
)

// IdentityKeys are the hashable user_data keys an identity keeps.
var IdentityKeys = []string{"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id"}

// IndexedKeys are the identity keys with a hash → visitor index: the
// strong keys. A phone links no one, so it has no index row (each costs a
// page write per new customer); forget finds a phone in the identities.
var IndexedKeys = []string{KeyEmail, KeyExternalID}

// ForgetKeys are the identity keys whose hashes erasure looks for in unsent
// payloads once it has found a person.
var ForgetKeys = []string{KeyEmail, KeyPhone, KeyExternalID}

// PseudoPrefix prefixes the visitor id of a person known only from server
// events: PseudoPrefix + the hash of their external_id.
const PseudoPrefix = "ext:"

// EmailPseudoPrefix prefixes the visitor id of a person known only from
// server events that named no external_id: EmailPseudoPrefix + the hash of
// their em. Unlike PseudoPrefix's, its em keeps its index row: the record is
// found as any other owner of the email.
const EmailPseudoPrefix = "em:"

// IndexRows calls fn for each indexed hash of id: those of IndexedKeys,
// but for the external_id that names a pseudo visitor (PseudoPrefix + it),
// which the visitor id itself finds, so a person known only from server
// events costs one index row fewer.
func IndexRows(id *Identity, fn func(kind, hash string)) {
	for _, k := range IndexedKeys {
		for _, h := range id.Hashes[k] {
			if k == KeyExternalID && len(id.VisitorID) == len(PseudoPrefix)+len(h) &&
				strings.HasPrefix(id.VisitorID, PseudoPrefix) && id.VisitorID[len(PseudoPrefix):] == h {
				continue
			}
			fn(k, h)
		}
	}
}

// StrongKeys are the identity keys that, besides the tag's visitor id, link
// two events to one person. A phone, a name, a city or a zip code is shared
// by too many people (a family, a shop's counter) to link on.
var StrongKeys = []string{KeyEmail, KeyExternalID}

// Conflicts reports whether vals, what an event carries for a strong key,
// holds a value that held, a record's values for that key, lacks while
// held is not empty: the record is then someone else's, or mixes people.
func Conflicts(held, vals []string) bool {
	if len(held) == 0 {
		return false
	}
	for _, v := range vals {
		if !slices.Contains(held, v) {
			return true
		}
	}
	return false
}

// ConflictsWith reports whether o carries a value of a strong key that id
// holds other values for (see Conflicts).
func (id *Identity) ConflictsWith(o *Identity) bool {
	for _, k := range StrongKeys {
		if Conflicts(id.Hashes[k], o.Hashes[k]) {
			return true
		}
	}
	return false
}

// MaxIdentityValues bounds the hashes kept per key of one identity.
const MaxIdentityValues = 5

// Identity is what is known about one visitor of a site: SHA-256 hashes of
// the match keys (never raw values) and the latest browser identifiers.
// The browser identifiers are sealed at rest.
type Identity struct {
	SiteKey   string
	VisitorID string
	Hashes    map[string][]string // key (IdentityKeys) → 64-hex hashes, newest first
	Fbp       string
	Fbc       string
	IP        string
	UA        string
	CreatedAt time.Time
	UpdatedAt time.Time
	// LikelyNew is a hint to LearnIdentities: the caller believes no
	// identity exists yet, so the store may try a plain insert first. A
	// wrong hint costs time, never data.
	LikelyNew bool
}

// Merge adds what o knows to id: o's hashes go first (newest), each key
// keeps at most MaxIdentityValues; o's non-empty browser identifiers replace
// id's. When o conflicts with id (ConflictsWith) it is someone else's, and
// nothing is merged: a record never mixes two people. It reports whether id
// changed.
func (id *Identity) Merge(o *Identity) bool {
	if id.ConflictsWith(o) {
		return false
	}
	changed := false
	// The merged lists share one allocation: learning merges every new
	// customer's dozen keys, and a slice each was most of Merge's cost.
	n := 0
	for _, k := range IdentityKeys {
		if m := len(o.Hashes[k]); m > 0 {
			n += min(m+len(id.Hashes[k]), MaxIdentityValues)
		}
	}
	var buf []string
	for _, k := range IdentityKeys {
		add := o.Hashes[k]
		if len(add) == 0 {
			continue
		}
		if buf == nil {
			buf = make([]string, 0, n)
		}
		cur := id.Hashes[k]
		lim := min(len(add)+len(cur), MaxIdentityValues)
		next := buf[len(buf) : len(buf) : len(buf)+lim]
		for _, l := range [2][]string{add, cur} {
			for _, h := range l {
				if len(next) < lim && !slices.Contains(next, h) {
					next = append(next, h)
				}
			}
		}
		if !slices.Equal(next, cur) {
			if id.Hashes == nil {
				id.Hashes = map[string][]string{}
			}
			id.Hashes[k] = slices.Clip(next) // an append must not reach the next key's
			buf = buf[:len(buf)+len(next)]
			changed = true
		}
	}
	set := func(dst *string, v string) {
		if v != "" && *dst != v {
			*dst, changed = v, true
		}
	}
	set(&id.Fbp, o.Fbp)
	set(&id.Fbc, o.Fbc)
	set(&id.IP, o.IP)
	set(&id.UA, o.UA)
	return changed
}

// Identities keeps identities for stitching. Methods are safe for
// concurrent use.
type Identities interface {
	// Identity returns the identity of a visitor; ErrNotFound when none.
	Identity(ctx context.Context, siteKey, visitorID string) (*Identity, error)
	// VisitorsByHash lists the visitors whose identity holds hash under an
	// indexed key (KeyEmail, KeyExternalID), most recently
	// updated first.
	VisitorsByHash(ctx context.Context, siteKey, key, hash string) ([]string, error)
	// LearnIdentity merges id into the stored identity of (id.SiteKey,
	// id.VisitorID) (see Identity.Merge), creating it when absent, and
	// indexes its hashes.
	LearnIdentity(ctx context.Context, id *Identity) error
	// LearnIdentities does LearnIdentity for each of ids in one
	// transaction. Identity data is enrichment: implementations may commit
	// it without waiting for the disk (a power cut may lose the last
	// moments of learning, never an event).
	LearnIdentities(ctx context.Context, ids []*Identity) error
	// KnownKeys calls fn for every visitor (kind "visitor", value the
	// visitor id) and every indexed hash (kind KeyEmail,
	// KeyExternalID) changed at or after since, and returns the latest
	// change time seen (since when none).
	KnownKeys(ctx context.Context, since time.Time, fn func(siteKey, kind, value string)) (time.Time, error)
}

// ForgetRequest names a person to erase. Hashes are SHA-256 user_data
// values of em or ph; VisitorIDs name browsers directly.
type ForgetRequest struct {
	SiteKey    string // "" means every site
	Hashes     []string
	VisitorIDs []string
}

// ForgetResult counts what was erased.
type ForgetResult struct {
	Visitors     int // distinct visitors the request resolved to
	Identities   int
	IdentityKeys int
	Leads        int // submitted, partial and converted leads
	Sessions     int // open lead sessions
	WebhookJobs  int
	OutboxEvents int // events in every state (pending, in flight, held, delivered, dead) and their payloads
	DedupKeys    int // dedup keys (site, event_name, event_id) of those events
	// SandboxEvents counts events removed from sandbox records (a record
	// holds one request body; it is rewritten without them, or deleted
	// when nothing else was in it).
	SandboxEvents int
}

// Forgetter erases a person.
type Forgetter interface {
	// Forget resolves the request to visitors (given ones, those whose
	// identity or leads hold one of the hashes) and deletes their
	// identities, leads, lead sessions, webhook jobs, outbox events in every
	// state (by visitor id, or whose payload carries one of their hashes),
	// those events' dedup keys and their events in sandbox records, then
	// makes sure no deleted bytes remain in the database files.
	Forget(ctx context.Context, req ForgetRequest) (ForgetResult, error)
}
