package event

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/capirelay/capirelay/internal/jsonscan"
)

// scrubCustomData returns custom_data without what may not reach Meta in
// clear: Meta takes customer data only hashed, in user_data, and never a
// card number. At any depth, a member goes when its name says it holds
// personal data or a secret (customer_email, phone, password, card…: the
// names ScrubURL takes out of a URL), and a value, member or array
// element, goes when it is an email address, an international phone number
// or, outside ids (id, order_id, content_ids…), a card number. It reports
// whether it took anything out. custom_data with nothing to take, nearly
// all of it, is returned as it is, without allocating; otherwise it is
// written again (members in key order, values as they were).
func scrubCustomData(raw json.RawMessage) (json.RawMessage, bool) {
	c := jsonscan.Cursor{B: raw}
	found := false
	if c.Peek() != '{' { // custom_data is an object (checkCustomData)
		return raw, false
	}
	if personalValue(&c, false, 0, &found); !found {
		return raw, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw, false
	}
	v, _ = scrubJSON(v, false)
	out, err := encodeRaw(v)
	if err != nil {
		return raw, false
	}
	return out, true
}

// maxScrubDepth bounds the walk (CheckLimits allows 10 levels).
const maxScrubDepth = 64

// personalValue reads the value at c and sets *found, stopping there, when
// it holds something scrubCustomData takes out; it reports false when it
// stopped early or the value is not valid JSON. id says the value is an
// id's, where a long number is no card.
func personalValue(c *jsonscan.Cursor, id bool, depth int, found *bool) bool {
	if depth > maxScrubDepth {
		return false
	}
	switch c.Peek() {
	case '{':
		return c.Object(func(key []byte) bool {
			k := key
			if !jsonscan.Verbatim(k) {
				var ok bool
				if k, ok = jsonscan.Unquote(key); !ok {
					return false
				}
			}
			id, known := metaKey(string(k))
			if !known {
				if personalKey(string(k)) {
					*found = true
					return false
				}
				id = isIDKey(string(k))
			}
			return personalValue(c, id, depth+1, found)
		})
	case '[':
		return c.Array(func() bool { return personalValue(c, id, depth+1, found) })
	case '"':
		s, ok := c.VerbatimString()
		if !ok {
			var str string
			if str, ok = c.String(nil); !ok {
				return false
			}
			s = []byte(str)
		}
		if personalString(string(s), id) {
			*found = true
			return false
		}
		return true
	case 't':
		return c.Literal("true")
	case 'f':
		return c.Literal("false")
	case 'n':
		return c.Literal("null")
	}
	num, ok := c.Number()
	if ok && !id && maybeCard(string(num)) {
		*found = true
		return false
	}
	return ok
}

// scrubJSON is v (as encoding/json decodes it, numbers as json.Number)
// without what personalValue finds; drop reports that v itself goes.
func scrubJSON(v any, id bool) (_ any, drop bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, m := range x {
			if personalKey(k) {
				delete(x, k)
				continue
			}
			if m, drop := scrubJSON(m, isIDKey(k)); drop {
				delete(x, k)
			} else {
				x[k] = m
			}
		}
		return x, false
	case []any:
		kept := x[:0]
		for _, e := range x {
			if e, drop := scrubJSON(e, id); !drop {
				kept = append(kept, e)
			}
		}
		return kept, false
	case string:
		return x, personalString(x, id)
	case json.Number:
		return x, !id && maybeCard(string(x))
	}
	return v, false
}

// metaKey reports whether k is a name of Meta's custom_data (or of its
// contents) that personalKey does not take, and whether it holds ids:
// most members of custom_data are one, and a switch is cheaper than
// personalKey.
func metaKey(k string) (id, known bool) {
	switch k {
	case "id", "content_ids", "order_id":
		return true, true
	case "value", "currency", "contents", "content_type", "content_name", "content_category", "num_items",
		"predicted_ltv", "search_string", "status", "delivery_category", "quantity", "item_price",
		"title", "description", "brand", "category":
		return false, true
	}
	return false, false
}

// personalKey reports whether a custom_data member's name says it holds
// personal data or a secret, by ScrubURL's rule for query parameters.
func personalKey(k string) bool { return personalName(k) || hasEmail(k) }

// personalString reports whether a custom_data string is an email
// address, an international phone number or, outside ids, a card number.
func personalString(s string, id bool) bool {
	return hasEmail(s) || isIntlPhone(s) || !id && maybeCard(s)
}

// maybeCard is isCardNumber, quick for what is too short to be one.
func maybeCard(s string) bool { return len(s) >= 13 && isCardNumber(s) }

// isIDKey reports whether a member holds ids (id, order_id, content_ids):
// a product's number may pass a card's checks.
func isIDKey(k string) bool {
	return strings.EqualFold(k, "id") || strings.EqualFold(k, "ids") ||
		len(k) > 3 && (strings.EqualFold(k[len(k)-3:], "_id") || strings.EqualFold(k[len(k)-4:], "_ids"))
}
