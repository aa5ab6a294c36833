package store

import (
	"crypto/rand"
	"encoding/hex"
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
