// Package metarules is capirelay's one rulebook of Meta's Conversions API
// rules (spec/meta-capi.md, cited as §N): how far back and ahead an
// event_time may be per action source, the action sources, the fields each
// source requires, the thin-match sets, which fields the server event,
// user_data and app_data objects may carry, the coercions Graph applies,
// the currencies and the per-request limits.
//
// Every path that judges an event asks here: the ingest pipeline (package
// event), the pre-send validator (package capi, which `capirelay validate`
// and the sandbox destination use) and the fake Graph API of the tests.
// It is a leaf package, imported by event and capi alike, so the rules
// cannot drift apart again: before it, event and capi each had their own
// windows, future skew, action sources, thin sets and currency list, and
// disagreed (a 20-day-old store sale, 5 against 10 minutes of skew).
//
// Nothing here knows JSON or HTTP; callers pass values they decoded.
package metarules

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// MaxEventsPerRequest is Meta's limit of events in one request (§1.5).
const MaxEventsPerRequest = 1000

// Windows: how far back Meta accepts an event_time (§2, D-SE). Every
// action source has seven days except physical_store, whose sales may be
// uploaded for 62 days.
const (
	DefaultWindow       = 7 * 24 * time.Hour
	PhysicalStoreWindow = 62 * 24 * time.Hour
)

// Window is how far back an event_time of actionSource may be.
func Window(actionSource string) time.Duration {
	if actionSource == "physical_store" {
		return PhysicalStoreWindow
	}
	return DefaultWindow
}

// FutureSkew is how far ahead of the clock an event_time may be. Meta
// documents no limit but rejects future times (§2, §10 item 12); this
// tolerates clocks a little ahead of ours, and capirelay clamps such a time
// to now before sending, so Meta never sees a future event_time.
const FutureSkew = 10 * time.Minute

// MaxEventTime is the largest event_time taken as seconds: 1e11 s is the
// year 5138, so anything larger is almost surely milliseconds (§10 item 12).
const MaxEventTime = 100_000_000_000

// TimeVerdict is what the rules say about an event_time.
type TimeVerdict int

const (
	TimeOK     TimeVerdict = iota
	TimeAhead              // ahead of now by at most FutureSkew: clamp to now
	TimeFuture             // ahead by more than FutureSkew: refused
	TimeTooOld             // older than Window(actionSource): refused, 100/2804003
)

// CheckTime judges event_time t (Unix seconds) of an actionSource event
// at now.
func CheckTime(t int64, actionSource string, now time.Time) TimeVerdict {
	sec := now.Unix()
	switch {
	case t > sec+int64(FutureSkew/time.Second):
		return TimeFuture
	case t > sec:
		return TimeAhead
	case t < sec-int64(Window(actionSource)/time.Second):
		return TimeTooOld
	}
	return TimeOK
}

// TooOldMessage says why an event_time of actionSource is too old.
func TooOldMessage(actionSource string) string {
	days := strconv.Itoa(int(Window(actionSource) / (24 * time.Hour)))
	if actionSource == "physical_store" {
		return "is older than Meta's " + days + "-day window for physical_store events"
	}
	return "is older than Meta's " + days + "-day window"
}

// FutureMessage says why an event_time is refused as in the future.
const FutureMessage = "is in the future (more than 10 minutes ahead of the relay's clock)"

// ParseEventTime reads an event_time sent as a string, which Graph coerces
// (§10 item 12): decimal Unix seconds ("1733500000"), or an ISO 8601 /
// RFC 3339 date-time with a zone ("2026-12-06T10:00:00Z",
// "2026-12-06T11:00:00+01:00", fractions allowed). ok is false for
// anything else.
func ParseEventTime(s string) (sec int64, ok bool) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Unix(), true
		}
	}
	return 0, false
}

// ParseValue reads a custom_data.value sent as a string, which Graph
// coerces as Meta's SDK does (parseFloat, §4): a plain decimal number such
// as "49.90" or "-3" or "1e3". ok is false for anything else ("", "abc",
// "49,90", "NaN", "Inf").
func ParseValue(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9', c == '.', c == '-', c == '+', c == 'e', c == 'E':
		default:
			return 0, false // rules out NaN, Inf, hex floats and underscores
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// ActionSources are the values Meta accepts for action_source (§2, D-SE),
// in the order messages list them.
var ActionSources = []string{"website", "app", "email", "phone_call", "chat", "physical_store",
	"system_generated", "business_messaging", "other"}

// ActionSourceList is ActionSources for messages.
var ActionSourceList = strings.Join(ActionSources, ", ")

// IsActionSource reports whether s is one of ActionSources (exactly:
// callers fold case and space first where they forgive them).
func IsActionSource(s string) bool {
	for _, a := range ActionSources {
		if s == a {
			return true
		}
	}
	return false
}

// Required lists the fields every event must carry (§2), as JSON paths.
var Required = []string{"event_name", "event_time", "action_source", "user_data"}

// RequiredFor lists the fields an event of actionSource must carry beside
// Required (§2.1, D-SE): website events their page URL and the browser's
// user agent, app events their app_data.
func RequiredFor(actionSource string) []string {
	switch actionSource {
	case "website":
		return []string{"event_source_url", "user_data.client_user_agent"}
	case "app":
		return []string{"app_data"}
	}
	return nil
}

// ThinSets are the §2.2 baseline matching sets (D-BP, D-CI): an event whose
// customer information keys are all inside one of them cannot be matched
// and Meta refuses it with 100/2804050.
var ThinSets = [][]string{
	{"ct", "country", "st", "zp", "ge", "client_user_agent"},
	{"db", "client_user_agent"},
	{"fn", "ge"},
	{"ln", "ge"},
}

// IsThin reports whether user_data with (only) these keys carrying a value
// is refused by the §2.2 rule: no key at all, or all of them in one of
// ThinSets.
func IsThin(keys []string) bool {
	if len(keys) == 0 {
		return true
	}
	for _, set := range ThinSets {
		if subset(keys, set) {
			return true
		}
	}
	return false
}

func subset(keys, set []string) bool {
	for _, k := range keys {
		found := false
		for _, s := range set {
			if k == s {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// ThinMessage says why thin user_data is refused; keys are what it has.
func ThinMessage(keys []string) string {
	if len(keys) == 0 {
		return "has no usable customer information (em, ph, fbp, fbc, client_ip_address, external_id, ...)"
	}
	return "has too little customer information to match (" + strings.Join(keys, ", ") +
		"); add em, ph, fbp, fbc, external_id or client_ip_address"
}

// EventFields are the keys a server event object may have (§2, D-SE, and
// the fields Meta's SDK 24.0.1 sends).
var EventFields = []string{
	"event_name", "event_time", "event_id", "action_source", "event_source_url", "referrer_url",
	"opt_out", "user_data", "custom_data", "data_processing_options", "data_processing_options_country",
	"data_processing_options_state", "customer_segmentation", "original_event_data", "attribution_data",
	"app_data", "messaging_channel", "advertiser_tracking_enabled", "advanced_measurement_table",
}

// UserDataKind is how Meta takes a user_data key (§3.1).
type UserDataKind uint8

const (
	// HashedList keys take a string or a list of strings, each SHA-256
	// of the normalized value.
	HashedList UserDataKind = iota + 1
	// IDList is external_id: a list too, but it may be sent as it is.
	IDList
	// Plain keys take one value, sent as it is, never hashed.
	Plain
	// HashedSingle keys are the SDK's extra hashed keys, one string each.
	HashedSingle
)

// UserDataKey is one row of the user_data rulebook.
type UserDataKey struct {
	Name string
	Kind UserDataKind
}

// UserDataKeys are every key user_data may have, in Meta's order: the one
// place a new key is added (event.UserData needs a field tagged with its
// name, in the same order; event's tests check both).
var UserDataKeys = []UserDataKey{
	{"em", HashedList}, {"ph", HashedList}, {"fn", HashedList}, {"ln", HashedList}, {"db", HashedList},
	{"ge", HashedList}, {"ct", HashedList}, {"st", HashedList}, {"zp", HashedList}, {"country", HashedList},
	{ExternalID, IDList},
	{"client_ip_address", Plain}, {"client_user_agent", Plain}, {"fbc", Plain}, {"fbp", Plain},
	{"subscription_id", Plain}, {"fb_login_id", Plain}, {"lead_id", Plain}, {"anon_id", Plain},
	{"madid", Plain}, {"page_id", Plain}, {"page_scoped_user_id", Plain}, {"ctwa_clid", Plain},
	{"ig_account_id", Plain}, {"ig_sid", Plain},
	{"f5first", HashedSingle}, {"f5last", HashedSingle}, {"fi", HashedSingle}, {"dobd", HashedSingle},
	{"dobm", HashedSingle}, {"doby", HashedSingle}, {"app_user_id", HashedSingle},
}

// The user_data keys by kind, and all of them (UserDataFields), in Meta's
// order: views of UserDataKeys.
var (
	HashedListFields   = userDataNames(HashedList)
	HashedSingleFields = userDataNames(HashedSingle)
	PlainFields        = userDataNames(Plain)
	UserDataFields     = userDataNames(0)
)

// ExternalID is the list key that need not be hashed.
const ExternalID = "external_id"

// userDataNames lists the names of the keys of kind k (0: all of them).
func userDataNames(k UserDataKind) []string {
	var out []string
	for _, key := range UserDataKeys {
		if k == 0 || key.Kind == k {
			out = append(out, key.Name)
		}
	}
	return out
}

// AppDataFields are the keys app_data may have (D-SE; SDK app-data.js).
var AppDataFields = []string{
	"application_tracking_enabled", "advertiser_tracking_enabled", "campaign_ids", "consider_views",
	"extinfo", "include_dwell_data", "include_video_data", "install_referrer", "installer_package",
	"receipt_data", "url_schemes", "windows_attribution_id", "anon_id", "vendor_id",
}

// RequestFields are the top-level parameters of an events request (§1.3),
// with id and fields, which Meta's Node SDK adds to the body of every
// request (the node id and an empty field list) and Graph ignores.
var RequestFields = []string{"data", "access_token", "test_event_code", "partner_agent", "namespace_id",
	"upload_id", "upload_tag", "upload_source", "appsecret_proof", "platforms", "progress", "id", "fields"}

// Has reports whether list holds s.
func Has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// LDU is the only data_processing_options value (§9), exactly so.
const LDU = "LDU"

// IsDPOCountry and IsDPOState check data_processing_options_country
// (0 = geolocate, 1 = US) and _state (0 = geolocate, 1000.. = US states,
// §9, D-DPO).
func IsDPOCountry(n int64) bool { return n == 0 || n == 1 }
func IsDPOState(n int64) bool   { return n == 0 || (n >= 1000 && n <= 1099) }

// LDUNeedsLocation reports whether an event with data_processing_options
// ["LDU"] lacks what Meta needs to place it (§9, D-DPO): without a
// client_ip_address to geolocate, both country and state must be given.
func LDUNeedsLocation(hasIP, hasCountry, hasState bool) bool {
	return !hasIP && (!hasCountry || !hasState)
}

// LDULocationMessage says so.
const LDULocationMessage = "country and state are required with LDU when no client_ip_address is sent"

// Custom data rules (§4): Purchase needs value and currency; a value needs
// its currency.
const PurchaseEvent = "Purchase"

// RequiresValue reports whether Meta requires custom_data.value and
// currency on an event named eventName (spec §2.3: Purchase).
func RequiresValue(eventName string) bool { return eventName == PurchaseEvent }

// currencies is the ISO 4217 list of circulating currency codes as of 2026
// (§4), without precious metals, fund and testing codes (XAU, XTS, XXX, ...)
// that no purchase is priced in. Codes withdrawn since 2023 (HRK, SLL, ZWL,
// ANG, CUC) are left out too: Meta's SDK validates against the live list.
var currencies = func() map[string]struct{} {
	const list = "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD " +
		"BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP " +
		"COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS " +
		"GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY " +
		"KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA " +
		"MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD " +
		"OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK " +
		"SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD " +
		"TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF " +
		"XPF YER ZAR ZMW ZWG"
	m := make(map[string]struct{}, 180)
	for _, c := range strings.Fields(list) {
		m[c] = struct{}{}
	}
	return m
}()

// IsCurrency reports whether code is an ISO 4217 currency code. Meta's docs
// show both "usd" and "USD" (§4), so case is ignored; send upper case.
func IsCurrency(code string) bool {
	if len(code) != 3 {
		return false
	}
	_, ok := currencies[strings.ToUpper(code)]
	return ok
}

// Graph's code and subcodes for refused events (§7.3): code 100 with a
// subcode naming the rule. InvalidParameter is one of the "other
// invalid-parameter subcodes seen in integrations", used where Meta's own
// is not known.
const (
	CodeInvalidParameter    = 100
	SubcodeBadClickID       = 2804001
	SubcodeTooOld           = 2804003
	SubcodeInvalidParameter = 2804019
	SubcodeThinMatch        = 2804050
)

// capirelay's own limits, not Meta's: they bound what one event may cost.
const (
	MaxEventNameLen = 100
	MaxEventIDLen   = 200
)

// The reasons ingest and the pre-send validator give for a device field
// of the wrong shape (IsCookieValue, net/netip.ParseAddr).
const (
	CookieShapeMessage = "is not in the fb.<subdomain index>.<creation time>.<value>[.<appendix>] format"
	IPMessage          = "is not a valid IPv4 or IPv6 address"
)

// IsCookieValue reports whether s has the fbp/fbc shape
// fb.<subdomain index digits>.<creation time digits>.<value>[.<appendix>]
// (§5.1, §5.3), the rule of Meta's Parameter Builder (§5.4 step 4) and of
// package fbcookie, which keeps the browser's cookies. The value (random
// number or fbclid) is case-sensitive and only checked to be non-empty and
// free of dots. Graph refuses an fbc of another shape (SubcodeBadClickID).
func IsCookieValue[T ~string | ~[]byte](s T) bool {
	var parts [5]T
	n := 0
	for {
		i := indexDot(s)
		if n == len(parts) {
			return false
		}
		if i < 0 {
			parts[n] = s
			n++
			break
		}
		parts[n] = s[:i]
		s = s[i+1:]
		n++
	}
	if n != 4 && n != 5 {
		return false
	}
	if string(parts[0]) != "fb" || !allDigits(parts[1]) || !allDigits(parts[2]) || len(parts[3]) == 0 {
		return false
	}
	return n == 4 || IsAppendix(parts[4])
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits[T ~string | ~[]byte](s T) bool {
	for i := range len(s) {
		if !isDigit(s[i]) {
			return false
		}
	}
	return len(s) > 0
}

func indexDot[T ~string | ~[]byte](s T) int {
	for i := range len(s) {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// IsAppendix reports whether s is a Parameter Builder appendix (§5.3): a
// legacy 2-character language token (AQ Ag Aw BA BQ Bg), or 8 base64url
// characters decoding to 6 bytes with format byte 0x01 and a language index
// 1..6.
func IsAppendix[T ~string | ~[]byte](s T) bool {
	switch len(s) {
	case 2:
		switch string(s) {
		case "AQ", "Ag", "Aw", "BA", "BQ", "Bg":
			return true
		}
		return false
	case 8:
		var src [8]byte
		copy(src[:], s)
		var b [6]byte
		n, err := base64.RawURLEncoding.Decode(b[:], src[:])
		return err == nil && n == 6 && b[0] == 0x01 && b[1] >= 1 && b[1] <= 6
	}
	return false
}
