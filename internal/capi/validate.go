package capi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/jsonscan"
	"github.com/capirelay/capirelay/internal/metarules"
)

// Problem is one reason Meta would reject an event, like a line of Meta's
// Payload Helper. Messages name the field and at most its JSON type, never
// its value.
type Problem struct {
	// Path is a JSON path: "user_data.em[0]" from ValidateEvent,
	// "data[3].user_data.em[0]" from ValidatePayload; "" is the event itself.
	Path    string
	Message string
	// Code and Subcode are what the Graph API would answer: always code 100;
	// Subcode 2804003 (too old), 2804050 (thin match), 2804001 (bad fbc), or
	// 0 where Meta's subcode is not known.
	Code    int
	Subcode int
}

// String returns "path: message".
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// hashedKeys are the user_data keys Meta wants as SHA-256 hex (§3.1), in the
// order problems are reported.
var hashedKeys = metarules.HashedListFields

// emptySHA256 is sha256(""): a normalizer bug, never a real value (§3.4).
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// rawEvent holds the raw JSON values of the event fields we check.
type rawEvent struct {
	EventName, EventTime, ActionSource, EventSourceURL, EventID, OptOut []byte
	UserData, CustomData, AppData, AdvertiserTracking                   []byte
	DPO, DPOCountry, DPOState                                           []byte
}

type validator struct {
	probs []Problem
}

func (v *validator) add(path string, subcode int, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	v.probs = append(v.probs, Problem{Path: path, Message: msg, Code: CodeInvalidParameter, Subcode: subcode})
}

// ValidateEvent checks one server event (§2) the way Meta would, at time
// now, and returns every problem found; nil means Meta should accept it.
// Paths are relative to the event ("event_time", "user_data.em[0]").
// Checks: required fields and their types; event_time in seconds, within
// 7 days (62 for physical_store) and not in the future; action_source;
// event_source_url and client_user_agent for website events; user_data value
// shapes and SHA-256 hashing; the §2.2 thin-match rule; fbc/fbp formats
// (§5.1, §5.3); client_ip_address; custom_data value and currency (§4);
// Limited Data Use options (§9).
func ValidateEvent(ev json.RawMessage, now time.Time) []Problem {
	var v validator
	v.event(ev, now)
	return v.probs
}

// ValidatePayload checks a whole request body {"data":[...], ...} (§1.3):
// data present, an array of 1..1000 events, and every event as in
// ValidateEvent with paths prefixed "data[i].". The access token is not
// required here (the Client adds it).
func ValidatePayload(body []byte, now time.Time) []Problem {
	var v validator
	b := body[jsonscan.Space(body, 0):]
	if k := jsonKind(b); k != "object" {
		if k == "" {
			k = "empty"
		}
		v.add("", 0, "payload must be a JSON object, not %s", k)
		return v.probs
	}
	var data []byte
	var fieldProbs []Problem
	if err := eachMember(b, func(key, val []byte) bool {
		switch name := string(key); name {
		case "data":
			data = val
		case "access_token", "test_event_code", "partner_agent":
			if k := jsonKind(val); k != "string" && k != "null" {
				fieldProbs = append(fieldProbs, Problem{Path: name, Message: "must be a string, not " + k, Code: CodeInvalidParameter})
			}
		}
		return true
	}); err != nil {
		v.add("", 0, "payload is not valid JSON")
		return v.probs
	}
	v.probs = append(v.probs, fieldProbs...)
	switch k := jsonKind(data); k {
	case "", "null":
		v.add("data", 0, "is required")
		return v.probs
	case "array":
	default:
		v.add("data", 0, "must be an array of events, not %s", k)
		return v.probs
	}
	n := 0
	_ = eachElement(data, func(i int, ev []byte) {
		n++
		start := len(v.probs)
		v.event(ev, now)
		prefix := "data[" + strconv.Itoa(i) + "]"
		for j := start; j < len(v.probs); j++ {
			if v.probs[j].Path == "" {
				v.probs[j].Path = prefix
			} else {
				v.probs[j].Path = prefix + "." + v.probs[j].Path
			}
		}
	})
	switch {
	case n == 0:
		v.add("data", 0, "must contain at least one event")
	case n > MaxEventsPerRequest:
		v.add("data", 0, "has %d events, max %d", n, MaxEventsPerRequest)
	}
	return v.probs
}

func (v *validator) event(ev []byte, now time.Time) {
	ev = ev[jsonscan.Space(ev, 0):]
	if k := jsonKind(ev); k != "object" {
		if k == "" {
			k = "empty"
		}
		v.add("", 0, "event must be a JSON object, not %s", k)
		return
	}
	var e rawEvent
	var unknown []string
	err := eachMember(ev, func(key, val []byte) bool {
		switch string(key) {
		case "event_name":
			e.EventName = val
		case "event_time":
			e.EventTime = val
		case "action_source":
			e.ActionSource = val
		case "event_source_url":
			e.EventSourceURL = val
		case "event_id":
			e.EventID = val
		case "opt_out":
			e.OptOut = val
		case "user_data":
			e.UserData = val
		case "custom_data":
			e.CustomData = val
		case "data_processing_options":
			e.DPO = val
		case "data_processing_options_country":
			e.DPOCountry = val
		case "data_processing_options_state":
			e.DPOState = val
		case "app_data":
			e.AppData = val
		case "advertiser_tracking_enabled":
			e.AdvertiserTracking = val
		default:
			if name := string(key); !metarules.Has(metarules.EventFields, name) {
				unknown = append(unknown, name)
			}
		}
		return true
	})
	if err != nil {
		v.add("", 0, "event is not valid JSON")
		return
	}
	for _, name := range unknown {
		v.add(name, 0, "unknown field")
	}

	name, ok := v.requiredString("event_name", e.EventName)
	if ok && len(bytes.TrimSpace(name)) == 0 {
		v.add("event_name", 0, "is empty")
	}

	source, sourceOK := v.requiredString("action_source", e.ActionSource)
	if sourceOK && !metarules.IsActionSource(string(source)) {
		v.add("action_source", 0, "is not one of %s", metarules.ActionSourceList)
	}
	v.eventTime(e.EventTime, string(source), now)

	website := sourceOK && string(source) == "website"
	switch k := jsonKind(e.EventSourceURL); k {
	case "", "null":
		if website {
			v.add("event_source_url", 0, "is required for website events")
		}
	case "string":
		if s, _ := strValue(e.EventSourceURL); !isWebURL(string(s)) {
			v.add("event_source_url", 0, "is not an absolute http or https URL")
		}
	default:
		v.add("event_source_url", 0, "must be a string, not %s", k)
	}

	switch k := jsonKind(e.EventID); k {
	case "", "null":
	case "string":
		if s, _ := strValue(e.EventID); len(s) == 0 {
			v.add("event_id", 0, "is empty")
		}
	default:
		v.add("event_id", 0, "must be a string, not %s", k)
	}
	if k := jsonKind(e.OptOut); k != "" && k != "null" && k != "boolean" {
		v.add("opt_out", 0, "must be a boolean, not %s", k)
	}

	hasIP := v.userData(e.UserData, website)
	v.customData(e.CustomData, metarules.RequiresValue(string(name)))
	v.dataProcessing(&e, hasIP)
	v.appData(e.AppData, sourceOK && string(source) == "app")
	if k := jsonKind(e.AdvertiserTracking); k != "" && k != "null" && k != "boolean" {
		v.add("advertiser_tracking_enabled", 0, "must be true or false")
	}
}

// appData checks app_data: required for app events (metarules.RequiredFor),
// an object of the keys Meta knows.
func (v *validator) appData(raw []byte, app bool) {
	switch k := jsonKind(raw); k {
	case "", "null":
		if app {
			v.add("app_data", 0, "is required for app events")
		}
	case "object":
		_ = eachMember(raw, func(key, _ []byte) bool { // checked by the caller
			if name := string(key); !metarules.Has(metarules.AppDataFields, name) {
				v.add("app_data."+name, 0, "unknown field")
			}
			return true
		})
	default:
		v.add("app_data", 0, "must be an object, not %s", k)
	}
}

// requiredString reports a problem unless raw is a JSON string, and returns
// the decoded string.
func (v *validator) requiredString(path string, raw []byte) ([]byte, bool) {
	switch k := jsonKind(raw); k {
	case "", "null":
		v.add(path, 0, "is required")
		return nil, false
	case "string":
		s, ok := strValue(raw)
		if !ok {
			v.add(path, 0, "is not a valid JSON string")
		}
		return s, ok
	default:
		v.add(path, 0, "must be a string, not %s", k)
		return nil, false
	}
}

// parseInt parses a JSON integer literal; ok is false for fractions,
// exponents and overflow.
func parseInt(raw []byte) (n int64, ok bool) {
	neg := len(raw) > 0 && raw[0] == '-'
	if neg {
		raw = raw[1:]
	}
	if len(raw) == 0 || len(raw) > 18 {
		return 0, false
	}
	for _, c := range raw {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func (v *validator) eventTime(raw []byte, source string, now time.Time) {
	var t int64
	switch k := jsonKind(raw); k {
	case "", "null":
		v.add("event_time", 0, "is required")
		return
	case "number":
		var ok bool
		if t, ok = parseInt(raw); !ok {
			v.add("event_time", 0, "must be an integer number of Unix seconds")
			return
		}
	case "string":
		// Graph coerces numeric and ISO 8601 strings (§10 item 12).
		s, _ := strValue(raw)
		var ok bool
		if t, ok = metarules.ParseEventTime(string(s)); !ok {
			v.add("event_time", 0, "must be an integer number of Unix seconds, or an ISO 8601 date-time with a time zone")
			return
		}
	default:
		v.add("event_time", 0, "must be an integer number of Unix seconds, not %s", k)
		return
	}
	switch {
	case t > metarules.MaxEventTime:
		v.add("event_time", 0, "looks like milliseconds; send Unix seconds")
		return
	case t <= 0:
		v.add("event_time", 0, "must be a positive number of Unix seconds")
		return
	}
	switch metarules.CheckTime(t, source, now) {
	case metarules.TimeTooOld:
		v.add("event_time", SubcodeTooOld, "%s", metarules.TooOldMessage(source))
	case metarules.TimeFuture:
		v.add("event_time", 0, "%s", metarules.FutureMessage)
	}
}

type rawUserData struct {
	hashed                     [10][]byte // by index in hashedKeys
	externalID, ip, ua, fb, fp []byte
	other                      []string // non-empty keys we only pass through
}

// userData validates user_data (§3) and reports whether it carries a valid
// client_ip_address.
func (v *validator) userData(raw []byte, website bool) (hasIP bool) {
	switch k := jsonKind(raw); k {
	case "", "null":
		v.add("user_data", 0, "is required")
		return false
	case "object":
	default:
		v.add("user_data", 0, "must be an object, not %s", k)
		return false
	}
	var ud rawUserData
	_ = eachMember(raw, func(key, val []byte) bool { // checked by the caller
		name := key
		for i, h := range hashedKeys {
			if string(name) == h {
				ud.hashed[i] = val
				return true
			}
		}
		switch n := string(name); {
		case n == "external_id":
			ud.externalID = val
		case n == "client_ip_address":
			ud.ip = val
		case n == "client_user_agent":
			ud.ua = val
		case n == "fbc":
			ud.fb = val
		case n == "fbp":
			ud.fp = val
		case metarules.Has(metarules.HashedSingleFields, n):
			if s, ok := v.singleString(n, val); ok {
				if !isHashed(s) {
					v.add("user_data."+n, 0, "is not a SHA-256 hex hash (64 lowercase hex characters)")
				} else {
					ud.other = append(ud.other, n)
				}
			}
		case metarules.Has(metarules.PlainFields, n):
			// Other identifiers (fb_login_id, lead_id, subscription_id,
			// madid, ...) pass through; a non-empty one counts as customer
			// information.
			if k := jsonKind(val); k != "null" && string(val) != `""` && !(k == "array" && isEmptyArray(val)) {
				ud.other = append(ud.other, n)
			}
		default:
			v.add("user_data."+n, 0, "unknown field")
		}
		return true
	})

	// keys are the customer information keys with a valid value, for the
	// §2.2 rule (metarules.IsThin).
	keys := ud.other
	for i, key := range hashedKeys {
		if ud.hashed[i] != nil && v.hashable(key, ud.hashed[i], true) {
			keys = append(keys, key)
		}
	}
	if ud.externalID != nil && v.hashable("external_id", ud.externalID, false) {
		keys = append(keys, "external_id")
	}
	if ud.ip != nil {
		if s, ok := v.singleString("client_ip_address", ud.ip); ok {
			if _, err := netip.ParseAddr(string(s)); err != nil {
				v.add("user_data.client_ip_address", 0, metarules.IPMessage)
			} else {
				hasIP = true
				keys = append(keys, "client_ip_address")
			}
		}
	}
	hasUA := false
	if ud.ua != nil {
		if _, ok := v.singleString("client_user_agent", ud.ua); ok {
			hasUA = true
			keys = append(keys, "client_user_agent")
		}
	}
	if website && !hasUA {
		v.add("user_data.client_user_agent", 0, "is required for website events")
	}
	for _, c := range []struct {
		key     string
		raw     []byte
		subcode int
	}{{"fbc", ud.fb, SubcodeBadClickID}, {"fbp", ud.fp, 0}} {
		if c.raw == nil {
			continue
		}
		s, ok := v.singleString(c.key, c.raw)
		if !ok {
			continue
		}
		if !metarules.IsCookieValue(s) {
			v.add("user_data."+c.key, c.subcode, metarules.CookieShapeMessage)
			continue
		}
		keys = append(keys, c.key)
	}
	if metarules.IsThin(keys) {
		v.add("user_data", SubcodeThinMatch, "%s", metarules.ThinMessage(keys))
	}
	return hasIP
}

// hashable checks a string-or-array-of-strings user_data field. With hashed
// set each string must be a SHA-256 hex digest (§3.2); otherwise (for
// external_id) any non-empty string. It reports whether at least one valid
// value is present.
func (v *validator) hashable(key string, raw []byte, hashed bool) bool {
	path := "user_data." + key
	check := func(p func() string, raw []byte) bool {
		s, ok := strValue(raw)
		switch {
		case !ok:
			v.add(p(), 0, "is not a valid JSON string")
		case !hashed:
			if len(s) == 0 {
				v.add(p(), 0, "is empty")
				return false
			}
		case string(s) == emptySHA256:
			v.add(p(), 0, "is the SHA-256 of an empty string")
			return false
		case !isHashed(s):
			v.add(p(), 0, "is not a SHA-256 hex hash (64 lowercase hex characters)")
			return false
		}
		return ok
	}
	switch k := jsonKind(raw); k {
	case "null":
		return false
	case "string":
		return check(func() string { return path }, raw)
	case "array":
		found := false
		_ = eachElement(raw, func(i int, r []byte) { // checked by the caller
			p := func() string { return path + "[" + strconv.Itoa(i) + "]" }
			if k := jsonKind(r); k != "string" {
				v.add(p(), 0, "must be a string, not %s", k)
				return
			}
			if check(p, r) {
				found = true
			}
		})
		return found
	default:
		v.add(path, 0, "must be a string or an array of strings, not %s", k)
		return false
	}
}

// singleString checks a plain string user_data field and returns its value;
// ok is false (and a problem added) unless it is a non-empty string. null
// counts as absent.
func (v *validator) singleString(key string, raw []byte) ([]byte, bool) {
	switch k := jsonKind(raw); k {
	case "null":
		return nil, false
	case "string":
		s, ok := strValue(raw)
		if !ok {
			v.add("user_data."+key, 0, "is not a valid JSON string")
			return nil, false
		}
		if len(s) == 0 {
			v.add("user_data."+key, 0, "is empty")
			return nil, false
		}
		return s, true
	default:
		v.add("user_data."+key, 0, "must be a string, not %s", k)
		return nil, false
	}
}

func (v *validator) customData(raw []byte, purchase bool) {
	var value, currency []byte
	switch k := jsonKind(raw); k {
	case "", "null":
	case "object":
		_ = eachMember(raw, func(key, val []byte) bool { // checked by the caller
			switch string(key) {
			case "value":
				value = val
			case "currency":
				currency = val
			}
			return true
		})
	default:
		v.add("custom_data", 0, "must be an object, not %s", k)
		return
	}
	hasValue := false
	switch k := jsonKind(value); k {
	case "", "null":
		if purchase {
			v.add("custom_data.value", 0, "is required for Purchase events")
		}
	case "number":
		hasValue = true
	case "string":
		// Graph coerces a numeric string, as Meta's SDK does (§4).
		s, _ := strValue(value)
		if _, ok := metarules.ParseValue(string(s)); !ok {
			v.add("custom_data.value", 0, "must be a number (or a string holding one)")
		}
		hasValue = true
	default:
		v.add("custom_data.value", 0, "must be a number, not %s", k)
	}
	switch k := jsonKind(currency); k {
	case "", "null":
		if purchase {
			v.add("custom_data.currency", 0, "is required for Purchase events")
		} else if hasValue {
			v.add("custom_data.currency", 0, "is required when value is set")
		}
	case "string":
		if s, _ := strValue(currency); !metarules.IsCurrency(string(s)) {
			v.add("custom_data.currency", 0, "is not an ISO 4217 currency code")
		}
	default:
		v.add("custom_data.currency", 0, "must be a string, not %s", k)
	}
}

// dataProcessing checks the Limited Data Use fields (§9).
func (v *validator) dataProcessing(e *rawEvent, hasIP bool) {
	ldu := false
	switch k := jsonKind(e.DPO); k {
	case "", "null":
	case "array":
		_ = eachElement(e.DPO, func(i int, r []byte) { // checked by the caller
			p := "data_processing_options[" + strconv.Itoa(i) + "]"
			if k := jsonKind(r); k != "string" {
				v.add(p, 0, "must be a string, not %s", k)
				return
			}
			if s, _ := strValue(r); string(s) != metarules.LDU {
				v.add(p, 0, `must be "LDU"`)
				return
			}
			ldu = true
		})
	default:
		v.add("data_processing_options", 0, "must be an array of strings, not %s", k)
	}
	country, hasCountry := v.dpoInt("data_processing_options_country", e.DPOCountry)
	if hasCountry && !metarules.IsDPOCountry(country) {
		v.add("data_processing_options_country", 0, "must be 0 (geolocate) or 1 (United States)")
	}
	state, hasState := v.dpoInt("data_processing_options_state", e.DPOState)
	if hasState && !metarules.IsDPOState(state) {
		v.add("data_processing_options_state", 0, "must be 0 (geolocate) or a US state code from 1000 (California)")
	}
	if ldu && metarules.LDUNeedsLocation(hasIP, hasCountry, hasState) {
		v.add("data_processing_options_state", 0, "%s", metarules.LDULocationMessage)
	}
}

func (v *validator) dpoInt(path string, raw []byte) (int64, bool) {
	switch k := jsonKind(raw); k {
	case "", "null":
		return 0, false
	case "number":
		n, ok := parseInt(raw)
		if !ok {
			v.add(path, 0, "must be an integer")
		}
		return n, ok
	default:
		v.add(path, 0, "must be an integer, not %s", k)
		return 0, false
	}
}

// jsonKind names the JSON type of a raw value by its first byte: "" when
// absent, else object, array, string, number, boolean or null.
func jsonKind(raw []byte) string {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return "object"
		case '[':
			return "array"
		case '"':
			return "string"
		case 't', 'f':
			return "boolean"
		case 'n':
			return "null"
		default:
			return "number"
		}
	}
	return ""
}

func isEmptyArray(raw []byte) bool {
	return len(bytes.TrimSpace(raw[1:len(raw)-1])) == 0
}

func isLowerHex(s []byte) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isHashed reports whether s is a SHA-256 hex digest as Meta wants it: 64
// lowercase hex, or 64 hex + "." + a parameter-builder appendix (§3.2).
func isHashed(s []byte) bool {
	switch {
	case len(s) == 64:
		return isLowerHex(s)
	case len(s) > 65 && s[64] == '.':
		return isLowerHex(s[:64]) && metarules.IsAppendix(s[65:])
	}
	return false
}

func isWebURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme == "http" || scheme == "https"
}
