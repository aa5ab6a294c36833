package collect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// browserBody is what the tag posts (text/plain JSON, so no preflight).
type browserBody struct {
	V         int            `json:"v"`
	Site      string         `json:"site"` // when not in the query string
	VisitorID string         `json:"vid"`
	Fbp       string         `json:"fbp"`
	Fbc       string         `json:"fbc"`
	Consent   string         `json:"consent"` // "", "granted" or "denied"
	Lang      string         `json:"lang"`    // navigator.language
	URL       string         `json:"url"`     // page URL when events lack one
	Events    []browserEvent `json:"events"`
}

type browserEvent struct {
	Type   string            `json:"type"` // "event" (default), "capture" or "consent"
	Name   string            `json:"name"`
	ID     string            `json:"id"`
	URL    string            `json:"url"`
	Ref    string            `json:"ref"`
	Data   json.RawMessage   `json:"data"` // custom_data
	User   map[string]string `json:"user"` // identify and form fields
	Form   string            `json:"form"`
	Submit bool              `json:"submit"`
	Fields map[string]string `json:"fields"` // capture
	State  string            `json:"state"`  // consent
	Prev   string            `json:"prev"`   // consent: the page's visitor id before
}

// userKeys are the user_data keys a browser may send, with the aliases a
// hand-written integration might use.
var userKeys = map[string]string{
	"em": "em", "ph": "ph", "fn": "fn", "ln": "ln", "db": "db", "ge": "ge", "ct": "ct", "st": "st",
	"zp": "zp", "country": "country", "external_id": "external_id",
	"email": "em", "phone": "ph", "first_name": "fn", "last_name": "ln", "dob": "db", "gender": "ge",
	"city": "ct", "state": "st", "zip": "zp",
}

// captureKeys are the fields a form capture may carry.
var captureKeys = map[string]bool{"em": true, "ph": true, "fn": true, "ln": true, "ct": true, "st": true, "zp": true, "country": true, "db": true}

const maxValueLen = 1000

// readRequest finds the request's site and reads its body into buf. The
// site named in the query string is checked before the body is read, so
// a stranger is refused early; else the body names it, and the page's
// Origin is still judged before anything the body does wrong is told
// (namedSite). CORS admits the page's origin once it is known to be one
// of the site's.
func (b *Browser) readRequest(w http.ResponseWriter, r *http.Request, buf *[]byte) (*store.Site, *browserBody, error) {
	var (
		site   *store.Site
		origin string
		err    error
	)
	if key := queryParam(r.URL.RawQuery, "site"); key != "" {
		if site, origin, err = b.site(r, key); err != nil {
			return nil, nil, err
		}
		cors(w, origin)
	}
	body, err := readBrowserBody(w, r, buf)
	if site != nil {
		return site, body, err
	}
	var key string
	if err == nil {
		key = body.Site
	} else if key = namedSite(*buf); key == "" {
		// No site to judge the Origin by: only its absence.
		if _, host := requestOrigin(r); host == "" {
			return nil, nil, errNoOrigin
		}
		return nil, nil, err
	}
	site, origin, serr := b.site(r, key)
	if serr != nil {
		return nil, nil, serr
	}
	cors(w, origin)
	if err != nil {
		return nil, nil, err
	}
	return site, body, nil
}

// readBrowserBody reads r's body into buf and decodes it; buf keeps what
// was read also when that is refused.
func readBrowserBody(w http.ResponseWriter, r *http.Request, buf *[]byte) (*browserBody, error) {
	if r.ContentLength > MaxBrowserBody {
		*buf = (*buf)[:0]
		return nil, errBrowserTooLarge
	}
	raw, err := readBody(w, r, (*buf)[:0])
	*buf = raw
	if err != nil {
		return nil, err
	}
	// The tag sends UTF-8 (JSON.stringify escapes lone surrogates), so a
	// body that is not is refused, not repaired: bytes kept raw in
	// custom_data would make Meta's request invalid JSON.
	if err := event.CheckUTF8(raw, ""); err != nil {
		return nil, fieldHTTPError(err)
	}
	return parseBrowserBody(r, raw)
}

// namedSite is the site key of a body that could not be decoded, when it
// can still be read: the refusal of a page that is not the site's is about
// its Origin, not about the body (a stranger learns nothing of the rules).
func namedSite(raw []byte) string {
	var named struct {
		Site string `json:"site"`
	}
	_ = json.Unmarshal(raw, &named) // "" when it cannot be read
	return named.Site
}

// bodyBufs holds the buffers /e bodies are read into: nothing decoded from
// a body refers to its bytes (strings and custom data are copies).
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledBody: a buffer grown beyond this by a large body is dropped,
// not kept.
const maxPooledBody = 16 << 10

func putBodyBuf(b *[]byte) {
	if cap(*b) <= maxPooledBody {
		*b = (*b)[:0]
		bodyBufs.Put(b)
	}
}

// readBody reads r's body into b, up to MaxBrowserBody. A body of known
// length (already checked against the limit) is read as it is, one byte
// past the limit at most: net/http delivers no more than Content-Length.
// Any other body (chunked) is read through http.MaxBytesReader.
func readBody(w http.ResponseWriter, r *http.Request, b []byte) ([]byte, error) {
	var err error
	if r.ContentLength >= 0 && r.ContentLength <= MaxBrowserBody {
		if int64(cap(b)) <= r.ContentLength {
			b = make([]byte, 0, r.ContentLength+1)
		}
		b, err = readAll(r.Body, b, MaxBrowserBody+1)
		if err == nil && len(b) > MaxBrowserBody {
			return b, errBrowserTooLarge
		}
	} else {
		b, err = readAll(http.MaxBytesReader(w, r.Body, MaxBrowserBody), b, -1)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return b, errBrowserTooLarge
		}
		return b, &httpError{Kind: errBadRequest, Message: "cannot read request body"}
	}
	return b, nil
}

// readAll is io.ReadAll appending to b; with max >= 0 it stops once b
// holds max bytes.
func readAll(r io.Reader, b []byte, max int) ([]byte, error) {
	for max < 0 || len(b) < max {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		end := cap(b)
		if max >= 0 {
			end = min(end, max)
		}
		n, err := r.Read(b[len(b):end])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
	}
	return b, nil
}

// parseBrowserBody decodes the body: JSON sent as text/plain (sendBeacon)
// or application/json. Unknown fields are ignored, so a cached tag newer or
// older than the relay keeps working.
func parseBrowserBody(r *http.Request, raw []byte) (*browserBody, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !knownBodyType(ct) {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "text/plain" && mt != "application/json") {
			return nil, &httpError{Kind: errMediaType, Field: "Content-Type", Message: "must be text/plain or application/json"}
		}
	}
	if body, ok := fastBrowserBody(raw); ok {
		return body, nil
	}
	return slowBrowserBody(raw)
}

// knownBodyType reports whether ct is one of the Content-Types browsers
// send with the tag's body, spelled exactly as they do; each is a media
// type mime.ParseMediaType accepts as text/plain or application/json.
func knownBodyType(ct string) bool {
	for _, k := range knownBodyTypes {
		if ct == k {
			return true
		}
	}
	return false
}

var knownBodyTypes = []string{"text/plain;charset=UTF-8", "text/plain; charset=UTF-8", "text/plain;charset=utf-8",
	"text/plain; charset=utf-8", "text/plain", "application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8"}

// slowBrowserBody decodes the body with encoding/json, and describes what
// is wrong with it.
func slowBrowserBody(raw []byte) (*browserBody, error) {
	var body browserBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&body); err != nil {
		var fe *event.FieldError
		if errors.As(describeBrowserBody(raw, err), &fe) {
			return nil, &httpError{Kind: errBadRequest, Field: fe.Field, Message: fe.Message}
		}
		return nil, &httpError{Kind: errBadRequest, Message: "malformed JSON"}
	}
	if dec.More() {
		return nil, &httpError{Kind: errBadRequest, Message: "malformed JSON: trailing data after the object"}
	}
	return &body, nil
}

// describeBrowserBody names the field of a body encoding/json refused.
// Its paths have no array indices ("events.name"), so a wrong type inside
// an event is looked for again event by event, to name the one at fault
// as every other refusal does ("events[0].name").
func describeBrowserBody(raw []byte, err error) error {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && strings.HasPrefix(ute.Field, "events.") {
		var all struct {
			Events []json.RawMessage `json:"events"`
		}
		if json.Unmarshal(raw, &all) == nil {
			for i, raw := range all.Events {
				var e browserEvent
				if err := json.Unmarshal(raw, &e); err != nil {
					return event.DescribeJSONError(err, eventPath(i))
				}
			}
		}
	}
	return event.DescribeJSONError(err, "")
}

// validateBrowserBody refuses a request with a bad field before anything is
// stored.
func validateBrowserBody(body *browserBody) error {
	bad := func(field, msg string) error {
		return &httpError{Kind: errBadRequest, Field: field, Message: msg}
	}
	switch body.Consent {
	case pipeline.ConsentUnknown, pipeline.ConsentGranted, pipeline.ConsentDenied:
	default:
		return bad("consent", `must be "granted", "denied" or empty`)
	}
	if len(body.Events) == 0 {
		return bad("events", "is empty")
	}
	if len(body.Events) > maxBrowserEvents {
		return bad("events", fmt.Sprintf("has %d events; at most %d per request", len(body.Events), maxBrowserEvents))
	}
	for i := range body.Events {
		e := &body.Events[i]
		p := "events[" + strconv.Itoa(i) + "]."
		if len(e.Form) > 200 {
			return bad(p+"form", "is longer than 200 characters")
		}
		switch e.Type {
		case "", "event":
			if strings.TrimSpace(e.Name) == "" {
				return bad(p+"name", "is required")
			}
			if len(e.Data) > 0 && !bytes.Equal(bytes.TrimSpace(e.Data), []byte("null")) && bytes.TrimSpace(e.Data)[0] != '{' {
				return bad(p+"data", "must be an object (custom_data)")
			}
			for k, val := range e.User {
				if userKeys[k] == "" {
					return bad(p+"user."+k, "is not a user_data key (em, ph, fn, ln, db, ge, ct, st, zp, country, external_id)")
				}
				if len(val) > maxValueLen {
					return bad(p+"user."+k, "is too long")
				}
			}
		case "capture":
			for k, val := range e.Fields {
				if !captureKeys[userKeys[k]] {
					return bad(p+"fields."+k, "is not a capturable field (em, ph, fn, ln, ct, st, zp, country, db)")
				}
				if len(val) > maxValueLen {
					return bad(p+"fields."+k, "is too long")
				}
			}
		case "consent":
			if e.State != pipeline.ConsentGranted && e.State != pipeline.ConsentDenied {
				return bad(p+"state", `must be "granted" or "denied"`)
			}
		default:
			return bad(p+"type", `must be "event", "capture" or "consent"`)
		}
	}
	return nil
}
