package collect

import (
	"encoding/json"
	"strings"

	"github.com/capirelay/capirelay/internal/jsonscan"
)

// fastBrowserBody decodes the bodies the tag sends (t.js flush: known keys
// in any order, plain strings, small integers) without encoding/json. It
// reports false on anything else (escapes in strings or keys, unknown or
// repeated keys, nulls, wrong types, deep nesting, bad syntax, trailing
// data), and the caller then decodes with encoding/json: every error, and
// every body the fast path is not sure about, is decoded and described by
// the same code as before. Whenever it reports true, the result equals
// what encoding/json gives (FuzzFastBrowserBody checks it).
func fastBrowserBody(raw []byte) (*browserBody, bool) {
	a := new(bodyAlloc)
	p := bodyParser{Cursor: jsonscan.Cursor{B: raw}, first: &a.first}
	if len(raw) <= maxSharedBody {
		p.S = string(raw)
	}
	body := &a.body
	if !p.Object(func(key []byte) bool { return p.bodyField(body, key) }) || !p.Done() {
		return nil, false
	}
	return body, true
}

// bodyAlloc is a body with room for its first event: one allocation for
// the tag's usual beacon, not two.
type bodyAlloc struct {
	body  browserBody
	first [1]browserEvent
}

// bodyParser reads one body with the shared cursor. Its S, when set, is
// B as one string whose substrings are the fields; it is "" when B is
// larger than maxSharedBody: then each field is its own copy.
type bodyParser struct {
	jsonscan.Cursor
	first *[1]browserEvent // the first event's room
	// seen guards against repeated keys of the object being read: the
	// fields of one object are numbered, and a repeat is left to
	// encoding/json (whose merging rules are not worth copying).
	seen uint32
}

// once marks field bit n of the current object as seen; false if it was.
func (p *bodyParser) once(n uint) bool {
	if p.seen&(1<<n) != 0 {
		return false
	}
	p.seen |= 1 << n
	return true
}

func (p *bodyParser) bodyField(b *browserBody, key []byte) bool {
	switch string(key) {
	case "v":
		if !p.once(0) {
			return false
		}
		n, ok := p.smallInt()
		b.V = n
		return ok
	case "site":
		return p.once(1) && p.str(&b.Site)
	case "vid":
		// Its own copy: the visitor id may be kept long (identity caches).
		if !p.once(2) || !p.str(&b.VisitorID) {
			return false
		}
		b.VisitorID = strings.Clone(b.VisitorID)
		return true
	case "fbp":
		return p.once(3) && p.str(&b.Fbp)
	case "fbc":
		return p.once(4) && p.str(&b.Fbc)
	case "consent":
		return p.once(5) && p.str(&b.Consent)
	case "lang":
		return p.once(6) && p.str(&b.Lang)
	case "url":
		return p.once(7) && p.str(&b.URL)
	case "events":
		if !p.once(8) {
			return false
		}
		outer := p.seen
		b.Events = p.first[:0:1]
		ok := p.Array(func() bool {
			b.Events = append(b.Events, browserEvent{})
			e := &b.Events[len(b.Events)-1]
			p.seen = 0
			return p.Object(func(key []byte) bool { return p.eventField(e, key) })
		})
		p.seen = outer
		return ok
	}
	return false
}

func (p *bodyParser) eventField(e *browserEvent, key []byte) bool {
	switch string(key) {
	case "type":
		return p.once(0) && p.str(&e.Type)
	case "name":
		return p.once(1) && p.str(&e.Name)
	case "id":
		return p.once(2) && p.str(&e.ID)
	case "url":
		return p.once(3) && p.str(&e.URL)
	case "ref":
		return p.once(4) && p.str(&e.Ref)
	case "form":
		return p.once(5) && p.str(&e.Form)
	case "state":
		return p.once(6) && p.str(&e.State)
	case "prev":
		return p.once(7) && p.str(&e.Prev)
	case "submit":
		if !p.once(8) {
			return false
		}
		switch {
		case p.Literal("true"):
			e.Submit = true
		case p.Literal("false"):
			e.Submit = false
		default:
			return false
		}
		return true
	case "data":
		if !p.once(9) {
			return false
		}
		v, ok := p.Raw(maxFastDepth)
		e.Data = append(json.RawMessage(nil), v...)
		return ok
	case "user":
		return p.once(10) && p.stringMap(&e.User)
	case "fields":
		return p.once(11) && p.stringMap(&e.Fields)
	}
	return false
}

// stringMap reads an object of plain strings (a repeated key: the last
// wins, as with encoding/json).
func (p *bodyParser) stringMap(m *map[string]string) bool {
	*m = make(map[string]string, 4)
	return p.Object(func(key []byte) bool {
		v, ok := p.VerbatimString()
		if ok && jsonscan.Verbatim(key) {
			(*m)[string(key)] = string(v)
			return true
		}
		return false
	})
}

func (p *bodyParser) str(dst *string) bool {
	v, ok := p.VerbatimText()
	*dst = v
	return ok
}

// smallInt reads an integer of at most 18 digits without sign, fraction
// or exponent (1.5, 1e3 and the like are left to encoding/json).
func (p *bodyParser) smallInt() (int, bool) {
	num, ok := p.Number()
	if !ok {
		return 0, false
	}
	n, ok := jsonscan.Uint(num, 18)
	return int(n), ok
}

// maxSharedBody bounds what one field still referenced keeps in memory:
// the strings of a body up to this size share one copy of it (one
// allocation instead of one per field); a larger body's fields are copies.
const maxSharedBody = 2 << 10

// maxFastDepth bounds the nesting the fast path follows in custom data;
// deeper values are left to encoding/json.
const maxFastDepth = 32
