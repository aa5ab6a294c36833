package store

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/capirelay/capirelay/internal/normalize"
)

// EventKey is an event's dedup key: (site, event_name, event_id).
type EventKey struct{ Site, Name, ID string }

// ForgetSet is what identifies a forgotten person's events: the dedup keys
// of their outbox rows and the hashes their payloads carry. The sandbox
// keeps whole request bodies of many people, so a record is scrubbed event
// by event against it rather than deleted.
type ForgetSet struct {
	Keys   map[EventKey]bool
	Hashes [][]byte
}

// NewForgetSet returns an empty set holding hashes (empty ones skipped).
func NewForgetSet(hashes []string) *ForgetSet {
	s := &ForgetSet{Keys: map[EventKey]bool{}}
	s.AddHashes(hashes...)
	return s
}

// AddHashes adds user_data hashes that mark the person's events.
func (s *ForgetSet) AddHashes(hashes ...string) {
	for _, h := range hashes {
		if h != "" {
			s.Hashes = append(s.Hashes, []byte(h))
		}
	}
}

// AddVisitor adds the hash a browser visitor's events carry as external_id
// (the tag sends the visitor id there), so their events are found in
// payloads that outlived the outbox row naming the visitor.
func (s *ForgetSet) AddVisitor(visitorID string) {
	if h, err := normalize.Hash(normalize.ExternalID, visitorID, normalize.Options{}); err == nil {
		s.AddHashes(h)
	}
}

// Matches reports whether a plaintext payload carries one of the hashes.
func (s *ForgetSet) Matches(payload []byte) bool {
	for _, h := range s.Hashes {
		if bytes.Contains(payload, h) {
			return true
		}
	}
	return false
}

// ScrubSandbox removes the person's events from one sandbox record of
// site: those with a dedup key of the set or carrying one of its hashes.
// It returns the record to keep (nil: delete it, nothing else was in it)
// and how many events went. A record that is not a Graph request body is
// judged whole.
func (s *ForgetSet) ScrubSandbox(site string, payload []byte) (kept []byte, removed int, err error) {
	var body map[string]json.RawMessage
	var data []json.RawMessage
	if json.Unmarshal(payload, &body) != nil || json.Unmarshal(body["data"], &data) != nil {
		if s.Matches(payload) {
			return nil, 1, nil
		}
		return payload, 0, nil
	}
	out := data[:0]
	for _, raw := range data {
		var ev struct {
			Name string `json:"event_name"`
			ID   string `json:"event_id"`
		}
		_ = json.Unmarshal(raw, &ev) // an event without them is judged by its hashes
		if s.Keys[EventKey{site, ev.Name, ev.ID}] || s.Matches(raw) {
			removed++
			continue
		}
		out = append(out, raw)
	}
	switch {
	case removed == 0:
		return payload, 0, nil
	case len(out) == 0:
		return nil, removed, nil
	}
	if body["data"], err = json.Marshal(out); err != nil {
		return nil, 0, fmt.Errorf("sandbox record: %w", err)
	}
	if kept, err = json.Marshal(body); err != nil {
		return nil, 0, fmt.Errorf("sandbox record: %w", err)
	}
	return kept, removed, nil
}
