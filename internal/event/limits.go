package event

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/capirelay/capirelay/internal/jsonscan"
)

// Limits on one event, checked when it is decoded. Meta documents none of
// them; they bound the work one request can cause (normalizing, hashing,
// stitching and deduplicating values is per value, and a 1 MiB body holds
// tens of thousands of them) far above what a real event carries.
const (
	// MaxValuesPerKey bounds the values of one hashable user_data key
	// (em, ph, …): a person has a few addresses, not thousands.
	MaxValuesPerKey = 20
	// MaxUserDataValues bounds the values of all hashable keys together.
	MaxUserDataValues = 100
	// MaxRawBytes bounds each object kept as it came (custom_data,
	// original_event_data, attribution_data, app_data).
	MaxRawBytes = 64 << 10
	// MaxRawDepth bounds their nesting: custom_data.contents[i].id is at
	// depth 3.
	MaxRawDepth = 10
	// MaxContents bounds custom_data.contents and custom_data.content_ids.
	MaxContents = 1000
)

// CheckLimits refuses an event that is larger than the limits above, naming
// the field; path prefixes field names ("data[3]").
func (ev *Event) CheckLimits(path string) error {
	return ev.checkLimits(path, func(_ int, l List) int { return len(l) })
}

// checkLimits is CheckLimits with the number of values of each hashable
// key (by index in hashableKeys) given by count.
func (ev *Event) checkLimits(path string, count func(i int, l List) int) error {
	p := func(f string) string { return JoinPath(path, f) }
	total := 0
	for i, k := range hashableKeys {
		n := count(i, *ev.UserData.List(k))
		if n > MaxValuesPerKey {
			return &FieldError{Field: p("user_data." + k), Message: fmt.Sprintf("has %d values; at most %d", n, MaxValuesPerKey)}
		}
		total += n
	}
	if total > MaxUserDataValues {
		return &FieldError{Field: p("user_data"), Message: fmt.Sprintf("has %d values in its hashed keys; at most %d", total, MaxUserDataValues)}
	}
	for _, r := range [...]struct {
		name string
		raw  []byte
	}{{"custom_data", ev.CustomData}, {"original_event_data", ev.OriginalEventData},
		{"attribution_data", ev.AttributionData}, {"app_data", ev.AppData}} {
		if err := checkRaw(r.raw, p(r.name)); err != nil {
			return err
		}
	}
	var err error
	members(ev.CustomData, func(k, v []byte) {
		if err != nil || (string(k) != "contents" && string(k) != "content_ids") || v[0] != '[' {
			return
		}
		n := 0
		elements(v, func([]byte) { n++ })
		if n > MaxContents {
			err = &FieldError{Field: p("custom_data." + string(k)), Message: fmt.Sprintf("has %d items; at most %d", n, MaxContents)}
		}
	})
	return err
}

// hashableKeys are the user_data keys that hold lists, in Meta's order
// (userDataFields checks them against UserData and the rulebook; a new
// list key also needs its normalization in package normalize).
var hashableKeys = [...]string{"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id"}

// checkRaw applies the size, depth and UTF-8 limits to one raw object.
func checkRaw(raw []byte, field string) error {
	if len(raw) == 0 {
		return nil
	}
	if len(raw) > MaxRawBytes {
		return &FieldError{Field: field, Message: fmt.Sprintf("is %d bytes; at most %d", len(raw), MaxRawBytes)}
	}
	if i := jsonscan.Space(raw, 0); jsonscan.Value(raw, i, MaxRawDepth) < 0 {
		return &FieldError{Field: field, Message: fmt.Sprintf("is nested deeper than %d levels", MaxRawDepth)}
	}
	return CheckUTF8(raw, field)
}

// members calls f with the raw key (between its quotes) and the value of
// each member of the JSON object raw, up to the first error; nothing if
// raw is not an object.
func members(raw []byte, f func(key, val []byte)) {
	c := jsonscan.Cursor{B: raw}
	if c.Peek() != '{' {
		return
	}
	c.Object(func(key []byte) bool {
		val, ok := c.Raw(1 << 20)
		if ok {
			f(key, val)
		}
		return ok
	})
}

// elements calls f with each element of the JSON array raw, up to the
// first error.
func elements(raw []byte, f func(val []byte)) {
	c := jsonscan.Cursor{B: raw}
	if c.Peek() != '[' {
		return
	}
	c.Array(func() bool {
		val, ok := c.Raw(1 << 20)
		if ok {
			f(val)
		}
		return ok
	})
}

// CheckUTF8 refuses JSON text b that holds bytes that are not UTF-8: sent
// on as they are, they would make the whole request to Meta invalid JSON.
// The error names the string that holds them as a path under field (or
// field itself when it cannot be told).
func CheckUTF8(b []byte, field string) error {
	if utf8.Valid(b) {
		return nil
	}
	where, key := utf8Path(b, field)
	msg := "is not valid UTF-8"
	if key {
		msg = "has a key that is not valid UTF-8"
	}
	return &FieldError{Field: where, Message: msg}
}

// utf8Path finds the first string of the JSON value b that is not UTF-8
// and returns its path under path, and whether it is an object's key (the
// path then names the object).
func utf8Path(b []byte, path string) (string, bool) {
	i := jsonscan.Space(b, 0)
	if i >= len(b) {
		return path, false
	}
	switch b[i] {
	case '"':
		return path, false
	case '{':
		var found string
		var key, done bool
		members(b[i:], func(k, v []byte) {
			switch {
			case done:
			case !utf8.Valid(k):
				found, key, done = path, true, true
			case !utf8.Valid(v):
				found, key = utf8Path(v, JoinPath(path, string(k)))
				done = true
			}
		})
		if done {
			return found, key
		}
	case '[':
		var found string
		var key, done bool
		n := 0
		elements(b[i:], func(v []byte) {
			if !done && !utf8.Valid(v) {
				found, key = utf8Path(v, path+"["+strconv.Itoa(n)+"]")
				done = true
			}
			n++
		})
		if done {
			return found, key
		}
	}
	return path, false
}

// JoinPath appends field f to a field path with a dot (either may be "").
func JoinPath(path, f string) string {
	switch {
	case path == "":
		return f
	case f == "":
		return path
	}
	return path + "." + f
}
