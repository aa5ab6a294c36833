package event

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

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

type fastDecoder struct {
	b  []byte
	i  int
	fe *fastEvent
	// s, when set, holds the same bytes as b: plain strings are cut from
	// it instead of each being copied (see DecodeBatch).
	s string
	// alias, when set, lets raw values (custom_data …) point into b
	// instead of copying them (see DecodeBatch).
	alias bool
}

// text returns b[start:end] as a string: a substring of s when the
// decoder shares one, else a copy.
func (d *fastDecoder) text(start, end int) string {
	if d.s != "" {
		return d.s[start:end]
	}
	return string(d.b[start:end])
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
	d := fastDecoder{b: raw, fe: new(fastEvent)}
	if d.peek() != '{' || !d.event() {
		return nil, false
	}
	if d.peek() != 0 || d.i != len(d.b) {
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
	return d.object(func(key []byte) bool {
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
	switch d.peek() {
	case 'n':
		return d.literal("null") // leaves the struct as it is
	case '{':
	default:
		return false
	}
	var seen uint32
	return d.object(func(key []byte) bool {
		var bit uint32
		ok := false
		switch string(key) {
		case "em":
			bit, ok = 1<<0, d.list(&u.Em, 0)
		case "ph":
			bit, ok = 1<<1, d.list(&u.Ph, 1)
		case "fn":
			bit, ok = 1<<2, d.list(&u.Fn, 2)
		case "ln":
			bit, ok = 1<<3, d.list(&u.Ln, 3)
		case "db":
			bit, ok = 1<<4, d.list(&u.Db, 4)
		case "ge":
			bit, ok = 1<<5, d.list(&u.Ge, 5)
		case "ct":
			bit, ok = 1<<6, d.list(&u.Ct, 6)
		case "st":
			bit, ok = 1<<7, d.list(&u.St, 7)
		case "zp":
			bit, ok = 1<<8, d.list(&u.Zp, 8)
		case "country":
			bit, ok = 1<<9, d.list(&u.Country, 9)
		case "external_id":
			bit, ok = 1<<10, d.list(&u.ExternalID, 10)
		case "client_ip_address":
			bit = 1 << 11
			u.ClientIPAddress, ok = d.stringField(nil)
		case "client_user_agent":
			bit = 1 << 12
			u.ClientUserAgent, ok = d.stringField(nil)
		case "fbc":
			bit = 1 << 13
			u.Fbc, ok = d.stringField(nil)
		case "fbp":
			bit = 1 << 14
			u.Fbp, ok = d.stringField(nil)
		case "subscription_id":
			bit = 1 << 15
			u.SubscriptionID, ok = d.stringField(nil)
		case "fb_login_id":
			bit = 1 << 16
			u.FbLoginID, ok = d.flexString()
		case "lead_id":
			bit = 1 << 17
			u.LeadID, ok = d.flexString()
		case "anon_id":
			bit = 1 << 18
			u.AnonID, ok = d.stringField(nil)
		case "madid":
			bit = 1 << 19
			u.Madid, ok = d.stringField(nil)
		case "page_id":
			bit = 1 << 20
			u.PageID, ok = d.stringField(nil)
		case "page_scoped_user_id":
			bit = 1 << 21
			u.PageScopedUserID, ok = d.stringField(nil)
		case "ctwa_clid":
			bit = 1 << 22
			u.CtwaClid, ok = d.stringField(nil)
		case "ig_account_id":
			bit = 1 << 23
			u.IgAccountID, ok = d.stringField(nil)
		case "ig_sid":
			bit = 1 << 24
			u.IgSid, ok = d.stringField(nil)
		case "f5first":
			bit = 1 << 25
			u.F5First, ok = d.stringField(nil)
		case "f5last":
			bit = 1 << 26
			u.F5Last, ok = d.stringField(nil)
		case "fi":
			bit = 1 << 27
			u.Fi, ok = d.stringField(nil)
		case "dobd":
			bit = 1 << 28
			u.Dobd, ok = d.stringField(nil)
		case "dobm":
			bit = 1 << 29
			u.Dobm, ok = d.stringField(nil)
		case "doby":
			bit = 1 << 30
			u.Doby, ok = d.stringField(nil)
		case "app_user_id":
			bit = 1 << 31
			u.AppUserID, ok = d.stringField(nil)
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
}

// peek skips white space and returns the next byte, or 0 at the end.
func (d *fastDecoder) peek() byte {
	for d.i < len(d.b) {
		switch c := d.b[d.i]; c {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return c
		}
	}
	return 0
}

// object reads the object at d.i, calling member with each key, positioned
// at the key's value, which member must consume. Keys must need no
// unescaping.
func (d *fastDecoder) object(member func(key []byte) bool) bool {
	d.i++ // '{'
	if d.peek() == '}' {
		d.i++
		return true
	}
	for {
		if d.peek() != '"' {
			return false
		}
		start := d.i + 1
		j := start
		for j < len(d.b) && d.b[j] != '"' {
			if c := d.b[j]; c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
				return false
			}
			j++
		}
		if j == len(d.b) {
			return false
		}
		key := d.b[start:j]
		d.i = j + 1
		if d.peek() != ':' {
			return false
		}
		d.i++
		d.peek()
		if !member(key) {
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return true
		default:
			return false
		}
	}
}

// literal consumes lit (true, false or null) at d.i.
func (d *fastDecoder) literal(lit string) bool {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return false
	}
	d.i += len(lit)
	return true
}

// stringField reads a string, or null for "" (encoding/json leaves a
// string alone on null). intern, if set, may return a constant for common
// plain values instead of allocating.
func (d *fastDecoder) stringField(intern func([]byte) string) (string, bool) {
	switch d.peek() {
	case '"':
		return d.str(intern)
	case 'n':
		return "", d.literal("null")
	}
	return "", false
}

func (d *fastDecoder) boolField() (bool, bool) {
	switch d.peek() {
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return false, d.literal("null")
	}
	return false, false
}

// str reads the string literal at d.i, decoding it exactly as encoding/json
// does: escapes, surrogate pairs, and U+FFFD for invalid UTF-8 and lone
// surrogates.
func (d *fastDecoder) str(intern func([]byte) string) (string, bool) {
	b, start := d.b, d.i+1
	j := start
	for j < len(b) && plainByte[b[j]] {
		j++
	}
	if j == len(b) || b[j] != '"' {
		return d.strSlow(start, j)
	}
	d.i = j + 1
	if intern != nil {
		if v := intern(b[start:j]); v != "" {
			return v, true
		}
	}
	return d.text(start, j), true
}

// plainByte marks the bytes of a string literal that need neither
// unescaping nor a UTF-8 check.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// strSlow continues str from b[j], the first byte that may need rewriting.
func (d *fastDecoder) strSlow(start, j int) (string, bool) {
	b := d.b
	var out []byte // nil while b[start:j] needs no rewriting
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			d.i = j + 1
			if out == nil {
				return d.text(start, j), true
			}
			return string(out), true
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf && c != '\\':
			if out != nil {
				out = append(out, c)
			}
			j++
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size == 1 {
				if out == nil {
					out = append(make([]byte, 0, len(b)-start), b[start:j]...)
				}
				out = utf8.AppendRune(out, utf8.RuneError)
			} else if out != nil {
				out = append(out, b[j:j+size]...)
			}
			j += size
		default: // backslash
			if out == nil {
				out = append(make([]byte, 0, len(b)-start), b[start:j]...)
			}
			if j+1 >= len(b) {
				return "", false
			}
			switch e := b[j+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
				j += 2
			case 'b':
				out = append(out, '\b')
				j += 2
			case 'f':
				out = append(out, '\f')
				j += 2
			case 'n':
				out = append(out, '\n')
				j += 2
			case 'r':
				out = append(out, '\r')
				j += 2
			case 't':
				out = append(out, '\t')
				j += 2
			case 'u':
				r := hex4(b[j:])
				if r < 0 {
					return "", false
				}
				j += 6
				if utf16.IsSurrogate(r) {
					if r2 := hex4(b[j:]); r2 >= 0 {
						if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
							r = pair
							j += 6
						} else {
							r = utf8.RuneError
						}
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", false
			}
		}
	}
	return "", false
}

// hex4 reads the escape \uXXXX at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number consumes a JSON number and returns its text; it does not check
// what follows (the caller's next read does).
func (d *fastDecoder) number() ([]byte, bool) {
	b, start, j := d.b, d.i, d.i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && '1' <= b[j] && b[j] <= '9':
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
	default:
		return nil, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		if j >= len(b) || b[j] < '0' || b[j] > '9' {
			return nil, false
		}
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || b[j] < '0' || b[j] > '9' {
			return nil, false
		}
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
	}
	d.i = j
	return b[start:j], true
}

// plainUint returns the value of s if it is only decimal digits, at most
// maxDigits of them (so it cannot overflow).
func plainUint(s []byte, maxDigits int) (uint64, bool) {
	if len(s) == 0 || len(s) > maxDigits {
		return 0, false
	}
	var n uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// time reads event_time: only a plain positive integer of Unix seconds;
// floats, exponents, strings and out-of-range values are left to
// Time.UnmarshalJSON on the slow path.
func (d *fastDecoder) time() (Time, bool) {
	if c := d.peek(); c < '1' || c > '9' {
		return 0, false
	}
	s, ok := d.number()
	if !ok {
		return 0, false
	}
	n, ok := plainUint(s, 12)
	if !ok || n > 100_000_000_000 {
		return 0, false
	}
	return Time(n), true
}

// intPtr reads null or an integer into *p.
func (d *fastDecoder) intPtr(p *int) (*int, bool) {
	c := d.peek()
	if c == 'n' {
		return nil, d.literal("null")
	}
	if c != '-' && (c < '0' || c > '9') {
		return nil, false
	}
	s, ok := d.number()
	if !ok {
		return nil, false
	}
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	n, ok := plainUint(s, 18)
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
	switch c := d.peek(); {
	case c == '"':
		s, ok := d.str(nil)
		return FlexString(s), ok
	case c == 'n':
		return "", d.literal("null")
	case '0' <= c && c <= '9':
		s, ok := d.number()
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
	switch d.peek() {
	case 'n':
		*l = nil
		return d.literal("null")
	case '"':
		s, ok := d.str(nil)
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
	d.i++
	var buf [8]string
	out := buf[:0]
	if d.peek() == ']' {
		d.i++
		*l = d.strings(0)
		return true
	}
	n := 0
	for {
		switch d.peek() {
		case '"':
			n++
			if n > MaxValuesPerKey {
				end := jsonscan.String(d.b, d.i) // as str accepts, without decoding
				if end < 0 {
					return false
				}
				d.i = end
				d.fe.over[key] = n
				break
			}
			s, ok := d.str(nil)
			if !ok {
				return false
			}
			out = append(out, s)
		case 'n':
			if !d.literal("null") {
				return false
			}
		default:
			return false
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			*l = d.strings(len(out))
			copy(*l, out)
			return true
		default:
			return false
		}
	}
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
	switch d.peek() {
	case 'n':
		return nil, d.literal("null")
	case '[':
	default:
		return nil, false
	}
	d.i++
	out := []string{}
	if d.peek() == ']' {
		d.i++
		return out, true
	}
	for {
		s, ok := d.stringField(nil)
		if !ok {
			return nil, false
		}
		out = append(out, s)
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return out, true
		default:
			return nil, false
		}
	}
}

// raw reads any JSON value and returns a copy of its bytes, as
// json.RawMessage stores them (null included, as "null").
func (d *fastDecoder) raw() ([]byte, bool) {
	d.peek()
	start := d.i
	if !d.skip(1) {
		return nil, false
	}
	if d.alias {
		return d.b[start:d.i:d.i], true
	}
	return append([]byte(nil), d.b[start:d.i]...), true
}

// skip consumes one JSON value, checking it as strictly as encoding/json.
func (d *fastDecoder) skip(depth int) bool {
	d.peek()
	end := jsonscan.Value(d.b, d.i, maxFastDepth-depth)
	if end < 0 {
		return false
	}
	d.i = end
	return true
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
