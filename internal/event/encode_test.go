package event

import (
	"bytes"
	"encoding/json"
	"testing"
)

// AppendJSON must give exactly what encoding/json gives (HTML escaping off).
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	one, zero := 1, 0
	evs := []Event{
		{EventName: "Purchase", EventTime: 1700000000, EventID: "id-1", ActionSource: "website",
			EventSourceURL: "https://x.example/a?b=<c>&d", OptOut: true,
			UserData: UserData{Em: List{"a", "b"}, Ph: List{"c"}, ExternalID: List{"x\"y\\z"}, ClientIPAddress: "::1",
				ClientUserAgent: "Mozilla/5.0 \t\u2028\x01 é \xff", Fbp: "fb.1.2.3", FbLoginID: "123", LeadID: "456", IgSid: "s"},
			CustomData:            json.RawMessage("{ \"value\" : 1.5 ,\n \"currency\": \"USD\", \"s\": \"a b\" }"),
			DataProcessingOptions: []string{"LDU"}, DPOCountry: &one, DPOState: &zero,
			OriginalEventData: json.RawMessage(`{"event_name":"Lead"}`), MessagingChannel: "whatsapp"},
		{EventName: "x", EventTime: 1},
		{EventName: "y", EventTime: 2, UserData: UserData{Fbc: "fb.1.2.AbC"}},
	}
	for i, ev := range evs {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&ev); err != nil {
			t.Fatal(err)
		}
		got := ev.AppendJSON(nil)
		if !bytes.Equal(got, bytes.TrimSpace(want.Bytes())) {
			t.Errorf("event %d:\n got %s\nwant %s", i, got, want.Bytes())
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\u2028", "\xff\xfe", "é😀", "\x00\x1f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.Encode(s)
		want := bytes.TrimSpace(buf.Bytes())
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

// FuzzAppendCompact compares appendCompact with json.Compact on valid
// JSON (what it is given: raw objects the decoder checked).
func FuzzAppendCompact(f *testing.F) {
	for _, s := range []string{`{}`, ` { "a" : [ 1 , "x y" , {"b":"\\\" \t"} ] } `, "{\"a\":\"\u00e9 \"\r\n}", `[true, false, null]`, `"  "`, `{"value":49.9,"currency":"USD"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid([]byte(s)) {
			return
		}
		var want bytes.Buffer
		if err := json.Compact(&want, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if got := appendCompact([]byte("x"), []byte(s)); string(got) != "x"+want.String() {
			t.Fatalf("appendCompact(%q) = %q, want %q", s, got[1:], want.Bytes())
		}
	})
}

func BenchmarkAppendCompact(b *testing.B) {
	raw := []byte(`{"value":129.5,"currency":"USD","content_type":"product","content_ids":["sku-1841","sku-77"],"num_items":2,"order_id":"k3j9x2"}`)
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = appendCompact(buf[:0], raw)
	}
}

// BenchmarkAppendJSON encodes the realistic event (user_data walks
// userDataFields).
func BenchmarkAppendJSON(b *testing.B) {
	ev, ok := decodeFast(realisticEvent(1))
	if !ok {
		b.Fatal("the fast decoder refused the realistic event")
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = ev.AppendJSON(buf[:0])
	}
}
