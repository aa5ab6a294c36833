package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// FuzzPrepareSeen checks PrepareSeen against Prepare over a run of events
// that repeat, change and spoil their event_source_url and custom_data:
// the same errors and the same events.
func FuzzPrepareSeen(f *testing.F) {
	f.Add("https://shop.example.com/x", "ftp://x", `{"value":1.5,"currency":"USD"}`, `{"value":1.5,"currency":"usd"}`, uint16(0))
	f.Add("https://a.example/?q=1", "https://", `{"currency":"EUR"}`, `{"value":"x","currency":"EUR"}`, uint16(0x2b5))
	f.Add("http://[::1]:80/", "http://a.example", `[1]`, `{"value":1,"currency":"XXX"}`, uint16(0x71c))
	now := time.Unix(1_760_000_000, 0)
	f.Fuzz(func(t *testing.T, url1, url2, cd1, cd2 string, pattern uint16) {
		var seen Seen
		for i := range 8 {
			bits := pattern >> (2 * i)
			mk := func() *Event {
				ev := &Event{EventName: "Lead", EventTime: Time(now.Unix()), ActionSource: "website",
					EventSourceURL: url1, UserData: UserData{ClientUserAgent: "ua"}, CustomData: json.RawMessage(cd1)}
				if bits&1 != 0 {
					ev.EventSourceURL = url2
				}
				if bits&2 != 0 {
					ev.CustomData = json.RawMessage(cd2)
				}
				if i%3 == 2 {
					ev.EventName = "Purchase"
				}
				if i%4 == 3 {
					ev.CustomData = nil
				}
				return ev
			}
			want, got := mk(), mk()
			path := fmt.Sprintf("data[%d]", i)
			wantErr := want.Prepare(now, path)
			gotErr := got.PrepareSeen(now, path, &seen)
			var wfe, gfe *FieldError
			errors.As(wantErr, &wfe)
			errors.As(gotErr, &gfe)
			if !reflect.DeepEqual(wfe, gfe) || (wantErr == nil) != (gotErr == nil) {
				t.Fatalf("event %d: PrepareSeen error %v, Prepare %v", i, gotErr, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("event %d: PrepareSeen gave %+v, Prepare %+v", i, got, want)
			}
		}
	})
}
