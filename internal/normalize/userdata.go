package normalize

// UserData holds the 11 hashable keys of user_data, each a list (Meta
// accepts a string or a list; spec §3.1).
type UserData struct {
	Em, Ph, Fn, Ln, Db, Ge, Ct, St, Zp, Country, ExternalID []string
}

// Get returns the values of f (nil for an unknown field).
func (u *UserData) Get(f Field) []string {
	if p := u.field(f); p != nil {
		return *p
	}
	return nil
}

// Set replaces the values of f; it does nothing for an unknown field.
func (u *UserData) Set(f Field, v []string) {
	if p := u.field(f); p != nil {
		*p = v
	}
}

func (u *UserData) field(f Field) *[]string {
	switch f {
	case Email:
		return &u.Em
	case Phone:
		return &u.Ph
	case FirstName:
		return &u.Fn
	case LastName:
		return &u.Ln
	case DateOfBirth:
		return &u.Db
	case Gender:
		return &u.Ge
	case City:
		return &u.Ct
	case State:
		return &u.St
	case Zip:
		return &u.Zp
	case Country:
		return &u.Country
	case ExternalID:
		return &u.ExternalID
	}
	return nil
}

// Region returns the region HashUserData uses for ph, st, zp and db: the
// lowercase code of the first valid value of country, else region as
// given.
func Region(country []string, region string) string {
	for _, c := range country {
		if code, ok := countryCode(prepare(c)); ok {
			return code
		}
	}
	return region
}

// HashUserData normalizes and hashes every value of in (see Hash). Values
// that are empty or invalid are dropped, never sent as null or as the hash
// of "", and never cost the other values; duplicates within a key are
// removed, keeping the first. The event's own country (the first valid
// value of in.Country) is the region for ph, st, zp and db, else o.Region.
// in is not modified; the result shares no memory with it. It is safe for
// concurrent use.
func HashUserData(in *UserData, o Options) UserData {
	var out UserData
	if in == nil {
		return out
	}
	e := o.env()
	e.region = Region(in.Country, o.Region)
	memo := o.Memo
	if !memo.use(&o) {
		memo = nil
	}
	n, size := 0, 0
	for _, f := range Fields {
		for _, v := range *in.field(f) {
			n++
			size += max(64, len(v))
		}
	}
	if n == 0 {
		return out
	}
	// All values go into one byte buffer, converted to one string at the
	// end and sliced per value: 2 allocations for the whole user_data (3
	// with the slice headers) instead of 2 per value.
	var stack [1024]byte
	buf := stack[:0]
	if size > len(stack) {
		buf = make([]byte, 0, size)
	}
	var scratch [256]byte
	sc := scratch[:0]
	spans := make([]span, 0, 16)
	var counts [11]int
	// Repeats are dropped: by a scan of the key's values so far while they
	// are few (cheaper than hashing), by a set past that, so that a key
	// with many values costs linear, not quadratic, time.
	var set map[string]struct{}
	for i, f := range Fields {
		clear(set)
		for _, v := range *in.field(f) {
			start := len(buf)
			var why string
			if memo != nil {
				buf, sc, why = memo.appendHash(buf, sc, i, f, v, &e)
			} else {
				buf, sc, why = appendHash(buf, sc, f, v, &e)
			}
			if why != "" {
				buf = buf[:start]
				continue
			}
			got := buf[start:]
			mine := spans[len(spans)-counts[i]:]
			if len(mine) == dedupScan && len(set) == 0 {
				if set == nil {
					set = make(map[string]struct{}, 2*dedupScan)
				}
				for _, s := range mine {
					set[string(buf[s.from:s.to])] = struct{}{}
				}
			}
			if repeated(buf, mine, got, set) {
				buf = buf[:start]
				continue
			}
			if len(mine) >= dedupScan {
				set[string(got)] = struct{}{}
			}
			spans = append(spans, span{start, len(buf)})
			counts[i]++
		}
	}
	if len(spans) == 0 {
		return out
	}
	all := string(buf)
	vals := make([]string, len(spans))
	for i, s := range spans {
		vals[i] = all[s.from:s.to]
	}
	for i, f := range Fields {
		if c := counts[i]; c > 0 {
			*out.field(f) = vals[:c:c]
			vals = vals[c:]
		}
	}
	return out
}

// span is a value's place in HashUserData's buffer.
type span struct{ from, to int }

// dedupScan is how many values of a key HashUserData compares one by one
// before it keeps them in a set.
const dedupScan = 8

// repeated reports whether got is one of a key's values so far: mine, in
// buf, or set once there are dedupScan of them.
func repeated(buf []byte, mine []span, got []byte, set map[string]struct{}) bool {
	if len(mine) >= dedupScan {
		_, ok := set[string(got)]
		return ok
	}
	for _, s := range mine {
		if string(buf[s.from:s.to]) == string(got) {
			return true
		}
	}
	return false
}
