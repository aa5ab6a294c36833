package event

import (
	"encoding/json"

	"github.com/capirelay/capirelay/internal/jsonscan"
)

// Envelope is the body of a Graph API events request besides its events:
// data, the list of server events, and the top-level parameters (spec §1.3).
type Envelope struct {
	Data          json.RawMessage // the raw data value
	TestEventCode string
	AccessToken   string
	PartnerAgent  string
	NamespaceID   string
	UploadID      string
	UploadTag     string
	UploadSource  string
	// Taken and not used (metarules.RequestFields): Meta's Node SDK puts
	// the node id (the pixel) and, with an app secret, appsecret_proof in
	// every body; fields, platforms and progress are on Graph's edge too.
	ID             string
	AppsecretProof string
	Fields         json.RawMessage
	Platforms      json.RawMessage
	Progress       json.RawMessage
}

// DecodeEnvelope is a fast path for reading a JSON request body. It gives
// what encoding/json gives when it decodes body strictly (unknown fields
// refused, nothing but white space after the object) into a struct of these
// fields tagged data, test_event_code, access_token, partner_agent,
// namespace_id, upload_id, upload_tag, upload_source, id, appsecret_proof,
// fields, platforms and progress. For any input it
// cannot read exactly so (any error, a duplicate key, a key with escapes or
// another case) it returns false, and the caller uses encoding/json.
// Data is checked as JSON but not copied: it is a sub-slice of body.
func DecodeEnvelope(body []byte) (Envelope, bool) {
	var env Envelope
	d := fastDecoder{Cursor: jsonscan.Cursor{B: body}}
	if _, ok := d.envelope(&env, func() bool { _, ok := d.skip(1); return ok }); !ok {
		return Envelope{}, false
	}
	return env, true
}

// envelope reads the request object that is the whole of d.B into env,
// data's value with readData (called at its first byte, it leaves d.I past
// the value); it reports whether data was there and whether the body was
// read exactly (each key once, no other key, nothing after the object).
func (d *fastDecoder) envelope(env *Envelope, readData func() bool) (hasData, ok bool) {
	if d.Peek() != '{' {
		return false, false
	}
	var seen uint16
	ok = d.Object(func(key []byte) bool {
		var bit uint16
		var dst *string
		var raw *json.RawMessage
		switch string(key) {
		case "data":
			if seen&1 != 0 {
				return false
			}
			seen |= 1
			start := d.I
			if !readData() {
				return false
			}
			env.Data = d.B[start:d.I:d.I]
			return true
		case "test_event_code":
			bit, dst = 1<<1, &env.TestEventCode
		case "access_token":
			bit, dst = 1<<2, &env.AccessToken
		case "partner_agent":
			bit, dst = 1<<3, &env.PartnerAgent
		case "namespace_id":
			bit, dst = 1<<4, &env.NamespaceID
		case "upload_id":
			bit, dst = 1<<5, &env.UploadID
		case "upload_tag":
			bit, dst = 1<<6, &env.UploadTag
		case "upload_source":
			bit, dst = 1<<7, &env.UploadSource
		case "id":
			bit, dst = 1<<8, &env.ID
		case "appsecret_proof":
			bit, dst = 1<<9, &env.AppsecretProof
		case "fields":
			bit, raw = 1<<10, &env.Fields
		case "platforms":
			bit, raw = 1<<11, &env.Platforms
		case "progress":
			bit, raw = 1<<12, &env.Progress
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		if raw != nil {
			v, ok := d.raw()
			*raw = v
			return ok
		}
		s, ok := d.stringField(nil)
		*dst = s
		return ok
	})
	if !ok || d.Peek() != 0 || d.I != len(d.B) {
		return false, false
	}
	return seen&1 != 0, true
}
