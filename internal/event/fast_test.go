package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/capirelay/capirelay/internal/sharedtest"
)

// realisticEvent is what bench/loadgen and the ingest benchmark send: a
// fully populated website purchase, encoded by encoding/json (sorted keys,
// HTML escaping on).
func realisticEvent(j int) []byte {
	b, err := json.Marshal(map[string]any{
		"event_name": "Purchase", "event_time": 1760000000, "event_id": fmt.Sprintf("run-%d", j), "action_source": "website",
		"event_source_url": "https://shop.example.com/checkout?step=3&cart=<a1>",
		"user_data": map[string]any{"em": fmt.Sprintf("mary.smith%d@Example.com", j), "ph": fmt.Sprintf("(650) 555-%04d", j),
			"fn": "Mary", "ln": "Smith", "ct": "Menlo Park", "st": "California", "zp": "94025-1234", "country": "US",
			"db": "1990-02-16", "ge": "female", "external_id": fmt.Sprintf("cust-%d", j), "client_ip_address": "203.0.113.7",
			"client_user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
			"fbp":               "fb.1.1596403881668.1116446470",
			"fbc":               "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB"},
		"custom_data": map[string]any{"value": 49.9, "currency": "USD", "content_ids": []string{"sku-1", "sku-2"}, "num_items": 2},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// fullEvent sets every field of Event, each in its usual form.
const fullEvent = `{
	"event_name": "Lead", "event_time": 1760000300, "event_id": "lead-7", "action_source": "system_generated",
	"event_source_url": "https://x.example/f?a=1\u0026b=2", "referrer_url": "https://www.google.com/", "opt_out": false,
	"user_data": {"em": ["a@b.co", "c@d.co"], "ph": "+1 650 555 1212", "fn": "José", "ln": "Müller", "db": "19900216",
		"ge": "f", "ct": "menlopark", "st": "ca", "zp": "94025", "country": "us", "external_id": ["u-1", null, "u-2"],
		"client_ip_address": "2001:db8::1", "client_user_agent": "Mozilla/5.0 \"quoted\" \\ \/ \t",
		"fbc": "fb.1.1554763741205.AbC", "fbp": "fb.1.1596403881668.1116446470", "subscription_id": "sub-1",
		"fb_login_id": 1234567890, "lead_id": "987654321", "anon_id": "anon", "madid": "38400000-8cf0-11bd-b23e-10b96e40000d",
		"page_id": "p1", "page_scoped_user_id": "psid", "ctwa_clid": "ctwa", "ig_account_id": "ig1", "ig_sid": "igs",
		"f5first": "maria", "f5last": "mulle", "fi": "m", "dobd": "16", "dobm": "02", "doby": "1990", "app_user_id": "app-1"},
	"custom_data": {"value": 12.5, "currency": "eur", "contents": [{"id": "a", "quantity": 2}], "note": "\ud83d\ude00"},
	"data_processing_options": ["LDU"], "data_processing_options_country": 1, "data_processing_options_state": 1000,
	"customer_segmentation": "new_customer_to_business", "original_event_data": {"event_name": "Purchase", "event_time": 1759999000},
	"attribution_data": {"ad_id": "1", "attribution_share": 0.5}, "app_data": {"advertiser_tracking_enabled": 1},
	"messaging_channel": "whatsapp", "advertiser_tracking_enabled": true, "advanced_measurement_table": "amt"
}
`

// fastSeeds are inputs the fast path should take (and must agree on).
var fastSeeds = []string{
	fullEvent,
	`{"event_name":"Purchase","event_time":1760000000,"event_id":"o-1","action_source":"website","event_source_url":"https://shop.example.com/x","user_data":{"em":["a@b.co"],"ph":"+1 650 555 1212","client_user_agent":"Mozilla/5.0","client_ip_address":"1.2.3.4","fbp":"fb.1.1.1"},"custom_data":{"value":1.5,"currency":"usd"}}`,
	`{"event_name":"x","user_data":{"em":null,"ph":[],"fn":[""]}}`,
	`{}`,
	` {"event_name":null,"event_time":1,"opt_out":true,"user_data":null,"custom_data":null,"data_processing_options":null,"data_processing_options_country":null} ` + "\n",
	`{"event_name":"Custom Ünïcödé ☃ 😀","user_data":{"fn":"\u00e9\u00E9","ln":"\ud83d\ude00","ct":"\ud800","st":"\udc00\ud800x","zp":"\ud800\u0041"}}`,
	`{"event_name":"bad utf8 ` + "\xff\xc3\x28\xed\xa0\x80\xe2\x82" + `","user_data":{"em":"` + "\x80" + `"}}`,
	`{"event_id":"esc \b\f\n\r\t\"\\\/ end","data_processing_options":["LDU",null,""],"data_processing_options_state":-5}`,
	`{"user_data":{"fb_login_id":0,"lead_id":18446744073709551615,"em":[null,null]}}`,
	`{"app_data":"s","custom_data":[1,-0.5e+3,true,false,null,{"":{}}],"original_event_data":0,"attribution_data":"\u0000"}`,
	`{"user_data":{"em":["1","2","3","4","5","6","7","8","9","10"],"ph":["a","b","c","d","e","f"],"fn":"x","ln":"y"}}`,
	"{\"event_name\":\"\x7f\",\"event_time\":100000000000}",
}

// slowSeeds are inputs the fast path leaves to encoding/json.
var slowSeeds = []string{
	``,
	`null`,
	`[]`,
	`{} {}`,
	`{}}`,
	`{"event_name":"a","event_name":"b"}`,
	`{"Event_Name":"a"}`,
	`{"event\u005fname":"a"}`,
	`{"evnt_name":"x"}`,
	`{"event_name":7}`,
	`{"event_name":"x","user_data":"x"}`,
	`{"event_name":"x","user_data":{"em":"a","em":"b"}}`,
	`{"event_name":"x","user_data":{"EM":"a"}}`,
	`{"event_name":"x","user_data":{"external_id":[1,"x"]}}`,
	`{"event_time":"1760000000"}`,
	`{"event_time":1.5e9}`,
	`{"event_time":1760000000.0}`,
	`{"event_time":1760000000123}`,
	`{"event_time":0}`,
	`{"event_time":-1}`,
	`{"event_time":null}`,
	`{"data_processing_options_country":1.0}`,
	`{"data_processing_options_country":1e3}`,
	`{"user_data":{"lead_id":-1}}`,
	`{"user_data":{"lead_id":1.5}}`,
	`{"opt_out":"true"}`,
	`{"custom_data":{"a":}}`,
	`{"custom_data":[1,]}`,
	`{"custom_data":01}`,
	`{"custom_data":"\x"}`,
	`{"custom_data":"` + "\x01" + `"}`,
	`{"event_name":"\'"}`,
	`{"event_name":"\u12"}`,
	`{"event_name":"x",}`,
	`{"event_name":"x"`,
	"{\"event_name\":\"x\"}\x00",
	`{"custom_data":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`,
}

// agree checks that the fast path, when it takes raw, gives exactly what
// encoding/json gives, without aliasing raw or sharing list storage, and
// that Decode always gives what decodeSlow gives. It reports whether the
// fast path took raw.
func agree(t *testing.T, raw []byte) bool {
	t.Helper()
	slow, slowErr := decodeSlow(raw, "data[0]")
	want, wantErr := slow, slowErr // Decode: encoding/json, then the limits
	if slowErr == nil {
		if err := slow.CheckLimits("data[0]"); err != nil {
			want, wantErr = nil, err
		}
	}
	got, err := Decode(raw, "data[0]")
	if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(%q) = %+v, %v; encoding/json gives %+v, %v", raw, got, err, want, wantErr)
	}
	scratch := append([]byte(nil), raw...)
	fast, ok := decodeFast(scratch)
	if !ok {
		return false
	}
	if slowErr != nil {
		t.Fatalf("fast path took %q, which encoding/json refuses: %v", raw, slowErr)
	}
	if wantErr != nil {
		return true // over the limits: the fast path keeps only the first values
	}
	for i := range scratch {
		scratch[i] = 'X' // the event must not share the input's bytes
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("fast path on %q:\n got %#v\nwant %#v", raw, fast, slow)
	}
	// Appending to one list must not change another.
	var lists []*List
	for _, k := range []string{"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id"} {
		lists = append(lists, fast.UserData.List(k))
	}
	for _, l := range lists {
		*l = append(*l, "\x00appended")
	}
	for i, k := range []string{"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id"} {
		l := *lists[i]
		if want := *slow.UserData.List(k); !slices.Equal(l[:len(l)-1], want) {
			t.Fatalf("fast path on %q: appending to the lists changed %s to %q, want %q", raw, k, l[:len(l)-1], want)
		}
	}
	return true
}

func TestDecodeFastTakesCommonEvents(t *testing.T) {
	seeds := append([]string(nil), fastSeeds...)
	for j := range 3 {
		seeds = append(seeds, string(realisticEvent(j)))
	}
	for _, s := range seeds {
		if !agree(t, []byte(s)) {
			t.Errorf("fast path did not take %s", s)
		}
	}
	// The fully populated event sets every field: a field the fast path
	// forgot would leave it zero.
	ev, ok := decodeFast([]byte(fullEvent))
	if !ok {
		t.Fatal("fast path did not take the full event")
	}
	v := reflect.ValueOf(*ev)
	for _, sv := range []reflect.Value{v, v.FieldByName("UserData")} {
		for i := range sv.NumField() {
			if f := sv.Type().Field(i); sv.Field(i).IsZero() && f.Name != "OptOut" && f.Tag.Get("json") != "-" {
				t.Errorf("full event: %s is not set", f.Name)
			}
		}
	}
}

func TestDecodeFastLeavesTheRest(t *testing.T) {
	for _, s := range slowSeeds {
		if agree(t, []byte(s)) {
			t.Errorf("fast path took %q, which should go to encoding/json", s)
		}
	}
}

// FuzzDecodeFast: whatever the input, Decode answers exactly as
// encoding/json does, and the fast path takes only what encoding/json
// accepts, with the same result.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	for _, s := range slowSeeds {
		f.Add([]byte(s))
	}
	f.Add(realisticEvent(1))
	f.Fuzz(func(t *testing.T, raw []byte) {
		agree(t, raw)
	})
}

func BenchmarkDecode(b *testing.B) {
	raw := realisticEvent(42)
	for _, impl := range []struct {
		name   string
		decode func([]byte, string) (*Event, error)
	}{{"fast", Decode}, {"slow", decodeSlow}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := impl.decode(raw, "data[0]"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// slowEnvelope is how collect decodes a request body with encoding/json.
func slowEnvelope(body []byte) (Envelope, error) {
	var req struct {
		Data           json.RawMessage `json:"data"`
		TestEventCode  string          `json:"test_event_code"`
		AccessToken    string          `json:"access_token"`
		PartnerAgent   string          `json:"partner_agent"`
		NamespaceID    string          `json:"namespace_id"`
		UploadID       string          `json:"upload_id"`
		UploadTag      string          `json:"upload_tag"`
		UploadSource   string          `json:"upload_source"`
		ID             string          `json:"id"`
		AppsecretProof string          `json:"appsecret_proof"`
		Fields         json.RawMessage `json:"fields"`
		Platforms      json.RawMessage `json:"platforms"`
		Progress       json.RawMessage `json:"progress"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Envelope{}, err
	}
	if dec.More() {
		return Envelope{}, errors.New("trailing data")
	}
	return Envelope(req), nil
}

// agreeEnvelope checks DecodeEnvelope against encoding/json and reports
// whether it took body.
func agreeEnvelope(t *testing.T, body []byte) bool {
	t.Helper()
	env, ok := DecodeEnvelope(body)
	if !ok {
		return false
	}
	want, err := slowEnvelope(body)
	if err != nil {
		t.Fatalf("DecodeEnvelope took %q, which encoding/json refuses: %v", body, err)
	}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("DecodeEnvelope(%q):\n got %#v\nwant %#v", body, env, want)
	}
	return true
}

var envelopeSeeds = []string{
	`{"data":[` + fullEvent + `,` + fastSeeds[1] + `],"test_event_code":"TEST123","access_token":"crk_x","partner_agent":"p","namespace_id":"n","upload_id":"u","upload_tag":"t","upload_source":"s"}`,
	` {"data":"[{\"event_name\":\"x\"}]", "access_token":null}` + "\n",
	`{"data":null}`,
	`{}`,
	`{"data":[],"test_event_code":"\u00e9\ud83d\ude00"}`,
	// Meta's Node SDK: the node id and appsecret_proof in the body.
	`{"data":[],"access_token":"crk_x","appsecret_proof":"ab12","id":"1234567890","fields":[] ,"platforms":null,"progress":{"a":1}}`,
}

var envelopeSlowSeeds = []string{
	``, `null`, `[]`, `{"data":[]} x`, `{"data":[]}}`, `{"Data":[]}`, `{"data":[],"data":[]}`, `{"dat\u0061":[]}`,
	`{"data":[],"extra":1}`, `{"data":[1,]}`, `{"data":[],"access_token":1}`, `{"data":[{"a":tru}]}`, `{"data":[]`,
	`{"test_event_code":"a","test_event_code":"b"}`,
}

func TestDecodeEnvelope(t *testing.T) {
	var evs []string
	for j := range 100 {
		evs = append(evs, string(realisticEvent(j)))
	}
	seeds := append([]string{`{"data":[` + strings.Join(evs, ",") + `]}`}, envelopeSeeds...)
	for _, s := range seeds {
		if !agreeEnvelope(t, []byte(s)) {
			t.Errorf("DecodeEnvelope did not take %.200s", s)
		}
	}
	for _, s := range envelopeSlowSeeds {
		if agreeEnvelope(t, []byte(s)) {
			t.Errorf("DecodeEnvelope took %q, which should go to encoding/json", s)
		}
	}
}

// FuzzDecodeEnvelope: DecodeEnvelope takes only what encoding/json
// accepts, with the same result.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s))
	}
	for _, s := range envelopeSlowSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		agreeEnvelope(t, body)
	})
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	var evs [][]byte
	for j := range 100 {
		evs = append(evs, realisticEvent(j))
	}
	body := []byte(`{"data":[` + string(bytes.Join(evs, []byte(","))) + `]}`)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, ok := DecodeEnvelope(body); !ok {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("slow", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := slowEnvelope(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// DecodeBatch cuts the events' strings from the body itself: a copy of
// the body for them cost as much as reading it. (Strings that needed
// unescaping are new, and known values such as "Purchase" constants.)
func TestDecodeBatchSharesTheBody(t *testing.T) {
	var evs [][]byte
	for j := range 10 {
		evs = append(evs, realisticEvent(j))
	}
	body := []byte(`{"data":[` + string(bytes.Join(evs, []byte(","))) + `]}`)
	_, got, ok := DecodeBatch(body)
	if !ok || len(got) != 10 {
		t.Fatalf("DecodeBatch = %d events, %v", len(got), ok)
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(body)))
	hi := lo + uintptr(len(body))
	for i, ev := range got {
		for name, s := range map[string]string{"event_id": ev.EventID, "client_user_agent": ev.UserData.ClientUserAgent, "fbp": ev.UserData.Fbp} {
			if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); p < lo || p >= hi {
				t.Errorf("event %d's %s %q is a copy, not the body's bytes", i, name, s)
			}
		}
	}
}

// DecodeBatch allocates its events in a few blocks sized to the events
// left in the body: few go unused.
func TestDecodeBatchBlocks(t *testing.T) {
	for _, n := range []int{1, 7, 100, 333} {
		var evs [][]byte
		for j := range n {
			evs = append(evs, realisticEvent(j))
		}
		body := []byte(`{"data":[` + string(bytes.Join(evs, []byte(","))) + `]}`)
		per := sharedtest.BytesPerRun(20, func(int) {
			if _, got, ok := DecodeBatch(body); !ok || len(got) != n {
				t.Fatalf("DecodeBatch = %d events, %v; want %d", len(got), ok, n)
			}
		})
		// Beside the blocks (of 1,240 bytes an event): the list of
		// events, and each event's strings that needed unescaping
		// (realisticEvent's URL) or a list (em, ph …), about 210 bytes.
		// Blocks doubling in size allocated 1,815 bytes an event for
		// 100 events.
		if limit := uint64(n+4)*uint64(unsafe.Sizeof(fastEvent{})) + uint64(n)*250 + 8192; per > limit {
			t.Errorf("%d events: %d bytes allocated, want at most %d", n, per, limit)
		}
	}
}
