package capi

import (
	"encoding/json"
	"net/url"

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
	NamespaceID   string            `json:"namespace_id,omitempty"`
	UploadID      string            `json:"upload_id,omitempty"`
	UploadTag     string            `json:"upload_tag,omitempty"`
	UploadSource  string            `json:"upload_source,omitempty"`
}

// RequestParams are the top-level parameters of a request besides data,
// the token and test_event_code (§1.3) that a caller's request carries and
// the relay forwards with its events.
type RequestParams struct {
	PartnerAgent, NamespaceID, UploadID, UploadTag, UploadSource string
}

// paramKeys name RequestParams' fields on the wire, in Encode's order.
func (p *RequestParams) fields() [5]struct {
	key string
	v   *string
} {
	return [5]struct {
		key string
		v   *string
	}{{"namespace_id", &p.NamespaceID}, {"partner_agent", &p.PartnerAgent}, {"upload_id", &p.UploadID},
		{"upload_source", &p.UploadSource}, {"upload_tag", &p.UploadTag}}
}

// Encode writes p as a query string (url.Values.Encode: sorted keys, empty
// ones left out), the form in which the store keeps it; "" when p is zero.
func (p RequestParams) Encode() string {
	v := url.Values{}
	for _, f := range p.fields() {
		if *f.v != "" {
			v.Set(f.key, *f.v)
		}
	}
	return v.Encode()
}

// ParseRequestParams reads what Encode wrote; anything unreadable is
// left out.
func ParseRequestParams(s string) RequestParams {
	var p RequestParams
	if s == "" {
		return p
	}
	v, _ := url.ParseQuery(s)
	for _, f := range p.fields() {
		*f.v = v.Get(f.key)
	}
	return p
}

// With returns req carrying p's parameters; p's partner_agent, when set,
// replaces req's (the caller's integration is named, not the relay).
func (p RequestParams) With(req *Request) *Request {
	if p.PartnerAgent != "" {
		req.PartnerAgent = p.PartnerAgent
	}
	req.NamespaceID, req.UploadID, req.UploadTag, req.UploadSource = p.NamespaceID, p.UploadID, p.UploadTag, p.UploadSource
	return req
}

// Response is a successful answer of the events edge (§1.6). Messages are
// warnings; FbtraceID should be logged.
type Response struct {
	EventsReceived int      `json:"events_received"`
	Messages       []string `json:"messages,omitempty"`
	FbtraceID      string   `json:"fbtrace_id,omitempty"`
}
