package normalize

import "time"

// Memo lets HashUserData skip the work for a value it hashed just before.
// The events of one request usually repeat many values (the same city,
// state, country, gender or date of birth in a row), and normalizing and
// hashing a value costs far more than comparing it with the last one, so a
// Memo remembers, per user_data key, the last value hashed, the region it
// was hashed for and the result (a hash, or why it was dropped). A hit
// gives exactly what hashing again would: the result depends only on the
// key, the value, the region and Options' DateOrder and Now, and a Memo
// forgets everything when DateOrder or Now change (Now must be set for a
// Memo to be used at all).
//
// It holds the values it remembers, so it should live no longer than the
// events it serves (one request). The zero value is ready; a Memo is not
// safe for concurrent use.
type Memo struct {
	order DateOrder
	now   time.Time
	last  [11]memoEntry // by index in Fields
}

type memoEntry struct {
	set         bool
	raw, region string
	why         string // "": hash holds the value's hash
	hash        [64]byte
}

// use readies m for o, and reports whether HashUserData may use it.
func (m *Memo) use(o *Options) bool {
	if m == nil || o.Now.IsZero() {
		return false
	}
	if m.order != o.DateOrder || !m.now.Equal(o.Now) {
		*m = Memo{order: o.DateOrder, now: o.Now}
	}
	return true
}

// appendHash is appendHash for the i-th key of Fields, answered from m
// when raw is the value it hashed last for that key and region.
func (m *Memo) appendHash(dst, scratch []byte, i int, f Field, raw string, e *env) ([]byte, []byte, string) {
	l := &m.last[i]
	if l.set && l.raw == raw && l.region == e.region {
		if l.why != "" {
			return dst, scratch, l.why
		}
		return append(dst, l.hash[:]...), scratch, ""
	}
	start := len(dst)
	dst, scratch, why := appendHash(dst, scratch, f, raw, e)
	switch {
	case why != "":
		*l = memoEntry{set: true, raw: raw, region: e.region, why: why}
	case len(dst)-start == len(l.hash):
		*l = memoEntry{set: true, raw: raw, region: e.region}
		copy(l.hash[:], dst[start:])
	default: // a pre-hashed value with an appendix: cheap, not kept
		l.set = false
	}
	return dst, scratch, why
}
