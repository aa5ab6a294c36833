package capi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Validation limits (§2).
const (
	// MaxEventAge is how old an event_time may be (D-SE): 7 days.
	MaxEventAge = 7 * 24 * time.Hour
	// MaxPhysicalStoreAge is the window for action_source physical_store
	// events (D-SE): 62 days.
	MaxPhysicalStoreAge = 62 * 24 * time.Hour
	// MaxFutureSkew is how far in the future an event_time may be. Meta does
	// not document a limit but rejects future times (§2, §10 item 12); this
	// tolerates small clock skew between hosts. Clamp browser times to now.
	MaxFutureSkew = 5 * time.Minute
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

// actionSources are the allowed action_source values (§2, D-SE).
var actionSources = map[string]bool{
	"email": true, "website": true, "app": true, "phone_call": true, "chat": true,
	"physical_store": true, "system_generated": true, "business_messaging": true, "other": true,
}

// hashedKeys are the user_data keys Meta wants as SHA-256 hex (§3.1), in the
// order problems are reported.
var hashedKeys = []string{"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country"}

// emptySHA256 is sha256(""): a normalizer bug, never a real value (§3.4).
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

type rawEvent struct {
	EventName      json.RawMessage `json:"event_name"`
	EventTime      json.RawMessage `json:"event_time"`
	ActionSource   json.RawMessage `json:"action_source"`
	EventSourceURL json.RawMessage `json:"event_source_url"`
	EventID        json.RawMessage `json:"event_id"`
	OptOut         json.RawMessage `json:"opt_out"`
	UserData       json.RawMessage `json:"user_data"`
	CustomData     json.RawMessage `json:"custom_data"`
	DPO            json.RawMessage `json:"data_processing_options"`
	DPOCountry     json.RawMessage `json:"data_processing_options_country"`
	DPOState       json.RawMessage `json:"data_processing_options_state"`
}

type rawCustomData struct {
	Value    json.RawMessage `json:"value"`
	Currency json.RawMessage `json:"currency"`
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
	var top struct {
		Data          json.RawMessage `json:"data"`
		AccessToken   json.RawMessage `json:"access_token"`
		TestEventCode json.RawMessage `json:"test_event_code"`
		PartnerAgent  json.RawMessage `json:"partner_agent"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		if k := jsonKind(bytes.TrimSpace(body)); k != "object" && k != "" {
			v.add("", 0, "payload must be a JSON object, not %s", k)
		} else {
			v.add("", 0, "payload is not valid JSON")
		}
		return v.probs
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"access_token", top.AccessToken}, {"test_event_code", top.TestEventCode}, {"partner_agent", top.PartnerAgent}} {
		if k := jsonKind(f.raw); k != "" && k != "string" && k != "null" {
			v.add(f.name, 0, "must be a string, not %s", k)
		}
	}
	switch k := jsonKind(top.Data); k {
	case "", "null":
		v.add("data", 0, "is required")
		return v.probs
	case "array":
	default:
		v.add("data", 0, "must be an array of events, not %s", k)
		return v.probs
	}
	var events []json.RawMessage
	if err := json.Unmarshal(top.Data, &events); err != nil {
		v.add("data", 0, "is not a valid JSON array")
		return v.probs
	}
	switch {
	case len(events) == 0:
		v.add("data", 0, "must contain at least one event")
	case len(events) > MaxEventsPerRequest:
		v.add("data", 0, "has %d events, max %d", len(events), MaxEventsPerRequest)
	}
	for i, ev := range events {
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
	}
	return v.probs
}

func (v *validator) event(ev json.RawMessage, now time.Time) {
	var e rawEvent
	if k := jsonKind(ev); k != "object" {
		if k == "" {
			k = "empty"
		}
		v.add("", 0, "event must be a JSON object, not %s", k)
		return
	}
	if err := json.Unmarshal(ev, &e); err != nil {
		v.add("", 0, "event is not valid JSON")
		return
	}

	name, ok := v.requiredString("event_name", e.EventName)
	if ok && strings.TrimSpace(name) == "" {
		v.add("event_name", 0, "is empty")
	}

	source, sourceOK := v.requiredString("action_source", e.ActionSource)
	if sourceOK && !actionSources[source] {
		v.add("action_source", 0, "is not one of email, website, app, phone_call, chat, physical_store, system_generated, business_messaging, other")
	}
	v.eventTime(e.EventTime, source, now)

	website := sourceOK && source == "website"
	switch k := jsonKind(e.EventSourceURL); k {
	case "", "null":
		if website {
			v.add("event_source_url", 0, "is required for website events")
		}
	case "string":
		s, _ := rawString(e.EventSourceURL)
		if !isWebURL(s) {
			v.add("event_source_url", 0, "is not an absolute http or https URL")
		}
	default:
		v.add("event_source_url", 0, "must be a string, not %s", k)
	}

	switch k := jsonKind(e.EventID); k {
	case "", "null":
	case "string":
		if s, _ := rawString(e.EventID); s == "" {
			v.add("event_id", 0, "is empty")
		}
	default:
		v.add("event_id", 0, "must be a string, not %s", k)
	}
	if k := jsonKind(e.OptOut); k != "" && k != "null" && k != "boolean" {
		v.add("opt_out", 0, "must be a boolean, not %s", k)
	}

	hasIP := v.userData(e.UserData, website)
	v.customData(e.CustomData, name)
	v.dataProcessing(e, hasIP)
}

// requiredString reports a problem unless raw is a JSON string, and returns
// the decoded string.
func (v *validator) requiredString(path string, raw json.RawMessage) (string, bool) {
	switch k := jsonKind(raw); k {
	case "", "null":
		v.add(path, 0, "is required")
		return "", false
	case "string":
		s, ok := rawString(raw)
		if !ok {
			v.add(path, 0, "is not a valid JSON string")
		}
		return s, ok
	default:
		v.add(path, 0, "must be a string, not %s", k)
		return "", false
	}
}

func (v *validator) eventTime(raw json.RawMessage, source string, now time.Time) {
	switch k := jsonKind(raw); k {
	case "", "null":
		v.add("event_time", 0, "is required")
		return
	case "number":
	default:
		v.add("event_time", 0, "must be an integer number of Unix seconds, not %s", k)
		return
	}
	t, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		v.add("event_time", 0, "must be an integer number of Unix seconds")
		return
	}
	// 1e11 s is the year 5138; any larger value is almost surely a
	// millisecond timestamp (§10 item 12).
	if t > 1e11 {
		v.add("event_time", 0, "looks like milliseconds; send Unix seconds")
		return
	}
	maxAge := MaxEventAge
	if source == "physical_store" {
		maxAge = MaxPhysicalStoreAge
	}
	at := time.Unix(t, 0)
	switch {
	case at.Before(now.Add(-maxAge)):
		v.add("event_time", SubcodeTooOld, "is more than %d days old", int(maxAge/(24*time.Hour)))
	case at.After(now.Add(MaxFutureSkew)):
		v.add("event_time", 0, "is in the future")
	}
}

// Thin-match bits (§2.2): the keys that appear in Meta's "insufficient"
// sets. Any other customer-information key makes an event matchable.
const (
	tmCT = 1 << iota
	tmCountry
	tmST
	tmZP
	tmGE
	tmUA
	tmDB
	tmFN
	tmLN
	tmOther
)

var thinBits = map[string]int{
	"ct": tmCT, "country": tmCountry, "st": tmST, "zp": tmZP, "ge": tmGE,
	"client_user_agent": tmUA, "db": tmDB, "fn": tmFN, "ln": tmLN,
}

// thinSets are the §2.2 sets; user_data whose keys are a subset of one of
// them is rejected with 100/2804050.
var thinSets = []int{
	tmCT | tmCountry | tmST | tmZP | tmGE | tmUA,
	tmDB | tmUA,
	tmFN | tmGE,
	tmLN | tmGE,
}

// userData validates user_data (§3) and reports whether it carries a
// client_ip_address.
func (v *validator) userData(raw json.RawMessage, website bool) (hasIP bool) {
	switch k := jsonKind(raw); k {
	case "", "null":
		v.add("user_data", 0, "is required")
		return false
	case "object":
	default:
		v.add("user_data", 0, "must be an object, not %s", k)
		return false
	}
	var ud map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ud); err != nil {
		v.add("user_data", 0, "is not a valid JSON object")
		return false
	}
	present := 0
	mark := func(key string) {
		if b, ok := thinBits[key]; ok {
			present |= b
		} else {
			present |= tmOther
		}
	}
	for _, key := range hashedKeys {
		if r, ok := ud[key]; ok && v.hashable(key, r, true) {
			mark(key)
		}
	}
	if r, ok := ud["external_id"]; ok && v.hashable("external_id", r, false) {
		mark("external_id")
	}

	if r, ok := ud["client_ip_address"]; ok {
		if s, ok := v.singleString("client_ip_address", r); ok {
			if _, err := netip.ParseAddr(s); err != nil {
				v.add("user_data.client_ip_address", 0, "is not a valid IPv4 or IPv6 address")
			} else {
				hasIP = true
				mark("client_ip_address")
			}
		}
	}
	if r, ok := ud["client_user_agent"]; ok {
		if _, ok := v.singleString("client_user_agent", r); ok {
			mark("client_user_agent")
		}
	}
	if website && present&tmUA == 0 {
		v.add("user_data.client_user_agent", 0, "is required for website events")
	}
	for _, key := range []string{"fbc", "fbp"} {
		r, ok := ud[key]
		if !ok {
			continue
		}
		s, ok := v.singleString(key, r)
		if !ok {
			continue
		}
		if !IsCookieValue(s) {
			sub := 0
			if key == "fbc" {
				sub = SubcodeBadClickID
			}
			v.add("user_data."+key, sub, "is not in the fb.<subdomain index>.<creation time>.<value>[.<appendix>] format")
			continue
		}
		mark(key)
	}
	// Other identifiers (fb_login_id, lead_id, subscription_id, madid, ...)
	// are passed through; any non-empty one counts as customer information.
	for key, r := range ud {
		if _, known := thinBits[key]; known || isCheckedUserKey(key) {
			continue
		}
		if k := jsonKind(r); k != "null" && string(r) != `""` && !(k == "array" && isEmptyArray(r)) {
			mark(key)
		}
	}

	for _, set := range thinSets {
		if present&^set == 0 {
			if present == 0 {
				v.add("user_data", SubcodeThinMatch, "has no customer information parameters")
			} else {
				v.add("user_data", SubcodeThinMatch, "has too little customer information to match (see the baseline matching rule)")
			}
			break
		}
	}
	return hasIP
}

func isCheckedUserKey(key string) bool {
	switch key {
	case "em", "ph", "external_id", "client_ip_address", "fbc", "fbp":
		return true
	}
	return false
}

// hashable checks a string-or-array-of-strings user_data field. With hashed
// set each string must be a SHA-256 hex digest (§3.2); otherwise (for
// external_id) any non-empty string. It reports whether at least one valid
// value is present.
func (v *validator) hashable(key string, raw json.RawMessage, hashed bool) bool {
	path := "user_data." + key
	check := func(p string, s string) bool {
		switch {
		case !hashed:
			if s == "" {
				v.add(p, 0, "is empty")
				return false
			}
		case s == emptySHA256:
			v.add(p, 0, "is the SHA-256 of an empty string")
			return false
		case !isHashed(s):
			v.add(p, 0, "is not a SHA-256 hex hash (64 lowercase hex characters)")
			return false
		}
		return true
	}
	switch k := jsonKind(raw); k {
	case "null":
		return false
	case "string":
		s, ok := rawString(raw)
		if !ok {
			v.add(path, 0, "is not a valid JSON string")
			return false
		}
		return check(path, s)
	case "array":
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			v.add(path, 0, "is not a valid JSON array")
			return false
		}
		found := false
		for i, r := range list {
			p := path + "[" + strconv.Itoa(i) + "]"
			if k := jsonKind(r); k != "string" {
				v.add(p, 0, "must be a string, not %s", k)
				continue
			}
			s, ok := rawString(r)
			if !ok {
				v.add(p, 0, "is not a valid JSON string")
				continue
			}
			if check(p, s) {
				found = true
			}
		}
		return found
	default:
		v.add(path, 0, "must be a string or an array of strings, not %s", k)
		return false
	}
}

// singleString checks a plain string user_data field and returns its value;
// ok is false (and a problem added) unless it is a non-empty string. null
// counts as absent.
func (v *validator) singleString(key string, raw json.RawMessage) (string, bool) {
	switch k := jsonKind(raw); k {
	case "null":
		return "", false
	case "string":
		s, ok := rawString(raw)
		if !ok {
			v.add("user_data."+key, 0, "is not a valid JSON string")
			return "", false
		}
		if s == "" {
			v.add("user_data."+key, 0, "is empty")
			return "", false
		}
		return s, true
	default:
		v.add("user_data."+key, 0, "must be a string, not %s", k)
		return "", false
	}
}

func (v *validator) customData(raw json.RawMessage, eventName string) {
	var cd rawCustomData
	switch k := jsonKind(raw); k {
	case "", "null":
	case "object":
		if err := json.Unmarshal(raw, &cd); err != nil {
			v.add("custom_data", 0, "is not a valid JSON object")
			return
		}
	default:
		v.add("custom_data", 0, "must be an object, not %s", k)
		return
	}
	purchase := eventName == "Purchase"
	switch k := jsonKind(cd.Value); k {
	case "", "null":
		if purchase {
			v.add("custom_data.value", 0, "is required for Purchase events")
		}
	case "number":
	default:
		v.add("custom_data.value", 0, "must be a number, not %s", k)
	}
	switch k := jsonKind(cd.Currency); k {
	case "", "null":
		if purchase {
			v.add("custom_data.currency", 0, "is required for Purchase events")
		}
	case "string":
		if s, _ := rawString(cd.Currency); !IsCurrency(s) {
			v.add("custom_data.currency", 0, "is not an ISO 4217 currency code")
		}
	default:
		v.add("custom_data.currency", 0, "must be a string, not %s", k)
	}
}

// dataProcessing checks the Limited Data Use fields (§9).
func (v *validator) dataProcessing(e rawEvent, hasIP bool) {
	ldu := false
	switch k := jsonKind(e.DPO); k {
	case "", "null":
	case "array":
		var list []json.RawMessage
		if err := json.Unmarshal(e.DPO, &list); err != nil {
			v.add("data_processing_options", 0, "is not a valid JSON array")
			break
		}
		for i, r := range list {
			p := "data_processing_options[" + strconv.Itoa(i) + "]"
			if k := jsonKind(r); k != "string" {
				v.add(p, 0, "must be a string, not %s", k)
				continue
			}
			if s, _ := rawString(r); s != "LDU" {
				v.add(p, 0, `must be "LDU"`)
				continue
			}
			ldu = true
		}
	default:
		v.add("data_processing_options", 0, "must be an array of strings, not %s", k)
	}
	country, hasCountry := v.dpoInt("data_processing_options_country", e.DPOCountry)
	if hasCountry && country != 0 && country != 1 {
		v.add("data_processing_options_country", 0, "must be 0 (geolocate) or 1 (United States)")
	}
	state, hasState := v.dpoInt("data_processing_options_state", e.DPOState)
	if hasState && state != 0 && (state < 1000 || state > 1099) {
		v.add("data_processing_options_state", 0, "must be 0 (geolocate) or a US state code from 1000 (California)")
	}
	if ldu && !hasIP && (!hasCountry || !hasState) {
		v.add("data_processing_options_state", 0, "country and state are required with LDU when no client_ip_address is sent")
	}
}

func (v *validator) dpoInt(path string, raw json.RawMessage) (int64, bool) {
	switch k := jsonKind(raw); k {
	case "", "null":
		return 0, false
	case "number":
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			v.add(path, 0, "must be an integer")
			return 0, false
		}
		return n, true
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

// rawString decodes a JSON string literal, without allocation tricks when it
// has no escapes.
func rawString(raw []byte) (string, bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func isEmptyArray(raw []byte) bool {
	return len(bytes.TrimSpace(raw[1:len(raw)-1])) == 0
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isHashed reports whether s is a SHA-256 hex digest as Meta wants it: 64
// lowercase hex, or 64 hex + "." + a parameter-builder appendix (§3.2).
func isHashed(s string) bool {
	switch {
	case len(s) == 64:
		return isLowerHex(s)
	case len(s) > 65 && s[64] == '.':
		return isLowerHex(s[:64]) && IsAppendix(s[65:])
	}
	return false
}

// IsAppendix reports whether s is a Parameter Builder appendix (§5.3): a
// legacy 2-character language token (AQ Ag Aw BA BQ Bg), or 8 base64url
// characters decoding to 6 bytes with format byte 0x01 and a language index
// 1..6.
func IsAppendix(s string) bool {
	switch len(s) {
	case 2:
		switch s {
		case "AQ", "Ag", "Aw", "BA", "BQ", "Bg":
			return true
		}
		return false
	case 8:
		var b [6]byte
		n, err := base64.RawURLEncoding.Decode(b[:], []byte(s))
		return err == nil && n == 6 && b[0] == 0x01 && b[1] >= 1 && b[1] <= 6
	}
	return false
}

// IsCookieValue reports whether s has the fbp/fbc shape
// fb.<subdomain index digit>.<creation time digits>.<value>[.<appendix>]
// (§5.1, §5.3). The value (random number or fbclid) is case-sensitive and
// only checked to be non-empty.
func IsCookieValue(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 && len(parts) != 5 {
		return false
	}
	if parts[0] != "fb" || len(parts[1]) != 1 || parts[1][0] < '0' || parts[1][0] > '9' {
		return false
	}
	if parts[2] == "" || strings.Trim(parts[2], "0123456789") != "" || parts[3] == "" {
		return false
	}
	return len(parts) == 4 || IsAppendix(parts[4])
}

func isWebURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme == "http" || scheme == "https"
}
