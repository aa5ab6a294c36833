package collect

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

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
	p := bodyParser{s: raw, first: &a.first}
	if len(raw) <= maxSharedBody {
		p.src = string(raw)
	}
	body := &a.body
	if !p.object(func(key []byte) bool { return p.bodyField(body, key) }) {
		return nil, false
	}
	p.ws()
	if p.i != len(p.s) {
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

// bodyParser is a strict cursor over one JSON text.
type bodyParser struct {
	s     []byte
	first *[1]browserEvent // the first event's room
	// src is s as one string whose substrings are the fields, or "" when
	// s is larger than maxSharedBody: then each field is its own copy.
	src string
	i   int
	// seen guards against repeated keys of the object being read: the
	// fields of one object are numbered, and a repeat is left to
	// encoding/json (whose merging rules are not worth copying).
	seen uint32
}

func (p *bodyParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// eat skips white space and consumes c if it is next.
func (p *bodyParser) eat(c byte) bool {
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads {"key": value, ...}; field reads the value of one key (the
// cursor is after the colon) and reports false to give up.
func (p *bodyParser) object(field func(key []byte) bool) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return true
	}
	for {
		p.ws()
		key, ok := p.plainString()
		if !ok || !p.eat(':') {
			return false
		}
		p.ws()
		if !field(key) {
			return false
		}
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
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
		if !p.once(8) || !p.eat('[') {
			return false
		}
		outer := p.seen
		b.Events = p.first[:0:1]
		if !p.eat(']') {
			for {
				b.Events = append(b.Events, browserEvent{})
				e := &b.Events[len(b.Events)-1]
				p.seen = 0
				if !p.object(func(key []byte) bool { return p.eventField(e, key) }) {
					return false
				}
				if p.eat(']') {
					break
				}
				if !p.eat(',') {
					return false
				}
			}
		}
		p.seen = outer
		return true
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
		case p.literal("true"):
			e.Submit = true
		case p.literal("false"):
			e.Submit = false
		default:
			return false
		}
		return true
	case "data":
		if !p.once(9) {
			return false
		}
		start := p.i
		end := jsonscan.Value(p.s, p.i, maxFastDepth)
		if end < 0 {
			return false
		}
		p.i = end
		e.Data = append(json.RawMessage(nil), p.s[start:p.i]...)
		return true
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
	outer := p.seen
	ok := p.object(func(key []byte) bool {
		v, ok := p.plainString()
		if ok {
			(*m)[string(key)] = string(v)
		}
		return ok
	})
	p.seen = outer
	return ok
}

func (p *bodyParser) str(dst *string) bool {
	start := p.i + 1
	v, ok := p.plainString()
	switch {
	case !ok:
	case p.src != "":
		*dst = p.src[start : start+len(v)]
	default:
		*dst = string(v)
	}
	return ok
}

// maxSharedBody bounds what one field still referenced keeps in memory:
// the strings of a body up to this size share one copy of it (one
// allocation instead of one per field); a larger body's fields are copies.
const maxSharedBody = 2 << 10

// plainString reads a string without escapes or control characters whose
// bytes are valid UTF-8: encoding/json takes such a string as it is.
func (p *bodyParser) plainString() ([]byte, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.s); j++ {
		c := p.s[j]
		if !strSpecial[c] { // most bytes: one look-up
			continue
		}
		switch {
		case c == '"':
			v := p.s[start:j]
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			p.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		default: // c >= utf8.RuneSelf
			ascii = false
		}
	}
	return nil, false
}

// strSpecial marks the bytes plainString must look at: the closing quote,
// a backslash, control characters and the bytes of non-ASCII runes.
var strSpecial = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf
	}
	return t
}()

// smallInt reads an integer of at most 18 digits without sign or
// fraction, as JSON writes it (no leading zeros).
func (p *bodyParser) smallInt() (int, bool) {
	start := p.i
	n := 0
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		n = n*10 + int(p.s[p.i]-'0')
		p.i++
	}
	d := p.i - start
	if d == 0 || d > 18 || (d > 1 && p.s[start] == '0') {
		return 0, false
	}
	// 1.5, 1e3 and the like are left to encoding/json.
	if p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		return 0, false
	}
	return n, true
}

func (p *bodyParser) literal(lit string) bool {
	if len(p.s)-p.i >= len(lit) && string(p.s[p.i:p.i+len(lit)]) == lit {
		p.i += len(lit)
		return true
	}
	return false
}

// maxFastDepth bounds the nesting the fast path follows in custom data;
// deeper values are left to encoding/json.
const maxFastDepth = 32
