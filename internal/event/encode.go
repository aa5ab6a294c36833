package event

import (
	"strconv"
	"unicode/utf8"

	"github.com/capirelay/capirelay/internal/jsonscan"
)

// AppendJSON appends the event as Meta receives it: the same bytes as
// encoding/json with HTML escaping off and the struct's omitempty rules, but
// without reflection (it runs once per event on the ingest path).
func (ev *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"event_name":`...)
	b = appendString(b, ev.EventName)
	b = append(b, `,"event_time":`...)
	b = strconv.AppendInt(b, int64(ev.EventTime), 10)
	b = appendStr(b, "event_id", ev.EventID)
	b = appendStr(b, "action_source", ev.ActionSource)
	b = appendStr(b, "event_source_url", ev.EventSourceURL)
	b = appendStr(b, "referrer_url", ev.ReferrerURL)
	if ev.OptOut {
		b = append(b, `,"opt_out":true`...)
	}
	b = append(b, `,"user_data":`...)
	b = ev.UserData.AppendJSON(b)
	b = appendRaw(b, "custom_data", ev.CustomData)
	if len(ev.DataProcessingOptions) > 0 {
		b = append(b, `,"data_processing_options":`...)
		b = appendStrings(b, ev.DataProcessingOptions)
	}
	if ev.DPOCountry != nil {
		b = append(b, `,"data_processing_options_country":`...)
		b = strconv.AppendInt(b, int64(*ev.DPOCountry), 10)
	}
	if ev.DPOState != nil {
		b = append(b, `,"data_processing_options_state":`...)
		b = strconv.AppendInt(b, int64(*ev.DPOState), 10)
	}
	b = appendStr(b, "customer_segmentation", ev.CustomerSegmentation)
	b = appendRaw(b, "original_event_data", ev.OriginalEventData)
	b = appendRaw(b, "attribution_data", ev.AttributionData)
	b = appendRaw(b, "app_data", ev.AppData)
	b = appendStr(b, "messaging_channel", ev.MessagingChannel)
	b = appendRaw(b, "advertiser_tracking_enabled", ev.AdvertiserTrackingEnabled)
	b = appendStr(b, "advanced_measurement_table", ev.AdvancedMeasurementTable)
	return append(b, '}')
}

// AppendJSON appends user_data.
func (u *UserData) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	start := len(b)
	for i := range userDataFields {
		// Most keys are empty: tell so without a call.
		if f := &userDataFields[i]; f.typ == listValue {
			if l := *f.values(u); len(l) > 0 {
				b = appendList(b, f.Name, l)
			}
		} else if s := *f.text(u); s != "" {
			b = appendStr(b, f.Name, s)
		}
	}
	if len(b) > start { // drop the comma before the first key
		copy(b[start:], b[start+1:])
		b = b[:len(b)-1]
	}
	return append(b, '}')
}

func appendStr(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendList(b []byte, key string, v []string) []byte {
	if len(v) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendStrings(b, v)
}

func appendStrings(b []byte, v []string) []byte {
	b = append(b, '[')
	for i, s := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

func appendRaw(b []byte, key string, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendCompact(b, v)
}

// appendCompact copies JSON that encoding/json already validated, without
// insignificant whitespace (as encoding/json's Marshal of a RawMessage does).
func appendCompact(b, v []byte) []byte {
	// Runs between insignificant spaces are copied whole: most raw
	// objects have none, and a copy per byte was most of the cost.
	start := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"':
			// Skip the string: v is valid, so an escape is whole and the
			// string ends.
			for i++; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' {
					i++
				}
			}
		case ' ', '\t', '\n', '\r':
			b = append(b, v[start:i]...)
			start = i + 1
		}
	}
	return append(b, v[start:]...)
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does with HTML escaping off:
// invalid UTF-8 becomes U+FFFD, U+2028 and U+2029 are escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Most bytes need nothing (hashes are all hex): eight at a time,
		// as the decoder's jsonscan.PlainRun.
		i = jsonscan.PlainRunString(s, i)
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendString appends s as a JSON string exactly as encoding/json writes
// it with HTML escaping off (FuzzAppendString checks it).
func AppendString(b []byte, s string) []byte { return appendString(b, s) }
