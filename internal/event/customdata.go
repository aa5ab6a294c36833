package event

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/capirelay/capirelay/internal/jsonscan"
	"github.com/capirelay/capirelay/internal/metarules"
)

// checkCustomData checks value and currency (spec §4), upper-cases the
// currency in place and takes personal data out (scrubCustomData).
func checkCustomData(ev *Event, p func(string) string) error {
	var cd customData
	if !cd.scan(ev.CustomData) {
		// Anything the scan does not take on goes through encoding/json,
		// whose verdict the scan reproduces where it does. Start afresh:
		// a half-done scan leaves cd.Value pointing into CustomData, which
		// json.RawMessage would overwrite while it is being decoded, and
		// spans that encoding/json does not fill (so rewrite rebuilds).
		cd = customData{}
		if err := json.Unmarshal(ev.CustomData, &cd); err != nil {
			return &FieldError{Field: p("custom_data"), Message: "must be an object"}
		}
	}
	hasValue := len(cd.Value) > 0 && string(cd.Value) != "null"
	var coerced json.RawMessage // value, when sent as a numeric string
	if hasValue && !isFloat(cd.Value) {
		var f float64
		if err := json.Unmarshal(cd.Value, &f); err != nil {
			// Graph takes "49.90" as 49.90, as Meta's SDK does (§4).
			var s string
			var ok bool
			if json.Unmarshal(cd.Value, &s) != nil {
				return &FieldError{Field: p("custom_data.value"), Message: "must be a number"}
			}
			if f, ok = metarules.ParseValue(s); !ok {
				return &FieldError{Field: p("custom_data.value"), Message: "must be a number (or a string holding one)"}
			}
			coerced = strconv.AppendFloat(nil, f, 'f', -1, 64)
		}
	}
	var upper json.RawMessage // the currency, when it was not upper case
	if cd.Currency != nil {
		c := strings.ToUpper(strings.TrimSpace(*cd.Currency))
		if !metarules.IsCurrency(c) {
			return &FieldError{Field: p("custom_data.currency"), Message: "must be an ISO 4217 code such as USD or EUR"}
		}
		if c != *cd.Currency {
			// Letters only (IsCurrency): quoting needs no escapes.
			upper = append(append(append(make([]byte, 0, len(c)+2), '"'), c...), '"')
		}
	}
	if hasValue && cd.Currency == nil {
		return &FieldError{Field: p("custom_data.currency"), Message: "is required when value is set"}
	}
	if requiresValue(ev.EventName) && (!hasValue || cd.Currency == nil) {
		return &FieldError{Field: p("custom_data"), Message: ev.EventName + " requires value and currency"}
	}
	if coerced != nil || upper != nil {
		ev.CustomData = rewrite(ev.CustomData, cd.valueAt, cd.currencyAt, coerced, upper)
	}
	var scrubbed bool
	if ev.CustomData, scrubbed = scrubCustomData(ev.CustomData); scrubbed {
		ev.CustomDataScrubbed = true
	}
	return nil
}

// rewrite is raw with value replaced by coerced and currency by upper
// (each when not nil). A member the scan found once, under its own name,
// is replaced where it stands, keeping the rest of raw byte for byte;
// otherwise (also when encoding/json read raw instead, which records no
// spans) replaceKey rebuilds the object.
func rewrite(raw json.RawMessage, valueAt, currencyAt member, coerced, upper json.RawMessage) json.RawMessage {
	var edits [2]edit
	n := 0
	var valueKey, currencyKey bool // left for replaceKey
	if coerced != nil {
		if valueAt.simple() {
			edits[n], n = edit{valueAt.lo, valueAt.hi, coerced}, n+1
		} else {
			valueKey = true
		}
	}
	if upper != nil {
		if currencyAt.simple() {
			edits[n], n = edit{currencyAt.lo, currencyAt.hi, upper}, n+1
		} else {
			currencyKey = true
		}
	}
	if n > 0 {
		raw = splice(raw, edits[:n])
	}
	if valueKey {
		raw = replaceKey(raw, "value", coerced)
	}
	if currencyKey {
		raw = replaceKey(raw, "currency", upper)
	}
	return raw
}

// edit replaces raw[lo:hi] by val.
type edit struct {
	lo, hi int
	val    []byte
}

// splice applies edits (of disjoint spans, in any order) to a copy of raw.
func splice(raw []byte, edits []edit) []byte {
	if len(edits) == 2 && edits[1].lo < edits[0].lo {
		edits[0], edits[1] = edits[1], edits[0]
	}
	size := len(raw)
	for _, e := range edits {
		size += len(e.val) - (e.hi - e.lo)
	}
	out := make([]byte, 0, size)
	at := 0
	for _, e := range edits {
		out = append(append(out, raw[at:e.lo]...), e.val...)
		at = e.hi
	}
	return append(out, raw[at:]...)
}

// customData is what checkCustomData reads of custom_data.
type customData struct {
	Value    json.RawMessage `json:"value"`
	Currency *string         `json:"currency"`

	// Where the scan found the two members' values.
	valueAt, currencyAt member
}

// member is where an object's member of some name stands: the span of its
// last value in the object's bytes, how many members matched the name
// (case-insensitively, as encoding/json does), and whether the last one
// was spelled exactly so.
type member struct {
	lo, hi  int
	matches int
	exact   bool
}

func (m *member) found(lo, hi int, exact bool) {
	m.lo, m.hi, m.exact = lo, hi, exact
	m.matches++
}

// simple reports whether the name appears once, spelled exactly: its value
// can be replaced where it stands.
func (m *member) simple() bool { return m.matches == 1 && m.exact }

// scan fills cd from raw as json.Unmarshal would, without reflection and
// with no allocation beyond the currency, for the common case: valid JSON,
// an object whose keys have no escapes and whose currency, if any, is null
// or a plain string. It reports false, with cd unspecified, for anything
// else, including anything that is not valid JSON.
func (cd *customData) scan(raw []byte) bool {
	c := jsonscan.Cursor{B: raw}
	ok := c.Object(func(key []byte) bool {
		val, ok := c.Raw(maxScanDepth)
		if !ok || !jsonscan.Verbatim(key) {
			return false
		}
		// encoding/json matches keys case-insensitively; for these two
		// ASCII names that is ASCII case folding (no other rune folds to
		// one of their letters). The last one wins.
		lo := c.I - len(val)
		switch {
		case equalFoldASCII(key, "value"):
			cd.Value = val
			cd.valueAt.found(lo, c.I, string(key) == "value")
		case equalFoldASCII(key, "currency"):
			cd.currencyAt.found(lo, c.I, string(key) == "currency")
			switch val[0] {
			case 'n':
				cd.Currency = nil
			case '"':
				v := jsonscan.Cursor{B: val}
				s, ok := v.VerbatimText()
				if !ok {
					return false
				}
				cd.Currency = &s
			default:
				return false // encoding/json's type error
			}
		}
		return true
	})
	return ok && c.Done()
}

// maxScanDepth is the nesting the scan follows; deeper values are left to
// encoding/json (which has its own limit).
const maxScanDepth = 32

func equalFoldASCII(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// isFloat reports whether b is a JSON number that json.Unmarshal accepts
// into a float64 (it refuses only what is out of range).
func isFloat(b []byte) bool {
	if len(b) == 0 || jsonscan.Number(b, 0) != len(b) {
		return false
	}
	_, err := strconv.ParseFloat(string(b), 64)
	return err == nil
}

// replaceKey returns the object raw with key's value replaced by val (JSON).
func replaceKey(raw json.RawMessage, key string, val []byte) json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw
	}
	// encoding/json matched the key case-insensitively: replace that one.
	for k := range m {
		if strings.EqualFold(k, key) {
			delete(m, k)
		}
	}
	m[key] = val
	out, err := encodeRaw(m)
	if err != nil {
		return raw
	}
	return out
}

// encodeRaw is v as JSON the way custom_data is rebuilt: keys in order,
// <, > and & left as they are (json.Marshal would escape them).
func encodeRaw(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}
