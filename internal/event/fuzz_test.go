package event_test

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/event"
)

// FuzzDecode feeds arbitrary JSON to Decode. Invariants: no panic; an
// error is a *FieldError naming a field under the given path; a decoded
// event survives Prepare and CheckMatch without panicking, and when it
// encodes, the encoding decodes again to the same encoding.
func FuzzDecode(f *testing.F) {
	now := time.Unix(1_760_000_000, 0)
	for _, s := range []string{
		`{"event_name":"Purchase","event_time":1760000000,"event_id":"o-1","action_source":"website","event_source_url":"https://shop.example.com/x","user_data":{"em":["a@b.co"],"ph":"+1 650 555 1212","client_user_agent":"Mozilla/5.0","client_ip_address":"1.2.3.4","fbp":"fb.1.1.1"},"custom_data":{"value":1.5,"currency":"usd"}}`,
		`{"event_name":"Lead","event_time":1760000300,"action_source":"email","user_data":{"external_id":[1,"x"]},"data_processing_options":["LDU"],"data_processing_options_country":1,"data_processing_options_state":1000}`,
		`{"event_name":"Lead","event_time":1760000000123,"user_data":{}}`,
		`{"event_name":"Lead","event_time":"1760000000"}`,
		`{"event_name":7}`,
		`{"evnt_name":"x"}`,
		`{"event_name":"x","user_data":"x"}`,
		`{"event_name":"x","event_time":1.5e9,"opt_out":true,"app_data":{"a":1},"original_event_data":{"event_name":"y"}}`,
		`{} {}`,
		`[]`,
		``,
		`{"event_name":"x","user_data":{"em":null,"ph":[],"fn":[""]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := event.Decode(raw, "data[0]")
		if err != nil {
			var fe *event.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Decode(%q) error %T %v, want a *FieldError", raw, err, err)
			}
			if !strings.HasPrefix(fe.Field, "data[0]") {
				t.Fatalf("Decode(%q) error names %q, outside data[0]", raw, fe.Field)
			}
			if !errors.Is(err, event.ErrInvalid) {
				t.Fatalf("Decode(%q) error is not ErrInvalid", raw)
			}
			return
		}
		if ev == nil {
			t.Fatalf("Decode(%q) = nil, nil", raw)
		}
		enc1, err := json.Marshal(ev)
		if err != nil {
			return // e.g. custom_data that is valid JSON only in context
		}
		if ev.EventTime > 0 {
			ev2, err := event.Decode(enc1, "data[0]")
			if err != nil {
				t.Fatalf("re-decoding %s: %v", enc1, err)
			}
			enc2, _ := json.Marshal(ev2)
			if string(enc1) != string(enc2) {
				t.Fatalf("encoding is not stable:\n%s\n%s", enc1, enc2)
			}
		}
		if err := ev.Prepare(now, "data[0]"); err == nil {
			if t := time.Unix(int64(ev.EventTime), 0); t.After(now) {
				panic("BUG: Prepare left a future event_time")
			}
			_ = ev.CheckMatch("data[0]")
		}
	})
}

// FuzzScrubURL feeds arbitrary URLs to ScrubURL. Invariants: no panic; a
// second pass leaves the result as it is; an absolute http(s) URL stays
// one, on the same host.
func FuzzScrubURL(f *testing.F) {
	for _, s := range []string{
		"https://shop.co.uk/thanks?email=g%40h.io&password=x&step=2#/p?phone=%2B44+20+7946+0958",
		"https://bob:pw@a.example/unsubscribe/g%40h.io?fbclid=IwAR&c=4111+1111+1111+1111",
		"http://a.example/%zz?%zz=1&&=&a@b.co#x@y.io",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := event.ScrubURL(in)
		if again := event.ScrubURL(out); again != out {
			t.Fatalf("ScrubURL(%q) = %q, then %q", in, out, again)
		}
		u, err := url.Parse(in)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return
		}
		v, err := url.Parse(out)
		if err != nil || v.Scheme != u.Scheme || v.Host != u.Host {
			t.Fatalf("ScrubURL(%q) = %q: %v", in, out, err)
		}
	})
}
