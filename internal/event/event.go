// Package event holds capirelay's canonical server event: Meta's server event
// object (spec §2) with user_data split into the hashable keys and the keys
// that are sent as they are. It parses and validates; it knows no HTTP or SQL.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/capirelay/capirelay/internal/metarules"
	"github.com/capirelay/capirelay/internal/normalize"
)

// MaxPerRequest is Meta's limit of events in one request (spec §1.5).
const MaxPerRequest = metarules.MaxEventsPerRequest

// Event is one server event. Fields that capirelay never changes are kept as
// raw JSON and sent byte for byte.
type Event struct {
	EventName             string          `json:"event_name"`
	EventTime             Time            `json:"event_time"`
	EventID               string          `json:"event_id,omitempty"`
	ActionSource          string          `json:"action_source,omitempty"`
	EventSourceURL        string          `json:"event_source_url,omitempty"`
	ReferrerURL           string          `json:"referrer_url,omitempty"`
	OptOut                bool            `json:"opt_out,omitempty"`
	UserData              UserData        `json:"user_data"`
	CustomData            json.RawMessage `json:"custom_data,omitempty"`
	DataProcessingOptions []string        `json:"data_processing_options,omitempty"`
	DPOCountry            *int            `json:"data_processing_options_country,omitempty"`
	DPOState              *int            `json:"data_processing_options_state,omitempty"`
	CustomerSegmentation  string          `json:"customer_segmentation,omitempty"`
	OriginalEventData     json.RawMessage `json:"original_event_data,omitempty"`
	AttributionData       json.RawMessage `json:"attribution_data,omitempty"`
	AppData               json.RawMessage `json:"app_data,omitempty"`
	MessagingChannel      string          `json:"messaging_channel,omitempty"`
	// AdvertiserTrackingEnabled and AdvancedMeasurementTable are fields
	// Meta's SDK sends for app events and the Advanced Measurement API
	// (metarules.EventFields); they are kept as sent.
	AdvertiserTrackingEnabled json.RawMessage `json:"advertiser_tracking_enabled,omitempty"`
	AdvancedMeasurementTable  string          `json:"advanced_measurement_table,omitempty"`

	// CustomDataScrubbed is set by Prepare when it took personal data or
	// a card number out of CustomData (scrubCustomData); it is not sent.
	CustomDataScrubbed bool `json:"-"`
}

// UserData is Meta's user_data object. The hashable keys are lists; before
// normalization they hold raw values, after it SHA-256 hex. Its fields are
// metarules.UserDataKeys, in that order, each tagged with its key: the
// decoder and encoder read them from there (userDataFields).
type UserData struct {
	Em         List `json:"em,omitempty"`
	Ph         List `json:"ph,omitempty"`
	Fn         List `json:"fn,omitempty"`
	Ln         List `json:"ln,omitempty"`
	Db         List `json:"db,omitempty"`
	Ge         List `json:"ge,omitempty"`
	Ct         List `json:"ct,omitempty"`
	St         List `json:"st,omitempty"`
	Zp         List `json:"zp,omitempty"`
	Country    List `json:"country,omitempty"`
	ExternalID List `json:"external_id,omitempty"`

	ClientIPAddress  string     `json:"client_ip_address,omitempty"`
	ClientUserAgent  string     `json:"client_user_agent,omitempty"`
	Fbc              string     `json:"fbc,omitempty"`
	Fbp              string     `json:"fbp,omitempty"`
	SubscriptionID   string     `json:"subscription_id,omitempty"`
	FbLoginID        FlexString `json:"fb_login_id,omitempty"`
	LeadID           FlexString `json:"lead_id,omitempty"`
	AnonID           string     `json:"anon_id,omitempty"`
	Madid            string     `json:"madid,omitempty"`
	PageID           string     `json:"page_id,omitempty"`
	PageScopedUserID string     `json:"page_scoped_user_id,omitempty"`
	CtwaClid         string     `json:"ctwa_clid,omitempty"`
	IgAccountID      string     `json:"ig_account_id,omitempty"`
	IgSid            string     `json:"ig_sid,omitempty"`

	// The SDK's extra hashed keys (metarules.HashedSingle): one value
	// each, SHA-256 hex once the pipeline has hashed them.
	F5First   string `json:"f5first,omitempty"`
	F5Last    string `json:"f5last,omitempty"`
	Fi        string `json:"fi,omitempty"`
	Dobd      string `json:"dobd,omitempty"`
	Dobm      string `json:"dobm,omitempty"`
	Doby      string `json:"doby,omitempty"`
	AppUserID string `json:"app_user_id,omitempty"`
}

// Hashable returns the hashable keys as a normalize.UserData (sharing slices).
func (u *UserData) Hashable() normalize.UserData {
	return normalize.UserData{Em: u.Em, Ph: u.Ph, Fn: u.Fn, Ln: u.Ln, Db: u.Db, Ge: u.Ge,
		Ct: u.Ct, St: u.St, Zp: u.Zp, Country: u.Country, ExternalID: u.ExternalID}
}

// SetHashable replaces the hashable keys.
func (u *UserData) SetHashable(h normalize.UserData) {
	u.Em, u.Ph, u.Fn, u.Ln, u.Db, u.Ge = h.Em, h.Ph, h.Fn, h.Ln, h.Db, h.Ge
	u.Ct, u.St, u.Zp, u.Country, u.ExternalID = h.Ct, h.St, h.Zp, h.Country, h.ExternalID
}

// List returns the list of a hashable key (em, ph, fn, ln, db, ge, ct, st,
// zp, country, external_id), or nil for any other key.
func (u *UserData) List(key string) *List {
	if i := userDataIndex(key); i >= 0 && userDataFields[i].typ == listValue {
		return userDataFields[i].values(u)
	}
	return nil
}

// Keys lists the user_data keys that carry a value, in Meta's order.
func (u *UserData) Keys() []string {
	var ks []string
	for i := range userDataFields {
		if f := &userDataFields[i]; f.set(u) {
			ks = append(ks, f.Name)
		}
	}
	return ks
}

// List is a user_data value that Meta accepts as a string or a list of strings.
type List []string

// UnmarshalJSON accepts a string, a list of strings, or null.
func (l *List) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*l = nil
		return nil
	case b[0] == '"':
		if s, ok := plainString(b); ok {
			*l = List{s}
			return nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = List{s}
		return nil
	case b[0] == '[':
		var ss []*string
		if err := json.Unmarshal(b, &ss); err != nil {
			return &TypeError{Want: "a string or a list of strings"}
		}
		out := make(List, 0, len(ss))
		for _, s := range ss {
			if s != nil {
				out = append(out, *s)
			}
		}
		*l = out
		return nil
	}
	return &TypeError{Want: "a string or a list of strings"}
}

// plainString returns the contents of a JSON string literal that needs no
// unescaping (no backslash, no control character, valid UTF-8), the common
// case, without a second pass through encoding/json.
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	inner := b[1 : len(b)-1]
	for _, c := range inner {
		if c == '\\' || c == '"' || c < 0x20 || c >= 0x80 {
			return "", false // escapes, or non-ASCII: let encoding/json decide
		}
	}
	return string(inner), true
}

// FlexString is an id that Meta documents as an int but that callers send as
// a string as often as not; it is kept as a string.
type FlexString string

// UnmarshalJSON accepts a JSON string or an integer.
func (f *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*f = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = FlexString(s)
		return nil
	}
	if _, err := strconv.ParseUint(string(b), 10, 64); err != nil {
		return &TypeError{Want: "a string or an integer id"}
	}
	*f = FlexString(b)
	return nil
}

// Time is event_time: Unix seconds as a JSON integer, or as a string
// Graph coerces (decimal seconds, or ISO 8601; metarules.ParseEventTime).
type Time int64

// UnmarshalJSON refuses fractions, milliseconds and strings Graph does not
// coerce with a clear reason.
func (t *Time) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if json.Unmarshal(b, &s) != nil {
			return &TypeError{Want: "an integer number of Unix seconds"}
		}
		n, ok := metarules.ParseEventTime(s)
		if !ok {
			return &TypeError{Want: "an integer number of Unix seconds, or an ISO 8601 date-time with a time zone"}
		}
		return t.set(n)
	}
	if len(b) == 0 {
		return &TypeError{Want: "an integer number of Unix seconds"}
	}
	if string(b) == "null" {
		return &TypeError{Want: "an integer number of Unix seconds, not null"}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil || f != float64(int64(f)) {
			return &TypeError{Want: "an integer number of Unix seconds"}
		}
		n = int64(f)
	}
	return t.set(n)
}

func (t *Time) set(n int64) error {
	if n > metarules.MaxEventTime {
		return &TypeError{Want: "Unix seconds; this looks like milliseconds"}
	}
	if n <= 0 {
		return &TypeError{Want: "a positive number of Unix seconds"}
	}
	*t = Time(n)
	return nil
}

// TypeError says what a field should have been.
type TypeError struct{ Want string }

func (e *TypeError) Error() string { return "must be " + e.Want }

// FieldError is a problem with one field of a request, named by its JSON path.
type FieldError struct {
	Field   string // JSON path, e.g. data[2].event_time
	Message string
	// Subcode is Graph's error_subcode for the rule broken
	// (metarules.SubcodeTooOld, SubcodeThinMatch), 0 when Graph has none
	// of its own.
	Subcode int
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// ErrInvalid marks an event that breaks Meta's rules; errors.Is works on
// every *FieldError.
var ErrInvalid = errors.New("invalid event")

func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Decode parses one event strictly: unknown fields and wrong types are
// errors that name the field, prefixed with path (e.g. "data[3]").
// A hand-written parser (fast.go) takes the inputs it can decode exactly
// as encoding/json would; everything else, errors included, goes the
// encoding/json way.
//
// An event over the limits (CheckLimits) is refused here too, so that no
// later step works on an unbounded number of values.
func Decode(raw []byte, path string) (*Event, error) {
	if fe, ok := decodeFastEvent(raw); ok {
		if err := fe.limits(path); err != nil {
			return nil, err
		}
		return &fe.ev, nil
	}
	ev, err := decodeSlow(raw, path)
	if err != nil {
		return nil, err
	}
	if err := ev.CheckLimits(path); err != nil {
		return nil, err
	}
	return ev, nil
}

// decodeSlow is Decode with encoding/json.
func decodeSlow(raw []byte, path string) (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var ev Event
	if err := dec.Decode(&ev); err != nil {
		if f := locate(raw, reflect.TypeOf(ev)); f != "" {
			var te *TypeError
			if errors.As(err, &te) {
				return nil, &FieldError{Field: path + "." + f, Message: te.Error()}
			}
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, &FieldError{Field: path + "." + unknownPath(raw, strings.Trim(f, `"`)), Message: "unknown field"}
		}
		return nil, describe(err, path)
	}
	if dec.More() {
		return nil, &FieldError{Field: path, Message: "trailing data after the event object"}
	}
	return &ev, nil
}

// unknownPath places the unknown key encoding/json names (it does not say
// in which object): the event's own, or user_data's.
func unknownPath(raw []byte, key string) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil {
		return key
	}
	if _, ok := top[key]; ok {
		return key
	}
	var ud map[string]json.RawMessage
	if json.Unmarshal(top["user_data"], &ud) == nil {
		if _, ok := ud[key]; ok {
			return "user_data." + key
		}
	}
	return key
}

// locate finds which field of a JSON object fails to decode into a value of
// type t (a struct), as a dotted path ("user_data.em"); "" if none does.
// encoding/json does not say which field an UnmarshalJSON error came from,
// so this runs on the error path only.
func locate(raw []byte, t reflect.Type) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		v, ok := m[name]
		if !ok {
			continue
		}
		ptr := reflect.New(f.Type)
		if err := json.Unmarshal(v, ptr.Interface()); err != nil {
			if f.Type.Kind() == reflect.Struct {
				if sub := locate(v, f.Type); sub != "" {
					return name + "." + sub
				}
			}
			return name
		}
	}
	return ""
}

// DescribeJSONError turns an encoding/json error into a *FieldError naming
// the field, prefixed with path.
func DescribeJSONError(err error, path string) error { return describe(err, path) }

// describe turns an encoding/json error into a FieldError naming the field.
func describe(err error, path string) error {
	join := func(f string) string {
		if f == "" {
			return path
		}
		if path == "" {
			return f
		}
		return path + "." + f
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		var te *TypeError
		if errors.As(err, &te) {
			return &FieldError{Field: join(ute.Field), Message: te.Error()}
		}
		return &FieldError{Field: join(ute.Field), Message: fmt.Sprintf("must be %s, not a JSON %s", jsonKind(ute.Type.Kind().String()), ute.Value)}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &FieldError{Field: join(""), Message: "malformed JSON: " + se.Error()}
	}
	var te *TypeError
	if errors.As(err, &te) {
		return &FieldError{Field: join(fieldOf(err)), Message: te.Error()}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &FieldError{Field: join(strings.Trim(f, `"`)), Message: "unknown field"}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &FieldError{Field: join(""), Message: "malformed JSON: unexpected end"}
	}
	return &FieldError{Field: join(""), Message: strings.TrimPrefix(msg, "json: ")}
}

func fieldOf(err error) string {
	// encoding/json wraps errors from UnmarshalJSON methods in an
	// *UnmarshalTypeError only for some paths; fall back to the message.
	msg := err.Error()
	if i := strings.Index(msg, "Go struct field "); i >= 0 {
		rest := msg[i+len("Go struct field "):]
		if j := strings.IndexByte(rest, ' '); j >= 0 {
			rest = rest[:j]
		}
		if k := strings.IndexByte(rest, '.'); k >= 0 {
			return rest[k+1:]
		}
	}
	return ""
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint", "uint64", "float64", "float32":
		return "a number"
	case "bool":
		return "true or false"
	case "slice":
		return "a list"
	case "struct", "map":
		return "an object"
	}
	return goKind
}
