package store

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/capirelay/capirelay/internal/secret"
)

// Additional data that binds each sealed value to its place, so a sealed
// value cannot be moved to another row or column. Both implementations use
// these, which is what makes a database portable between them (given the
// key).
const (
	PayloadAD = "outbox"  // outbox payloads
	SandboxAD = "sandbox" // sandbox records
)

// TokenAD binds a site's access token to the site.
func TokenAD(siteKey string) string { return "site-token:" + siteKey }

// LeadAD binds a lead's raw values to its session.
func LeadAD(sessionID string) string { return "lead:" + sessionID }

// WebhookSecretAD binds a site's webhook secret to the site.
func WebhookSecretAD(siteKey string) string { return "webhook-secret:" + siteKey }

// IdentityAD binds an identity's browser identifiers to the visitor.
func IdentityAD(siteKey, visitorID string) string {
	return "identity:" + siteKey + ":" + visitorID
}

// NewSessionID returns a random lead session id (32 hex characters).
func NewSessionID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// device is the sealed part of an identity: its browser identifiers.
type device struct {
	Fbp string `json:"fbp,omitempty"`
	Fbc string `json:"fbc,omitempty"`
	IP  string `json:"ip,omitempty"`
	UA  string `json:"ua,omitempty"`
}

// SealDevice seals id's browser identifiers (fbp, fbc, IP, user agent) in
// the one format both stores read; nil when it has none.
func SealDevice(box *secret.Box, id *Identity) []byte {
	d := device{Fbp: id.Fbp, Fbc: id.Fbc, IP: id.IP, UA: id.UA}
	if d == (device{}) {
		return nil
	}
	pt, _ := json.Marshal(d)
	return box.Seal(pt, []byte(IdentityAD(id.SiteKey, id.VisitorID)))
}

// OpenDevice fills id's browser identifiers from what SealDevice made.
// id.SiteKey and id.VisitorID must be set.
func OpenDevice(box *secret.Box, sealed []byte, id *Identity) error {
	if len(sealed) == 0 {
		return nil
	}
	pt, err := box.Open(sealed, []byte(IdentityAD(id.SiteKey, id.VisitorID)))
	if err != nil {
		return fmt.Errorf("identity device: %w", err)
	}
	var d device
	if err := json.Unmarshal(pt, &d); err != nil {
		return fmt.Errorf("identity device: %w", err)
	}
	id.Fbp, id.Fbc, id.IP, id.UA = d.Fbp, d.Fbc, d.IP, d.UA
	return nil
}

// Refill is a payload to write back: a held event's, sealed again.
type Refill struct {
	ID      int64
	Payload []byte
}

// Rows is what both stores' query results offer (*sql.Rows, pgx.Rows).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// RefillPayloads reads (id, sealed payload) rows, applies fill to each
// payload and returns those it changed, sealed again. The caller closes
// rows.
func RefillPayloads(box *secret.Box, rows Rows, fill HeldFill) ([]Refill, error) {
	var out []Refill
	for rows.Next() {
		var id int64
		var sealed []byte
		if err := rows.Scan(&id, &sealed); err != nil {
			return nil, err
		}
		pt, err := box.Open(sealed, []byte(PayloadAD))
		if err != nil {
			return nil, fmt.Errorf("outbox item %d: %w", id, err)
		}
		if np := fill(pt); !bytes.Equal(np, pt) {
			out = append(out, Refill{id, box.Seal(np, []byte(PayloadAD))})
		}
	}
	return out, rows.Err()
}
