package event

import (
	"bytes"
	"net/url"
	"strings"
	"time"
)

// Window is how far back Meta accepts event_time (spec §2).
const Window = 7 * 24 * time.Hour

// MaxFutureSkew is how far ahead of the clock an event_time may be before it
// is refused; anything ahead by less is clamped to now (spec §2: never send a
// future time).
const MaxFutureSkew = 10 * time.Minute

// ActionSources are the values Meta accepts for action_source (spec §2).
var ActionSources = map[string]bool{
	"email": true, "website": true, "app": true, "phone_call": true, "chat": true,
	"physical_store": true, "system_generated": true, "business_messaging": true, "other": true,
}

// Prepare checks the rules that do not depend on normalization and fixes
// what may be fixed: a small future skew of event_time is clamped to now,
// action_source and currency case are folded. path prefixes field names.
func (ev *Event) Prepare(now time.Time, path string) error {
	return ev.PrepareSeen(now, path, nil)
}

// Seen remembers the event_source_url and the custom_data that Prepare
// last found valid, for the events of one request, which mostly repeat
// them: parsing the URL and scanning custom_data again for the next event
// cost more than comparing them with the last ones. A zero Seen is ready;
// it is not safe for concurrent use.
type Seen struct {
	url        string
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
	if len(ev.EventName) > 100 {
		return &FieldError{Field: p("event_name"), Message: "is longer than 100 characters"}
	}
	if ev.EventTime == 0 {
		return &FieldError{Field: p("event_time"), Message: "is required (Unix seconds)"}
	}
	t := time.Unix(int64(ev.EventTime), 0)
	switch {
	case t.After(now.Add(MaxFutureSkew)):
		return &FieldError{Field: p("event_time"), Message: "is in the future"}
	case t.After(now):
		ev.EventTime = Time(now.Unix())
	case now.Sub(t) > Window:
		return &FieldError{Field: p("event_time"), Message: "is older than Meta's 7-day window"}
	}
	ev.ActionSource = strings.ToLower(strings.TrimSpace(ev.ActionSource))
	if ev.ActionSource == "" {
		return &FieldError{Field: p("action_source"), Message: "is required (website, app, email, phone_call, chat, physical_store, system_generated, business_messaging or other)"}
	}
	if !ActionSources[ev.ActionSource] {
		return &FieldError{Field: p("action_source"), Message: "is not one of website, app, email, phone_call, chat, physical_store, system_generated, business_messaging, other"}
	}
	if ev.EventSourceURL != "" && (s == nil || ev.EventSourceURL != s.url) {
		u, err := url.Parse(ev.EventSourceURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &FieldError{Field: p("event_source_url"), Message: "must be an absolute http(s) URL"}
		}
		if s != nil {
			s.url = ev.EventSourceURL
		}
	}
	if ev.ActionSource == "website" {
		if ev.EventSourceURL == "" {
			return &FieldError{Field: p("event_source_url"), Message: "is required for website events"}
		}
		if ev.UserData.ClientUserAgent == "" {
			return &FieldError{Field: p("user_data.client_user_agent"), Message: "is required for website events"}
		}
	}
	for _, o := range ev.DataProcessingOptions {
		if o != "LDU" {
			return &FieldError{Field: p("data_processing_options"), Message: `may only contain "LDU"`}
		}
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
// (spec §2.3: Purchase).
func requiresValue(eventName string) bool { return eventName == "Purchase" }

// thinSets are the §2.2 sets: an event whose customer information is only a
// subset of one of them is rejected by Meta.
var thinSets = []map[string]bool{
	{"ct": true, "country": true, "st": true, "zp": true, "ge": true, "client_user_agent": true},
	{"db": true, "client_user_agent": true},
	{"fn": true, "ge": true},
	{"ln": true, "ge": true},
}

// CheckMatch applies the §2.2 baseline matching rule to the (normalized)
// user_data: at least one key, and not only a thin combination.
func (ev *Event) CheckMatch(path string) error {
	if ev.UserData.strongKey() {
		return nil // the common case, without listing the keys
	}
	f := "user_data"
	if path != "" {
		f = path + "." + f
	}
	keys := ev.UserData.Keys()
	if len(keys) == 0 {
		return &FieldError{Field: f, Message: "has no usable customer information (em, ph, fbp, fbc, client_ip_address, external_id, ...)"}
	}
	for _, set := range thinSets {
		thin := true
		for _, k := range keys {
			if !set[k] {
				thin = false
				break
			}
		}
		if thin {
			return &FieldError{Field: f, Message: "has too little customer information to match (" + strings.Join(keys, ", ") + "); add em, ph, fbp, fbc, external_id or client_ip_address"}
		}
	}
	return nil
}

// strongKey reports whether u carries a key that is in no thin set (em, ph,
// external_id, client_ip_address, fbc or fbp): then CheckMatch passes.
func (u *UserData) strongKey() bool {
	return len(u.Em) > 0 || len(u.Ph) > 0 || len(u.ExternalID) > 0 || u.ClientIPAddress != "" || u.Fbc != "" || u.Fbp != ""
}
