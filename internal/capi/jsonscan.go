package capi

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/capirelay/capirelay/internal/jsonscan"
)

// Validation's view of JSON, on the shared jsonscan.Cursor. Validation
// runs on every event before sending and on every event the fake receives
// (>100k events/s in the dispatch benchmark); encoding/json's reflection
// and copies cost ~15 µs per event there, this costs a fraction and
// allocates nothing. It walks raw bytes and hands out sub-slices; only
// strings with escapes (rare in practice) are decoded into new ones.

var errSyntax = errors.New("invalid JSON")

// maxDepth bounds nesting so hostile input cannot recurse deeply.
const maxDepth = 512

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// checkJSON reports whether b is exactly one JSON value, surrounding space
// allowed.
func checkJSON(b []byte) bool {
	c := jsonscan.Cursor{B: b}
	_, ok := c.Raw(maxDepth)
	return ok && c.Done()
}

// eachMember calls fn for every member of the JSON object obj (which must
// start with '{'), with the key's name and the raw value. It stops early
// if fn returns false, and otherwise fails unless obj is one valid JSON
// object (surrounding space allowed). fn may have been called before an
// error is found.
func eachMember(obj []byte, fn func(key, val []byte) bool) error {
	c := jsonscan.Cursor{B: obj}
	stopped := false
	ok := c.Object(func(key []byte) bool {
		val, ok := c.Raw(maxDepth - 1)
		if ok && !fn(keyName(key), val) {
			stopped = true
			return false
		}
		return ok
	})
	switch {
	case stopped:
		return nil
	case !ok || !c.Done():
		return errSyntax
	}
	return nil
}

// eachElement calls fn for every element of the JSON array arr (which must
// start with '[').
func eachElement(arr []byte, fn func(i int, val []byte)) error {
	c := jsonscan.Cursor{B: arr}
	n := 0
	ok := c.Array(func() bool {
		val, ok := c.Raw(maxDepth - 1)
		if ok {
			fn(n, val)
			n++
		}
		return ok
	})
	if !ok || !c.Done() {
		return errSyntax
	}
	return nil
}

// strValue returns the content of the JSON string literal raw, decoding
// escapes only when there are some. ok is false if raw is not a string.
func strValue(raw []byte) (s []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	return keyName(raw[1 : len(raw)-1]), true
}

// keyName returns the contents of a valid string literal (as the cursor
// gives keys) with its escapes, if any, decoded; other bytes are kept as
// they are (invalid UTF-8 too, unlike encoding/json).
func keyName(inner []byte) []byte {
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner
	}
	s, _ := jsonscan.Unquote(inner)
	return s
}

// DecodeRequest parses a JSON request body {"data":[...],"access_token":...}
// without copying: the events in Data are sub-slices of body, so body must
// not be modified while they are in use. data may also be a JSON-encoded
// string holding the array, as form bodies carry it (§1.3). It fails if
// body is not a JSON object or data is not an array of values; it does not
// validate the events (see ValidateEvent).
func DecodeRequest(body []byte) (*Request, error) {
	b := body[jsonscan.Space(body, 0):]
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New("capi: request body is not a JSON object")
	}
	req := &Request{}
	var data []byte
	var badField string
	err := eachMember(b, func(key, val []byte) bool {
		var dst *string
		switch string(key) {
		case "data":
			data = val
			return true
		case "access_token":
			dst = &req.AccessToken
		case "test_event_code":
			dst = &req.TestEventCode
		case "partner_agent":
			dst = &req.PartnerAgent
		case "namespace_id":
			dst = &req.NamespaceID
		case "upload_id":
			dst = &req.UploadID
		case "upload_tag":
			dst = &req.UploadTag
		case "upload_source":
			dst = &req.UploadSource
		default:
			return true
		}
		if jsonKind(val) == "null" {
			return true
		}
		s, ok := strValue(val)
		if !ok {
			badField = string(key)
			return false
		}
		*dst = string(s)
		return true
	})
	switch {
	case err != nil:
		return nil, errors.New("capi: request body is not a JSON object")
	case badField != "":
		return nil, errors.New("capi: request field " + badField + " is not a string")
	}
	events, err := DecodeEvents(data)
	if err != nil {
		return nil, err
	}
	req.Data = events
	return req, nil
}

// DecodeEvents splits a JSON array of events (or a JSON string holding
// one) into its elements without copying them.
func DecodeEvents(data []byte) ([]json.RawMessage, error) {
	data = data[jsonscan.Space(data, 0):]
	if jsonKind(data) == "string" {
		s, ok := strValue(data)
		if !ok {
			return nil, errors.New("capi: data is not a valid JSON string")
		}
		data = s[jsonscan.Space(s, 0):]
		if !checkJSON(data) {
			return nil, errors.New("capi: data is not valid JSON")
		}
	}
	switch jsonKind(data) {
	case "", "null":
		return nil, errors.New("capi: data is required")
	case "array":
	default:
		return nil, errors.New("capi: data must be an array")
	}
	events := make([]json.RawMessage, 0, 64)
	if err := eachElement(data, func(_ int, val []byte) {
		events = append(events, json.RawMessage(val[:len(val):len(val)]))
	}); err != nil {
		return nil, errors.New("capi: data is not a valid JSON array")
	}
	return events, nil
}
