package event

import (
	"strconv"

	"github.com/capirelay/capirelay/internal/jsonscan"
)

// The fast path of Decode: a hand-written, single-pass parser for the events
// real senders produce. It accepts an input only when its result is exactly
// what the encoding/json path (decodeSlow) gives; for anything else (an
// error, a duplicate or unknown or differently cased key, a key with
// escapes, a number form it does not read, trailing data, deep nesting) it
// reports "not handled" and Decode falls back to decodeSlow, so error
// messages and field paths come from one place. FuzzDecodeFast checks the
// agreement.

// fastEvent is one allocation holding the event and the backing store of
// its lists and ints; the event's slices and pointers point into it with
// their capacity capped, so an append copies out instead of overwriting.
type fastEvent struct {
	ev    Event
	strs  [14]string
	ints  [2]int
	nstrs int
	// over holds, for a hashable key (by index in hashableKeys) with more
	// than MaxValuesPerKey values, how many it has: the list keeps only
	// the first ones, the rest are checked but not decoded, so that an
	// event of 40,000 emails costs a scan, not 40,000 strings.
	over [len(hashableKeys)]int
}

// limits is CheckLimits on the decoded event, counting the values that
// were not kept.
func (fe *fastEvent) limits(path string) error {
	return fe.ev.checkLimits(path, func(i int, l List) int { return max(len(l), fe.over[i]) })
}

// maxFastDepth bounds nesting in raw fields; deeper input is left to
// encoding/json, whose own limit is far higher.
const maxFastDepth = 256

// fastDecoder reads events with the shared cursor; its S, when set (see
// DecodeBatch), lets plain strings be cut from the body itself.
type fastDecoder struct {
	jsonscan.Cursor
	fe *fastEvent
	// alias, when set, lets raw values (custom_data …) point into B
	// instead of copying them (see DecodeBatch).
	alias bool
}

// decodeFast parses raw as one event, or reports false if it cannot do so
// exactly as decodeSlow would.
func decodeFast(raw []byte) (*Event, bool) {
	fe, ok := decodeFastEvent(raw)
	if !ok {
		return nil, false
	}
	return &fe.ev, true
}

// decodeFastEvent is decodeFast, with what the event's limits need.
func decodeFastEvent(raw []byte) (*fastEvent, bool) {
	d := fastDecoder{Cursor: jsonscan.Cursor{B: raw}, fe: new(fastEvent)}
	if d.Peek() != '{' || !d.event() {
		return nil, false
	}
	if d.Peek() != 0 || d.I != len(d.B) {
		return nil, false // trailing data, or a NUL byte
	}
	return d.fe, true
}

// Event fields, as bits of a set of the keys seen so far.
const (
	fEventName = 1 << iota
	fEventTime
	fEventID
	fActionSource
	fEventSourceURL
	fReferrerURL
	fOptOut
	fUserData
	fCustomData
	fDPO
	fDPOCountry
	fDPOState
	fCustomerSegmentation
	fOriginalEventData
	fAttributionData
	fAppData
	fMessagingChannel
	fAdvertiserTracking
	fAdvancedMeasurement
)

func (d *fastDecoder) event() bool {
	ev := &d.fe.ev
	var seen uint32
	return d.Object(func(key []byte) bool {
		var bit uint32
		ok := false
		switch string(key) {
		case "event_name":
			bit = fEventName
			ev.EventName, ok = d.stringField(internEventName)
		case "event_time":
			bit = fEventTime
			ev.EventTime, ok = d.time()
		case "event_id":
			bit = fEventID
			ev.EventID, ok = d.stringField(nil)
		case "action_source":
			bit = fActionSource
			ev.ActionSource, ok = d.stringField(internActionSource)
		case "event_source_url":
			bit = fEventSourceURL
			ev.EventSourceURL, ok = d.stringField(nil)
		case "referrer_url":
			bit = fReferrerURL
			ev.ReferrerURL, ok = d.stringField(nil)
		case "opt_out":
			bit = fOptOut
			ev.OptOut, ok = d.boolField()
		case "user_data":
			bit = fUserData
			ok = d.userData(&ev.UserData)
		case "custom_data":
			bit = fCustomData
			ev.CustomData, ok = d.raw()
		case "data_processing_options":
			bit = fDPO
			ev.DataProcessingOptions, ok = d.stringSlice()
		case "data_processing_options_country":
			bit = fDPOCountry
			ev.DPOCountry, ok = d.intPtr(&d.fe.ints[0])
		case "data_processing_options_state":
			bit = fDPOState
			ev.DPOState, ok = d.intPtr(&d.fe.ints[1])
		case "customer_segmentation":
			bit = fCustomerSegmentation
			ev.CustomerSegmentation, ok = d.stringField(nil)
		case "original_event_data":
			bit = fOriginalEventData
			ev.OriginalEventData, ok = d.raw()
		case "attribution_data":
			bit = fAttributionData
			ev.AttributionData, ok = d.raw()
		case "app_data":
			bit = fAppData
			ev.AppData, ok = d.raw()
		case "messaging_channel":
			bit = fMessagingChannel
			ev.MessagingChannel, ok = d.stringField(nil)
		case "advertiser_tracking_enabled":
			bit = fAdvertiserTracking
			ev.AdvertiserTrackingEnabled, ok = d.raw()
		case "advanced_measurement_table":
			bit = fAdvancedMeasurement
			ev.AdvancedMeasurementTable, ok = d.stringField(nil)
		}
		if !ok || seen&bit != 0 {
			return false // unknown key, wrong type, or a duplicate (last wins in encoding/json)
		}
		seen |= bit
		return true
	})
}

func (d *fastDecoder) userData(u *UserData) bool {
	switch d.Peek() {
	case 'n':
		return d.Literal("null") // leaves the struct as it is
	case '{':
	default:
		return false
	}
	var seen uint64 // by index in userDataFields
	return d.Object(func(key []byte) bool {
		i := userDataIndex(key)
		if i < 0 || seen&(1<<i) != 0 {
			return false // unknown, or a duplicate (last wins in encoding/json)
		}
		seen |= 1 << i
		switch f := &userDataFields[i]; f.typ {
		case listValue:
			return d.list(f.values(u), f.list)
		case idValue:
			s, ok := d.flexString()
			*f.text(u) = string(s)
			return ok
		default:
			s, ok := d.stringField(nil)
			*f.text(u) = s
			return ok
		}
	})
}

// stringField reads a string, or null for "" (encoding/json leaves a
// string alone on null). intern, if set, may return a constant for common
// plain values instead of allocating.
func (d *fastDecoder) stringField(intern func([]byte) string) (string, bool) {
	switch d.Peek() {
	case '"':
		return d.String(intern)
	case 'n':
		return "", d.Literal("null")
	}
	return "", false
}

func (d *fastDecoder) boolField() (bool, bool) {
	switch d.Peek() {
	case 't':
		return true, d.Literal("true")
	case 'f':
		return false, d.Literal("false")
	case 'n':
		return false, d.Literal("null")
	}
	return false, false
}

// time reads event_time: only a plain positive integer of Unix seconds;
// floats, exponents, strings and out-of-range values are left to
// Time.UnmarshalJSON on the slow path.
func (d *fastDecoder) time() (Time, bool) {
	if c := d.Peek(); c < '1' || c > '9' {
		return 0, false
	}
	s, ok := d.Number()
	if !ok {
		return 0, false
	}
	n, ok := jsonscan.Uint(s, 12)
	if !ok || n > 100_000_000_000 {
		return 0, false
	}
	return Time(n), true
}

// intPtr reads null or an integer into *p.
func (d *fastDecoder) intPtr(p *int) (*int, bool) {
	c := d.Peek()
	if c == 'n' {
		return nil, d.Literal("null")
	}
	if c != '-' && (c < '0' || c > '9') {
		return nil, false
	}
	s, ok := d.Number()
	if !ok {
		return nil, false
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	n, ok := jsonscan.Uint(s, 18)
	if !ok {
		return nil, false
	}
	if neg {
		*p = -int(n)
	} else {
		*p = int(n)
	}
	return p, true
}

// flexString reads FlexString: a string, null, or an unsigned integer kept
// as its digits.
func (d *fastDecoder) flexString() (FlexString, bool) {
	switch c := d.Peek(); {
	case c == '"':
		s, ok := d.String(nil)
		return FlexString(s), ok
	case c == 'n':
		return "", d.Literal("null")
	case '0' <= c && c <= '9':
		s, ok := d.Number()
		if !ok {
			return "", false
		}
		if _, err := strconv.ParseUint(string(s), 10, 64); err != nil {
			return "", false // a fraction, an exponent, or too large
		}
		return FlexString(s), true
	}
	return "", false
}

// list reads a List: null, a string, or an array of strings and nulls
// (nulls dropped; an empty array gives an empty, non-nil List). Past
// MaxValuesPerKey values, the rest are only checked and counted into
// d.fe.over[key].
func (d *fastDecoder) list(l *List, key int) bool {
	switch d.Peek() {
	case 'n':
		*l = nil
		return d.Literal("null")
	case '"':
		s, ok := d.String(nil)
		if !ok {
			return false
		}
		*l = d.strings(1)
		(*l)[0] = s
		return true
	case '[':
	default:
		return false
	}
	var buf [8]string
	out := buf[:0]
	n := 0
	if !d.Array(func() bool {
		switch d.Peek() {
		case '"':
			n++
			if n > MaxValuesPerKey {
				d.fe.over[key] = n
				_, ok := d.Raw(0) // checked as String would, not decoded
				return ok
			}
			s, ok := d.String(nil)
			out = append(out, s)
			return ok
		case 'n':
			return d.Literal("null")
		}
		return false
	}) {
		return false
	}
	*l = d.strings(len(out))
	copy(*l, out)
	return true
}

// strings returns a slice of n strings from the event's backing store when
// there is room, its capacity capped; never nil.
func (d *fastDecoder) strings(n int) []string {
	fe := d.fe
	if k := fe.nstrs; k+n <= len(fe.strs) {
		fe.nstrs += n
		return fe.strs[k : k+n : k+n]
	}
	return make([]string, n)
}

// stringSlice reads a []string: null, or an array of strings and nulls
// (a null element is "", as encoding/json leaves a string alone on null).
func (d *fastDecoder) stringSlice() ([]string, bool) {
	switch d.Peek() {
	case 'n':
		return nil, d.Literal("null")
	case '[':
	default:
		return nil, false
	}
	out := []string{}
	ok := d.Array(func() bool {
		s, ok := d.stringField(nil)
		out = append(out, s)
		return ok
	})
	if !ok {
		return nil, false
	}
	return out, true
}

// raw reads any JSON value and returns a copy of its bytes, as
// json.RawMessage stores them (null included, as "null").
func (d *fastDecoder) raw() ([]byte, bool) {
	v, ok := d.skip(1)
	if !ok || d.alias {
		return v, ok
	}
	return append([]byte(nil), v...), true
}

// skip consumes one JSON value at the given depth, checking it as strictly
// as encoding/json, and returns its bytes.
func (d *fastDecoder) skip(depth int) ([]byte, bool) {
	return d.Raw(maxFastDepth - depth)
}

// internEventName returns the constant for a standard event name (spec
// §2.3), so the common names cost no allocation; "" for any other.
func internEventName(b []byte) string {
	switch string(b) {
	case "PageView":
		return "PageView"
	case "Purchase":
		return "Purchase"
	case "Lead":
		return "Lead"
	case "AddToCart":
		return "AddToCart"
	case "ViewContent":
		return "ViewContent"
	case "InitiateCheckout":
		return "InitiateCheckout"
	case "CompleteRegistration":
		return "CompleteRegistration"
	case "AddPaymentInfo":
		return "AddPaymentInfo"
	case "Search":
		return "Search"
	case "Subscribe":
		return "Subscribe"
	case "StartTrial":
		return "StartTrial"
	case "Contact":
		return "Contact"
	}
	return ""
}

// internActionSource returns the constant for an action_source value.
func internActionSource(b []byte) string {
	switch string(b) {
	case "website":
		return "website"
	case "app":
		return "app"
	case "email":
		return "email"
	case "phone_call":
		return "phone_call"
	case "chat":
		return "chat"
	case "physical_store":
		return "physical_store"
	case "system_generated":
		return "system_generated"
	case "business_messaging":
		return "business_messaging"
	case "other":
		return "other"
	}
	return ""
}
