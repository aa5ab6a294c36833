package capi

import (
	"encoding/json"
	"errors"
)

// A small validating JSON scanner. Validation runs on every event before
// sending and on every event the fake receives (>100k events/s in the
// dispatch benchmark); encoding/json's reflection and copies cost ~15 µs per
// event there, this costs a fraction and allocates nothing. It walks raw
// bytes and hands out sub-slices; values with escapes are decoded with
// encoding/json (rare in practice).

var errSyntax = errors.New("invalid JSON")

// maxDepth bounds nesting so hostile input cannot recurse deeply.
const maxDepth = 512

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at b[i]
// (no leading space), or -1 if it is not valid JSON.
func skipValue(b []byte, i, depth int) int {
	if i >= len(b) || depth > maxDepth {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return -1
			}
			if i = skipString(b, i); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return -1
			}
			if i = skipValue(b, skipSpace(b, i+1), depth+1); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			if b[i] == '}' {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = skipSpace(b, i+1)
		}
	case c == '[':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return -1
			}
			if b[i] == ']' {
				return i + 1
			}
			if b[i] != ',' {
				return -1
			}
			i = skipSpace(b, i+1)
		}
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	case c == '-' || '0' <= c && c <= '9':
		return skipNumber(b, i)
	}
	return -1
}

func skipLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func skipNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i
}

func isHexDigit(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// skipString returns the index past the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 || !isHexDigit(b[i+1]) || !isHexDigit(b[i+2]) || !isHexDigit(b[i+3]) || !isHexDigit(b[i+4]) {
					return -1
				}
				i += 4
			default:
				return -1
			}
		case c < 0x20:
			return -1
		}
	}
	return -1
}

// checkJSON reports whether b is exactly one JSON value, surrounding space
// allowed.
func checkJSON(b []byte) bool {
	i := skipValue(b, skipSpace(b, 0), 0)
	return i >= 0 && skipSpace(b, i) == len(b)
}

// trailing fails unless b[i:] is only white space.
func trailing(b []byte, i int) error {
	if skipSpace(b, i) != len(b) {
		return errSyntax
	}
	return nil
}

// eachMember calls fn for every member of the JSON object obj (which must
// start with '{'), with the raw key (quotes included) and raw value. It
// stops early if fn returns false, and otherwise fails unless obj is one
// valid JSON object (surrounding space allowed). fn may have been called
// before an error is found.
func eachMember(obj []byte, fn func(key, val []byte) bool) error {
	i := skipSpace(obj, 1)
	if i < len(obj) && obj[i] == '}' {
		return trailing(obj, i+1)
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return errSyntax
		}
		k := i
		if i = skipString(obj, i); i < 0 {
			return errSyntax
		}
		key := obj[k:i]
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != ':' {
			return errSyntax
		}
		v := skipSpace(obj, i+1)
		if i = skipValue(obj, v, 1); i < 0 {
			return errSyntax
		}
		if !fn(key, obj[v:i]) {
			return nil
		}
		i = skipSpace(obj, i)
		if i >= len(obj) {
			return errSyntax
		}
		if obj[i] == '}' {
			return trailing(obj, i+1)
		}
		if obj[i] != ',' {
			return errSyntax
		}
		i = skipSpace(obj, i+1)
	}
}

// eachElement calls fn for every element of the JSON array arr (which must
// start with '[').
func eachElement(arr []byte, fn func(i int, val []byte)) error {
	i := skipSpace(arr, 1)
	if i < len(arr) && arr[i] == ']' {
		return trailing(arr, i+1)
	}
	for n := 0; ; n++ {
		v := i
		if i = skipValue(arr, v, 1); i < 0 {
			return errSyntax
		}
		fn(n, arr[v:i])
		i = skipSpace(arr, i)
		if i >= len(arr) {
			return errSyntax
		}
		if arr[i] == ']' {
			return trailing(arr, i+1)
		}
		if arr[i] != ',' {
			return errSyntax
		}
		i = skipSpace(arr, i+1)
	}
}

// strValue returns the content of the JSON string literal raw, decoding
// escapes only when there are some. ok is false if raw is not a string.
func strValue(raw []byte) (s []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' {
			var str string
			if json.Unmarshal(raw, &str) != nil {
				return nil, false
			}
			return []byte(str), true
		}
	}
	return inner, true
}

// keyIs reports whether the raw key (with quotes) equals name.
func keyIs(key []byte, name string) bool {
	if len(key) == len(name)+2 && string(key[1:len(key)-1]) == name {
		return true
	}
	if len(key) > 2 && containsByte(key, '\\') {
		s, ok := strValue(key)
		return ok && string(s) == name
	}
	return false
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// keyName returns the key without quotes, decoding escapes if needed.
func keyName(key []byte) []byte {
	s, _ := strValue(key)
	return s
}

// DecodeRequest parses a JSON request body {"data":[...],"access_token":...}
// without copying: the events in Data are sub-slices of body, so body must
// not be modified while they are in use. data may also be a JSON-encoded
// string holding the array, as form bodies carry it (§1.3). It fails if
// body is not a JSON object or data is not an array of values; it does not
// validate the events (see ValidateEvent).
func DecodeRequest(body []byte) (*Request, error) {
	b := body[skipSpace(body, 0):]
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New("capi: request body is not a JSON object")
	}
	req := &Request{}
	var data []byte
	var badField string
	err := eachMember(b, func(key, val []byte) bool {
		var dst *string
		switch string(keyName(key)) {
		case "data":
			data = val
			return true
		case "access_token":
			dst = &req.AccessToken
		case "test_event_code":
			dst = &req.TestEventCode
		case "partner_agent":
			dst = &req.PartnerAgent
		default:
			return true
		}
		if jsonKind(val) == "null" {
			return true
		}
		s, ok := strValue(val)
		if !ok {
			badField = string(keyName(key))
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
	data = data[skipSpace(data, 0):]
	if jsonKind(data) == "string" {
		s, ok := strValue(data)
		if !ok {
			return nil, errors.New("capi: data is not a valid JSON string")
		}
		data = s[skipSpace(s, 0):]
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
