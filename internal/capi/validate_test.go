package capi_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
)

var vnow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

const (
	hashEm    = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f" // john_smith@gmail.com
	hashMary  = "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"
	hashF     = "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"
	hashUS    = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"
	hashCT    = "350c754ba4d38897693aa077ef43072a859d23f613443133fecbbd90a3512ca5"
	hashCA    = "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"
	hashEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	rawEmail  = "john.secret@example.com"
)

// baseEvent is a valid website Purchase at vnow.
func baseEvent() map[string]any {
	return map[string]any{
		"event_name":       "Purchase",
		"event_time":       vnow.Unix() - 120,
		"event_id":         "order-1",
		"action_source":    "website",
		"event_source_url": "https://shop.example.com/checkout?step=3",
		"user_data": map[string]any{
			"em":                []any{hashEm},
			"client_user_agent": "Mozilla/5.0",
			"client_ip_address": "203.0.113.9",
			"fbp":               "fb.1.1596403881668.1116446470",
			"fbc":               "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk",
		},
		"custom_data": map[string]any{"value": 19.99, "currency": "EUR"},
	}
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ud(ev map[string]any) map[string]any { return ev["user_data"].(map[string]any) }

func TestValidateEventValid(t *testing.T) {
	t.Parallel()
	if probs := capi.ValidateEvent(mustJSON(t, baseEvent()), vnow); len(probs) != 0 {
		t.Fatalf("ValidateEvent(base) = %v, want none", probs)
	}
	tests := []struct {
		name   string
		mutate func(ev map[string]any)
	}{
		{"em as a single string", func(ev map[string]any) { ud(ev)["em"] = hashEm }},
		{"em with a PBL appendix", func(ev map[string]any) { ud(ev)["em"] = []any{hashEm + ".AQYBAQMC"} }},
		{"em with a legacy appendix", func(ev map[string]any) { ud(ev)["em"] = []any{hashEm + ".Bg"} }},
		{"fbc with a PBL appendix", func(ev map[string]any) { ud(ev)["fbc"] = "fb.1.1554763741205.IwAR2F4-dbP0l7_aem_x.AQQAAQMC" }},
		{"external_id raw", func(ev map[string]any) { ud(ev)["external_id"] = []any{"customer-42"} }},
		{"currency lower case", func(ev map[string]any) { ev["custom_data"].(map[string]any)["currency"] = "usd" }},
		{"value zero", func(ev map[string]any) { ev["custom_data"].(map[string]any)["value"] = 0 }},
		{"custom event without custom_data", func(ev map[string]any) { ev["event_name"] = "Quiz"; delete(ev, "custom_data") }},
		{"physical_store 30 days old", func(ev map[string]any) {
			ev["action_source"] = "physical_store"
			ev["event_time"] = vnow.Add(-30 * 24 * time.Hour).Unix()
		}},
		{"clock skew 1 minute", func(ev map[string]any) { ev["event_time"] = vnow.Unix() + 60 }},
		{"ipv6", func(ev map[string]any) { ud(ev)["client_ip_address"] = "2001:db8::1" }},
		{"fn and ln only is not thin", func(ev map[string]any) {
			ev["action_source"] = "email"
			ev["user_data"] = map[string]any{"fn": []any{hashMary}, "ln": []any{hashMary}}
		}},
		{"LDU geolocated with IP", func(ev map[string]any) {
			ev["data_processing_options"] = []any{"LDU"}
			ev["data_processing_options_country"] = 0
			ev["data_processing_options_state"] = 0
		}},
		{"LDU California without IP", func(ev map[string]any) {
			delete(ud(ev), "client_ip_address")
			ev["data_processing_options"] = []any{"LDU"}
			ev["data_processing_options_country"] = 1
			ev["data_processing_options_state"] = 1000
		}},
		{"LDU off", func(ev map[string]any) { ev["data_processing_options"] = []any{} }},
		{"opt_out", func(ev map[string]any) { ev["opt_out"] = true }},
		{"lead id counts as customer information", func(ev map[string]any) {
			ev["action_source"] = "system_generated"
			ev["user_data"] = map[string]any{"lead_id": 123456789, "ge": []any{hashF}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := baseEvent()
			tc.mutate(ev)
			if probs := capi.ValidateEvent(mustJSON(t, ev), vnow); len(probs) != 0 {
				t.Errorf("ValidateEvent = %v, want none", probs)
			}
		})
	}
}

func TestValidateEventProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(ev map[string]any)
		path    string
		subcode int
	}{
		{"event_name missing", func(ev map[string]any) { delete(ev, "event_name") }, "event_name", 0},
		{"event_name number", func(ev map[string]any) { ev["event_name"] = 7 }, "event_name", 0},
		{"event_name empty", func(ev map[string]any) { ev["event_name"] = " " }, "event_name", 0},
		{"event_time missing", func(ev map[string]any) { delete(ev, "event_time") }, "event_time", 0},
		{"event_time string", func(ev map[string]any) { ev["event_time"] = "yesterday" }, "event_time", 0},
		{"event_time ISO 8601 too old", func(ev map[string]any) { ev["event_time"] = vnow.Add(-10 * 24 * time.Hour).Format(time.RFC3339) }, "event_time", capi.SubcodeTooOld},
		{"unknown event field", func(ev map[string]any) { ev["colour"] = "red" }, "colour", 0},
		{"unknown user_data field", func(ev map[string]any) { ud(ev)["email"] = hashEm }, "user_data.email", 0},
		{"f5first raw", func(ev map[string]any) { ud(ev)["f5first"] = "maria" }, "user_data.f5first", 0},
		{"app without app_data", func(ev map[string]any) { ev["action_source"] = "app" }, "app_data", 0},
		{"unknown app_data field", func(ev map[string]any) {
			ev["action_source"] = "app"
			ev["app_data"] = map[string]any{"extinfo": []any{"i2"}, "colour": 1}
		}, "app_data.colour", 0},
		{"store sale past 62 days", func(ev map[string]any) {
			ev["action_source"] = "physical_store"
			ev["event_time"] = vnow.Add(-63 * 24 * time.Hour).Unix()
		}, "event_time", capi.SubcodeTooOld},
		{"event_time milliseconds", func(ev map[string]any) { ev["event_time"] = vnow.UnixMilli() }, "event_time", 0},
		{"event_time fraction", func(ev map[string]any) { ev["event_time"] = float64(vnow.Unix()) + 0.5 }, "event_time", 0},
		{"event_time 8 days old", func(ev map[string]any) { ev["event_time"] = vnow.Add(-8 * 24 * time.Hour).Unix() }, "event_time", capi.SubcodeTooOld},
		{"event_time in the future", func(ev map[string]any) { ev["event_time"] = vnow.Add(time.Hour).Unix() }, "event_time", 0},
		{"physical_store 63 days old", func(ev map[string]any) {
			ev["action_source"] = "physical_store"
			ev["event_time"] = vnow.Add(-63 * 24 * time.Hour).Unix()
		}, "event_time", capi.SubcodeTooOld},
		{"action_source missing", func(ev map[string]any) { delete(ev, "action_source") }, "action_source", 0},
		{"action_source unknown", func(ev map[string]any) { ev["action_source"] = "Website" }, "action_source", 0},
		{"event_source_url missing on website", func(ev map[string]any) { delete(ev, "event_source_url") }, "event_source_url", 0},
		{"event_source_url relative", func(ev map[string]any) { ev["event_source_url"] = "/checkout" }, "event_source_url", 0},
		{"event_source_url ftp", func(ev map[string]any) { ev["event_source_url"] = "ftp://shop.example.com/" }, "event_source_url", 0},
		{"event_id number", func(ev map[string]any) { ev["event_id"] = 42 }, "event_id", 0},
		{"opt_out string", func(ev map[string]any) { ev["opt_out"] = "yes" }, "opt_out", 0},
		{"user_data missing", func(ev map[string]any) { delete(ev, "user_data") }, "user_data", 0},
		{"user_data array", func(ev map[string]any) { ev["user_data"] = []any{} }, "user_data", 0},
		{"client_user_agent missing on website", func(ev map[string]any) { delete(ud(ev), "client_user_agent") }, "user_data.client_user_agent", 0},
		{"client_user_agent number", func(ev map[string]any) {
			ev["action_source"] = "app"
			ev["app_data"] = map[string]any{}
			ud(ev)["client_user_agent"] = 5
		}, "user_data.client_user_agent", 0},
		{"em unhashed", func(ev map[string]any) { ud(ev)["em"] = []any{rawEmail} }, "user_data.em[0]", 0},
		{"em unhashed single", func(ev map[string]any) { ud(ev)["em"] = rawEmail }, "user_data.em", 0},
		{"em upper-case hex", func(ev map[string]any) { ud(ev)["em"] = []any{strings.ToUpper(hashEm)} }, "user_data.em[0]", 0},
		{"em second element bad", func(ev map[string]any) { ud(ev)["em"] = []any{hashEm, hashEm[:63]} }, "user_data.em[1]", 0},
		{"em element number", func(ev map[string]any) { ud(ev)["em"] = []any{hashEm, 5} }, "user_data.em[1]", 0},
		{"em element null", func(ev map[string]any) { ud(ev)["em"] = []any{nil, hashEm} }, "user_data.em[0]", 0},
		{"em object", func(ev map[string]any) { ud(ev)["em"] = map[string]any{} }, "user_data.em", 0},
		{"em bad appendix", func(ev map[string]any) { ud(ev)["em"] = []any{hashEm + ".ZZZZZZZZ"} }, "user_data.em[0]", 0},
		{"ph hash of empty string", func(ev map[string]any) { ud(ev)["ph"] = []any{hashEmpty} }, "user_data.ph[0]", 0},
		{"country unhashed", func(ev map[string]any) { ud(ev)["country"] = "us" }, "user_data.country", 0},
		{"db unhashed", func(ev map[string]any) { ud(ev)["db"] = []any{"19970216"} }, "user_data.db[0]", 0},
		{"external_id empty", func(ev map[string]any) { ud(ev)["external_id"] = "" }, "user_data.external_id", 0},
		{"external_id number", func(ev map[string]any) { ud(ev)["external_id"] = 42 }, "user_data.external_id", 0},
		{"client_ip_address invalid", func(ev map[string]any) { ud(ev)["client_ip_address"] = "999.1.1.1" }, "user_data.client_ip_address", 0},
		{"fbc without click id", func(ev map[string]any) { ud(ev)["fbc"] = "fb.1.1554763741205" }, "user_data.fbc", capi.SubcodeBadClickID},
		{"fbc non-digit time", func(ev map[string]any) { ud(ev)["fbc"] = "fb.1.abc.IwAR2F4" }, "user_data.fbc", capi.SubcodeBadClickID},
		{"fbc bad appendix", func(ev map[string]any) { ud(ev)["fbc"] = "fb.1.1554763741205.IwAR2F4.toolongappendix" }, "user_data.fbc", capi.SubcodeBadClickID},
		{"fbc wrong prefix", func(ev map[string]any) { ud(ev)["fbc"] = "fc.1.1554763741205.IwAR2F4" }, "user_data.fbc", capi.SubcodeBadClickID},
		{"fbp subdomain not a number", func(ev map[string]any) { ud(ev)["fbp"] = "fb.a.1596403881668.1116446470" }, "user_data.fbp", 0},
		{"thin: location and UA", func(ev map[string]any) {
			ev["user_data"] = map[string]any{"client_user_agent": "Mozilla/5.0", "ct": []any{hashCT}, "st": []any{hashCA}, "country": []any{hashUS}}
		}, "user_data", capi.SubcodeThinMatch},
		{"thin: fn and ge", func(ev map[string]any) {
			ev["action_source"] = "email"
			ev["user_data"] = map[string]any{"fn": []any{hashMary}, "ge": []any{hashF}}
		}, "user_data", capi.SubcodeThinMatch},
		{"thin: db only", func(ev map[string]any) {
			ev["action_source"] = "email"
			ev["user_data"] = map[string]any{"db": []any{hashMary}}
		}, "user_data", capi.SubcodeThinMatch},
		{"thin: empty user_data", func(ev map[string]any) {
			ev["action_source"] = "chat"
			ev["user_data"] = map[string]any{"em": []any{}}
		}, "user_data", capi.SubcodeThinMatch},
		{"custom_data array", func(ev map[string]any) { ev["custom_data"] = []any{} }, "custom_data", 0},
		{"value string", func(ev map[string]any) { ev["custom_data"].(map[string]any)["value"] = "19,99" }, "custom_data.value", 0},
		{"value without currency", func(ev map[string]any) {
			ev["event_name"] = "Lead"
			ev["custom_data"] = map[string]any{"value": 3}
		}, "custom_data.currency", 0},
		{"currency not ISO", func(ev map[string]any) { ev["custom_data"].(map[string]any)["currency"] = "EURO" }, "custom_data.currency", 0},
		{"currency unknown", func(ev map[string]any) { ev["custom_data"].(map[string]any)["currency"] = "XYZ" }, "custom_data.currency", 0},
		{"purchase without currency", func(ev map[string]any) { delete(ev["custom_data"].(map[string]any), "currency") }, "custom_data.currency", 0},
		{"purchase without value", func(ev map[string]any) { delete(ev["custom_data"].(map[string]any), "value") }, "custom_data.value", 0},
		{"dpo not LDU", func(ev map[string]any) { ev["data_processing_options"] = []any{"ldu"} }, "data_processing_options[0]", 0},
		{"dpo string", func(ev map[string]any) { ev["data_processing_options"] = "LDU" }, "data_processing_options", 0},
		{"dpo country string", func(ev map[string]any) {
			ev["data_processing_options"] = []any{"LDU"}
			ev["data_processing_options_country"] = "1"
			ev["data_processing_options_state"] = 1000
		}, "data_processing_options_country", 0},
		{"dpo country 2", func(ev map[string]any) { ev["data_processing_options_country"] = 2 }, "data_processing_options_country", 0},
		{"dpo state unknown", func(ev map[string]any) { ev["data_processing_options_state"] = 5 }, "data_processing_options_state", 0},
		{"LDU without IP or state", func(ev map[string]any) {
			delete(ud(ev), "client_ip_address")
			ev["data_processing_options"] = []any{"LDU"}
		}, "data_processing_options_state", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := baseEvent()
			tc.mutate(ev)
			raw := mustJSON(t, ev)
			probs := capi.ValidateEvent(raw, vnow)
			if len(probs) != 1 {
				t.Fatalf("ValidateEvent(%s) = %v, want exactly one problem at %s", raw, probs, tc.path)
			}
			p := probs[0]
			if p.Path != tc.path || p.Subcode != tc.subcode || p.Code != 100 {
				t.Errorf("ValidateEvent = %+v, want path %q code 100 subcode %d", p, tc.path, tc.subcode)
			}
			if strings.Contains(p.Message, rawEmail) || strings.Contains(p.Message, "example.com") || strings.Contains(p.Message, hashEm[:16]) {
				t.Errorf("problem message leaks a value: %q", p.Message)
			}
		})
	}
}

func TestValidateEventNotAnObject(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{``, `[]`, `"x"`, `{"event_name":`, `{"a":1}x`, `{"user_data":{"em":[1,]}}`} {
		probs := capi.ValidateEvent(json.RawMessage(raw), vnow)
		if len(probs) != 1 || probs[0].Path != "" {
			t.Errorf("ValidateEvent(%q) = %v, want one problem at the event", raw, probs)
		}
	}
}

func TestValidatePayload(t *testing.T) {
	t.Parallel()
	good := string(mustJSON(t, baseEvent()))
	bad := baseEvent()
	ud(bad)["em"] = []any{hashEm, rawEmail}
	badJSON := string(mustJSON(t, bad))
	many := strings.Repeat(good+",", capi.MaxEventsPerRequest) + good

	tests := []struct {
		name  string
		body  string
		paths []string
	}{
		{"valid", `{"data":[` + good + `,` + good + `],"access_token":"x","test_event_code":"TEST1"}`, nil},
		{"not an object", `[` + good + `]`, []string{""}},
		{"not JSON", `{"data":[`, []string{""}},
		{"data missing", `{"access_token":"x"}`, []string{"data"}},
		{"data string", `{"data":"[]"}`, []string{"data"}},
		{"data empty", `{"data":[]}`, []string{"data"}},
		{"too many events", `{"data":[` + many + `]}`, []string{"data"}},
		{"second event bad em", `{"data":[` + good + `,` + badJSON + `]}`, []string{"data[1].user_data.em[1]"}},
		{"second event not an object", `{"data":[` + good + `,7]}`, []string{"data[1]"}},
		{"access_token number", `{"data":[` + good + `],"access_token":5}`, []string{"access_token"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			probs := capi.ValidatePayload([]byte(tc.body), vnow)
			var paths []string
			for _, p := range probs {
				paths = append(paths, p.Path)
			}
			if strings.Join(paths, ",") != strings.Join(tc.paths, ",") {
				t.Errorf("ValidatePayload paths = %q, want %q (%v)", paths, tc.paths, probs)
			}
		})
	}
}

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	ev := `{"event_name":"PageView","user_data":{"em":["a\"b"]}}`
	for _, body := range []string{
		`{"data":[` + ev + `, {"x":[1,2]}],"access_token":"tok","test_event_code":"T\u0031","partner_agent":null}`,
		` {"access_token":"tok","test_event_code":"T1","data":` + strconv.Quote(`[`+ev+`,{"x":[1,2]}]`) + `}`,
	} {
		req, err := capi.DecodeRequest([]byte(body))
		if err != nil {
			t.Fatalf("DecodeRequest(%s): %v", body, err)
		}
		if req.AccessToken != "tok" || req.TestEventCode != "T1" || len(req.Data) != 2 || string(req.Data[0]) != ev || string(req.Data[1]) != `{"x":[1,2]}` {
			t.Errorf("DecodeRequest(%s) = %+v", body, req)
		}
	}
	for _, body := range []string{``, `[]`, `{"data":{}}`, `{"data":[1,]}`, `{"data":[1]`, `{}`, `{"data":[1],"access_token":5}`} {
		if _, err := capi.DecodeRequest([]byte(body)); err == nil {
			t.Errorf("DecodeRequest(%q) = nil error, want failure", body)
		}
	}
}

func BenchmarkValidateEvent(b *testing.B) {
	raw := mustJSON(b, baseEvent())
	b.ReportAllocs()
	for b.Loop() {
		if probs := capi.ValidateEvent(raw, vnow); len(probs) != 0 {
			b.Fatal(probs)
		}
	}
}
