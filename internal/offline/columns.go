package offline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/capirelay/capirelay/internal/event"
)

// Column is a canonical import column.
type Column int

// The canonical columns, in the order they feed the generated event_id.
const (
	ColEventName Column = iota
	ColEventTime
	ColEmail
	ColPhone
	ColFirstName
	ColLastName
	ColCity
	ColState
	ColZip
	ColCountry
	ColExternalID
	ColDateOfBirth
	ColGender
	ColValue
	ColCurrency
	ColOrderID
	ColEventID
	ColActionSource
	ColEventSourceURL
	ColClientIP
	ColUserAgent
	ColFbc
	ColFbp
	numColumns
)

// columnNames are the canonical names, used in error reports.
var columnNames = [numColumns]string{
	"event_name", "event_time", "email", "phone", "first_name", "last_name", "city", "state", "zip",
	"country", "external_id", "date_of_birth", "gender", "value", "currency", "order_id", "event_id",
	"action_source", "event_source_url", "client_ip_address", "client_user_agent", "fbc", "fbp",
}

// String returns the canonical column name.
func (c Column) String() string {
	if c < 0 || c >= numColumns {
		return "column(" + strconv.Itoa(int(c)) + ")"
	}
	return columnNames[c]
}

// aliases maps a folded header (see foldHeader) to its column. Meta's own
// user_data keys are accepted, and the names CRM exports commonly use.
var aliases = func() map[string]Column {
	m := map[string]Column{}
	for c, names := range map[Column][]string{
		ColEventName:      {"event", "event_type", "conversion", "conversion_name"},
		ColEventTime:      {"time", "timestamp", "date", "datetime", "event_date", "event_timestamp", "conversion_time", "created_at"},
		ColEmail:          {"em", "e_mail", "email_address", "mail"},
		ColPhone:          {"ph", "phone_number", "telephone", "tel", "mobile", "mobile_phone", "cell"},
		ColFirstName:      {"fn", "firstname", "first", "given_name", "fname"},
		ColLastName:       {"ln", "lastname", "last", "surname", "family_name", "lname"},
		ColCity:           {"ct", "town"},
		ColState:          {"st", "province", "region", "state_code"},
		ColZip:            {"zp", "zip_code", "zipcode", "postal_code", "postcode", "post_code", "postal"},
		ColCountry:        {"country_code", "countrycode"},
		ColExternalID:     {"extern_id", "externalid", "customer_id", "user_id", "client_id", "crm_id"},
		ColDateOfBirth:    {"db", "dob", "birthdate", "birth_date", "birthday"},
		ColGender:         {"ge", "sex"},
		ColValue:          {"amount", "revenue", "order_value", "total", "price", "conversion_value"},
		ColCurrency:       {"currency_code", "cur"},
		ColOrderID:        {"order", "order_number", "transaction_id", "transaction"},
		ColEventID:        {"eventid", "dedup_id", "deduplication_id"},
		ColActionSource:   {"source", "actionsource"},
		ColEventSourceURL: {"url", "page_url", "source_url"},
		ColClientIP:       {"ip", "ip_address", "client_ip"},
		ColUserAgent:      {"user_agent", "ua"},
		ColFbc:            {"click_id", "fbclid_cookie"},
		ColFbp:            {"browser_id"},
	} {
		m[columnNames[c]] = c
		for _, n := range names {
			m[n] = c
		}
	}
	return m
}()

// foldHeader makes "First Name", "first-name" and "FIRST_NAME" the same
// key: lower case, separators as "_", a byte-order mark and quotes dropped.
func foldHeader(h string) string {
	h = strings.TrimPrefix(h, "\ufeff")
	h = strings.ToLower(strings.TrimSpace(h))
	var b strings.Builder
	lastSep := false
	for _, r := range h {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
			lastSep = false
		case r == '"' || r == '\'':
		default:
			if !lastSep && b.Len() > 0 {
				b.WriteByte('_')
			}
			lastSep = true
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

// lookupColumn returns the column a header names.
func lookupColumn(h string) (Column, bool) {
	c, ok := aliases[foldHeader(h)]
	return c, ok
}

// record is one row's values by canonical column; "" is absent.
type record [numColumns]string

// DefaultActionSource is the action_source of rows that give none: imported
// conversions come from the advertiser's systems, not a browser (spec §2).
const DefaultActionSource = "system_generated"

// toEvent builds the event of a flat row. Values stay raw: the pipeline
// normalizes and hashes user_data. now is used for the 7-day check.
func (rec *record) toEvent(siteKey string, now time.Time) (*event.Event, error) {
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	ev := &event.Event{EventName: rec[ColEventName], EventID: rec[ColEventID]}
	if ev.EventName == "" {
		return nil, colErr(ColEventName, "is required")
	}
	if rec[ColEventTime] == "" {
		return nil, colErr(ColEventTime, "is required (RFC 3339 / ISO 8601 date-time, or Unix seconds)")
	}
	t, err := parseTime(rec[ColEventTime])
	if err != nil {
		return nil, colErr(ColEventTime, err.Error())
	}
	if err := checkAge(t, now); err != nil {
		return nil, colErr(ColEventTime, err.Error())
	}
	ev.EventTime = event.Time(t.Unix())
	rec[ColEventTime] = strconv.FormatInt(t.Unix(), 10)

	ev.ActionSource = strings.ToLower(rec[ColActionSource])
	if ev.ActionSource == "" {
		ev.ActionSource = DefaultActionSource
	}
	ev.EventSourceURL = rec[ColEventSourceURL]

	ud := &ev.UserData
	for _, f := range []struct {
		c   Column
		dst *event.List
	}{
		{ColEmail, &ud.Em}, {ColPhone, &ud.Ph}, {ColFirstName, &ud.Fn}, {ColLastName, &ud.Ln},
		{ColCity, &ud.Ct}, {ColState, &ud.St}, {ColZip, &ud.Zp}, {ColCountry, &ud.Country},
		{ColExternalID, &ud.ExternalID}, {ColDateOfBirth, &ud.Db}, {ColGender, &ud.Ge},
	} {
		if v := rec[f.c]; v != "" {
			*f.dst = event.List{v}
		}
	}
	ud.ClientIPAddress = rec[ColClientIP]
	ud.ClientUserAgent = rec[ColUserAgent]
	ud.Fbc = rec[ColFbc]
	ud.Fbp = rec[ColFbp]

	var cd struct {
		Value    *float64 `json:"value,omitempty"`
		Currency string   `json:"currency,omitempty"`
		OrderID  string   `json:"order_id,omitempty"`
	}
	if v := rec[ColValue]; v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, colErr(ColValue, "is not a number (use a dot for decimals, no thousands separators or currency signs)")
		}
		cd.Value = &f
	}
	cd.Currency = strings.ToUpper(rec[ColCurrency])
	cd.OrderID = rec[ColOrderID]
	if cd.Value != nil || cd.Currency != "" || cd.OrderID != "" {
		raw, err := json.Marshal(cd)
		if err != nil {
			return nil, colErr(ColValue, "cannot be encoded")
		}
		ev.CustomData = raw
	}
	if ev.EventID == "" {
		ev.EventID = rec.eventID(siteKey)
	}
	return ev, nil
}

// eventID derives a stable event_id from the site and the row's content, so
// importing the same file twice sends nothing twice: the store drops the
// repeat of (event_name, event_id) within 48 h (spec §6.3). The values are
// folded (trimmed, lower case; event_time as Unix seconds) so a re-export
// with other letter case or date format gives the same id. The id carries
// no personal data: it is a SHA-256 digest.
func (rec *record) eventID(siteKey string) string {
	h := sha256.New()
	h.Write([]byte(siteKey))
	for c := range numColumns {
		if c == ColEventID {
			continue
		}
		h.Write([]byte{0})
		v := rec[c]
		if c != ColEventName && c != ColEventSourceURL && c != ColFbc && c != ColFbp && c != ColOrderID {
			v = strings.ToLower(v)
		}
		if c == ColActionSource && v == "" {
			v = DefaultActionSource
		}
		h.Write([]byte(v))
	}
	return "imp_" + hex.EncodeToString(h.Sum(nil))
}

// timeLayouts are the date-time forms accepted besides Unix seconds. Forms
// without a zone are taken as UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05Z0700",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 MST",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseTime reads event_time: Unix seconds, Unix milliseconds (13 digits,
// converted: 1e11 seconds would be the year 5138), or an ISO 8601 date-time.
// Errors never repeat the value.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n <= 0:
			return time.Time{}, errorString("must be a positive number of Unix seconds")
		case n > 100_000_000_000_000:
			return time.Time{}, errorString("is too large for Unix seconds or milliseconds")
		case n > 100_000_000_000:
			return time.UnixMilli(n), nil
		}
		return time.Unix(n, 0), nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errorString("is not a date-time (use RFC 3339 such as 2026-07-30T14:05:00Z, or Unix seconds)")
}

// checkAge refuses what Meta would: event_time more than 7 days old (spec
// §2: one such event fails the whole request) is expired. The future is
// left to the pipeline, which clamps a small skew and refuses the rest.
func checkAge(t, now time.Time) error {
	if age := now.Sub(t); age > event.Window {
		return errorString("expired: " + strconv.Itoa(int(age.Hours()/24)) +
			" days old; Meta accepts events up to 7 days after they happened")
	}
	return nil
}

type errorString string

func (e errorString) Error() string { return string(e) }
