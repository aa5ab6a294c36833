package event

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/metarules"
)

// Window is how far back Meta accepts event_time for most action sources
// (spec §2); metarules.Window gives it per source.
const Window = metarules.DefaultWindow

// MaxFutureSkew is how far ahead of the clock an event_time may be before it
// is refused; anything ahead by less is clamped to now (spec §2: never send a
// future time).
const MaxFutureSkew = metarules.FutureSkew

// Prepare checks the rules that do not depend on normalization and fixes
// what may be fixed: a small future skew of event_time is clamped to now,
// action_source and currency case are folded, personal data and secrets
// are taken out of event_source_url and referrer_url (ScrubURL). path
// prefixes field names.
func (ev *Event) Prepare(now time.Time, path string) error {
	return ev.PrepareSeen(now, path, nil)
}

// Seen remembers the event_source_url and the custom_data that Prepare
// last found valid, for the events of one request, which mostly repeat
// them: parsing the URL and scanning custom_data again for the next event
// cost more than comparing them with the last ones. A zero Seen is ready;
// it is not safe for concurrent use.
type Seen struct {
	url        string // as sent …
	scrubbed   string // … and without personal data (ScrubURL)
	customData []byte // found valid and left as it was …
	purchase   bool   // … for a Purchase, or for another event
}

// PrepareSeen is Prepare, skipping the checks of event_source_url and
// custom_data when they are those seen valid last (s may be nil).
func (ev *Event) PrepareSeen(now time.Time, path string, s *Seen) error {
	p := func(f string) string {
		if path == "" {
			return f
		}
		return path + "." + f
	}
	ev.EventName = strings.TrimSpace(ev.EventName)
	if ev.EventName == "" {
		return &FieldError{Field: p("event_name"), Message: "is required"}
	}
	if len(ev.EventName) > metarules.MaxEventNameLen {
		return &FieldError{Field: p("event_name"), Message: "is longer than 100 characters"}
	}
	if ev.EventTime == 0 {
		return &FieldError{Field: p("event_time"), Message: "is required (Unix seconds)"}
	}
	ev.ActionSource = strings.ToLower(strings.TrimSpace(ev.ActionSource))
	if ev.ActionSource == "" {
		return &FieldError{Field: p("action_source"), Message: "is required (" + metarules.ActionSourceList + ")"}
	}
	if !metarules.IsActionSource(ev.ActionSource) {
		return &FieldError{Field: p("action_source"), Message: "is not one of " + metarules.ActionSourceList}
	}
	switch metarules.CheckTime(int64(ev.EventTime), ev.ActionSource, now) {
	case metarules.TimeFuture:
		return &FieldError{Field: p("event_time"), Message: metarules.FutureMessage}
	case metarules.TimeAhead:
		ev.EventTime = Time(now.Unix())
	case metarules.TimeTooOld:
		return &FieldError{Field: p("event_time"), Message: metarules.TooOldMessage(ev.ActionSource), Subcode: metarules.SubcodeTooOld}
	}
	if ev.EventSourceURL != "" {
		if s != nil && ev.EventSourceURL == s.url {
			ev.EventSourceURL = s.scrubbed
		} else {
			u, err := url.Parse(ev.EventSourceURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return &FieldError{Field: p("event_source_url"), Message: "must be an absolute http(s) URL"}
			}
			clean := ScrubURL(ev.EventSourceURL)
			if s != nil {
				s.url, s.scrubbed = ev.EventSourceURL, clean
			}
			ev.EventSourceURL = clean
		}
	}
	ev.ReferrerURL = ScrubURL(ev.ReferrerURL)
	for _, f := range metarules.RequiredFor(ev.ActionSource) {
		if !ev.has(f) {
			return &FieldError{Field: p(f), Message: "is required for " + ev.ActionSource + " events"}
		}
	}
	if err := ev.checkExtras(p); err != nil {
		return err
	}
	if len(ev.CustomData) == 0 {
		if requiresValue(ev.EventName) {
			return &FieldError{Field: p("custom_data"), Message: ev.EventName + " requires value and currency"}
		}
		return nil
	}
	// The verdict on custom_data depends on it and on whether the event
	// requires a value, nothing else.
	purchase := requiresValue(ev.EventName)
	if s != nil && s.customData != nil && purchase == s.purchase && bytes.Equal(ev.CustomData, s.customData) {
		return nil
	}
	before := ev.CustomData
	if err := checkCustomData(ev, p); err != nil {
		return err
	}
	if s != nil && len(ev.CustomData) == len(before) && &ev.CustomData[0] == &before[0] {
		s.customData, s.purchase = ev.CustomData, purchase // valid, and left as it was
	}
	return nil
}

// requiresValue reports whether Meta requires custom_data.value and
// custom_data.currency on an event, whether custom_data is there or not
// (metarules.RequiresValue).
func requiresValue(eventName string) bool { return metarules.RequiresValue(eventName) }

// CheckMatch applies the §2.2 baseline matching rule (metarules.IsThin)
// to the (normalized) user_data: at least one key, and not only a thin
// combination.
func (ev *Event) CheckMatch(path string) error {
	if ev.UserData.strongKey() {
		return nil // the common case, without listing the keys
	}
	keys := ev.UserData.Keys()
	if !metarules.IsThin(keys) {
		return nil
	}
	f := "user_data"
	if path != "" {
		f = path + "." + f
	}
	return &FieldError{Field: f, Message: metarules.ThinMessage(keys), Subcode: metarules.SubcodeThinMatch}
}

// has reports whether the field at a metarules.RequiredFor path is set.
func (ev *Event) has(f string) bool {
	switch f {
	case "event_source_url":
		return ev.EventSourceURL != ""
	case "user_data.client_user_agent":
		return ev.UserData.ClientUserAgent != ""
	case "app_data":
		return len(ev.AppData) > 0 && string(ev.AppData) != "null"
	}
	panic("event: no field for required path " + f)
}

// checkExtras checks the fields few events carry: Limited Data Use (§9),
// app_data's keys and advertiser_tracking_enabled's type.
func (ev *Event) checkExtras(p func(string) string) error {
	if err := ev.UserData.checkDevice(p); err != nil {
		return err
	}
	for i, o := range ev.DataProcessingOptions {
		if o != metarules.LDU {
			return &FieldError{Field: p("data_processing_options[" + strconv.Itoa(i) + "]"), Message: `must be "LDU"`}
		}
	}
	if ev.DPOCountry != nil && !metarules.IsDPOCountry(int64(*ev.DPOCountry)) {
		return &FieldError{Field: p("data_processing_options_country"), Message: "must be 0 (geolocate) or 1 (United States)"}
	}
	if ev.DPOState != nil && !metarules.IsDPOState(int64(*ev.DPOState)) {
		return &FieldError{Field: p("data_processing_options_state"), Message: "must be 0 (geolocate) or a US state code from 1000 (California)"}
	}
	if len(ev.DataProcessingOptions) > 0 && metarules.LDUNeedsLocation(ev.UserData.ClientIPAddress != "", ev.DPOCountry != nil, ev.DPOState != nil) {
		return &FieldError{Field: p("data_processing_options_state"), Message: metarules.LDULocationMessage}
	}
	if a := ev.AdvertiserTrackingEnabled; len(a) > 0 && string(a) != "true" && string(a) != "false" && string(a) != "null" {
		return &FieldError{Field: p("advertiser_tracking_enabled"), Message: "must be true or false"}
	}
	if len(ev.AppData) > 0 && string(ev.AppData) != "null" {
		var m map[string]json.RawMessage
		if json.Unmarshal(ev.AppData, &m) != nil {
			return &FieldError{Field: p("app_data"), Message: "must be an object"}
		}
		for k := range m {
			if !metarules.Has(metarules.AppDataFields, k) {
				return &FieldError{Field: p("app_data." + k), Message: "unknown field"}
			}
		}
	}
	return nil
}

// checkDevice refuses the user_data fields sent to Meta as they are
// (client_ip_address, fbc, fbp) unless they have their documented shape
// (§4, §5.1): Graph would refuse the event, and a value of another shape,
// an email address put in the wrong field say, would reach Meta unhashed.
func (u *UserData) checkDevice(p func(string) string) error {
	if ip := u.ClientIPAddress; ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return &FieldError{Field: p("user_data.client_ip_address"), Message: metarules.IPMessage}
		}
	}
	if u.Fbc != "" && !metarules.IsCookieValue(u.Fbc) {
		return &FieldError{Field: p("user_data.fbc"), Message: metarules.CookieShapeMessage, Subcode: metarules.SubcodeBadClickID}
	}
	if u.Fbp != "" && !metarules.IsCookieValue(u.Fbp) {
		return &FieldError{Field: p("user_data.fbp"), Message: metarules.CookieShapeMessage}
	}
	return nil
}

// strongKey reports whether u carries a key that is in no thin set (em, ph,
// external_id, client_ip_address, fbc or fbp): then CheckMatch passes.
func (u *UserData) strongKey() bool {
	return len(u.Em) > 0 || len(u.Ph) > 0 || len(u.ExternalID) > 0 || u.ClientIPAddress != "" || u.Fbc != "" || u.Fbp != ""
}
