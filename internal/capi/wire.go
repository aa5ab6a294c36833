package capi

import (
	"encoding/json"

	"github.com/capirelay/capirelay/internal/metarules"
)

// MaxEventsPerRequest is the most events Meta accepts in one request (§1.5).
const MaxEventsPerRequest = metarules.MaxEventsPerRequest

// Request is the body of POST /{version}/{pixel}/events (§1.3). Data holds
// already-encoded server events (§2); Client.Send copies them into the body
// verbatim.
type Request struct {
	Data          []json.RawMessage `json:"data"`
	AccessToken   string            `json:"access_token,omitempty"`
	TestEventCode string            `json:"test_event_code,omitempty"`
	PartnerAgent  string            `json:"partner_agent,omitempty"`
}

// Response is a successful answer of the events edge (§1.6). Messages are
// warnings; FbtraceID should be logged.
type Response struct {
	EventsReceived int      `json:"events_received"`
	Messages       []string `json:"messages,omitempty"`
	FbtraceID      string   `json:"fbtrace_id,omitempty"`
}
