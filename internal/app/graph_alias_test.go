package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capitest"
	"github.com/capirelay/capirelay/internal/collect"
	"github.com/capirelay/capirelay/internal/sharedtest"
)

// graphPost posts body to the relay's Graph alias and decodes the answer.
func graphPost(t *testing.T, rawURL, ctype string, body []byte) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(rawURL, ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, out
}

// TestGraphAliasRefusesLikeGraph: every refusal on the alias is HTTP 400
// with Graph's whole error object and a fresh fbtrace_id that the log
// repeats; a request with one bad event among good ones stores nothing.
func TestGraphAliasRefusesLikeGraph(t *testing.T) {
	var logs syncBuffer
	r := newRelayLogging(t, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	_, key := r.addSite(t, "77777", "tok")
	base := r.srv.URL + "/v25.0/77777/events"
	now := time.Now()
	body := func(evs ...map[string]any) []byte {
		b, _ := json.Marshal(map[string]any{"data": evs, "access_token": key})
		return b
	}
	mut := func(id string, f func(m map[string]any)) map[string]any {
		m := serverEvent(id, now)
		f(m)
		return m
	}
	many := make([]map[string]any, 1001)
	for i := range many {
		many[i] = serverEvent(fmt.Sprint("m-", i), now)
	}
	huge := []byte(`{"access_token":"` + key + `","data":[{"event_name":"` + strings.Repeat("a", collect.MaxServerBody) + `"}]}`)
	cases := []struct {
		name        string
		url         string
		body        []byte
		code, sub   int
		userMsgHead string // error_user_msg starts so
	}{
		{"stale website event beside a good one", base, body(serverEvent("ok-1", now),
			mut("old", func(m map[string]any) { m["event_time"] = now.Add(-10 * 24 * time.Hour).Unix() })),
			100, 2804003, "data[1].event_time: is older than Meta's 7-day window"},
		{"thin event", base, body(mut("thin", func(m map[string]any) {
			m["action_source"] = "email"
			m["user_data"] = map[string]any{"ge": "f", "fn": "Mary"}
		})), 100, 2804050, "data[0].user_data: has too little customer information"},
		{"ldu in lower case", base, body(mut("ldu", func(m map[string]any) { m["data_processing_options"] = []string{"ldu"} })),
			100, 2804019, "data[0].data_processing_options[0]"},
		{"value not a number", base, body(mut("v", func(m map[string]any) {
			m["custom_data"] = map[string]any{"value": "49,90", "currency": "EUR"}
		})), 100, 2804019, "data[0].custom_data.value"},
		{"unknown field", base, body(mut("u", func(m map[string]any) { m["colour"] = 1 })), 100, 0, "data[0].colour: unknown field"},
		{"more than 1000 events", base, body(many...), 100, 0, "data: has 1001 events"},
		{"body over the cap", base, huge, 100, 0, "body: is larger than"},
		{"wrong token", base + "?access_token=crk_nope", body(serverEvent("w", now))[:0], 190, 0, ""},
		{"no token", base, []byte(`{"data":[]}`), 104, 0, ""},
		{"another site's pixel", r.srv.URL + "/v25.0/99999/events", body(serverEvent("p", now)), 100, 33, "pixel_id:"},
	}
	traces := map[string]bool{}
	for _, c := range cases {
		status, out := graphPost(t, c.url, "application/json", c.body)
		e, _ := out["error"].(map[string]any)
		if status != 400 || e == nil {
			t.Errorf("%s: %d %v, want 400 and an error object", c.name, status, out)
			continue
		}
		for _, k := range []string{"message", "type", "code", "error_subcode", "error_user_title", "error_user_msg", "is_transient", "fbtrace_id"} {
			if _, ok := e[k]; !ok {
				t.Errorf("%s: error object has no %s: %v", c.name, k, e)
			}
		}
		if e["code"] != float64(c.code) || e["error_subcode"] != float64(c.sub) || e["type"] != "OAuthException" || e["is_transient"] != false {
			t.Errorf("%s: code %v/%v type %v transient %v, want %d/%d OAuthException false", c.name, e["code"], e["error_subcode"], e["type"], e["is_transient"], c.code, c.sub)
		}
		if msg, _ := e["error_user_msg"].(string); !strings.HasPrefix(msg, c.userMsgHead) {
			t.Errorf("%s: error_user_msg %q, want it to start %q", c.name, msg, c.userMsgHead)
		}
		trace, _ := e["fbtrace_id"].(string)
		if trace == "" || traces[trace] {
			t.Errorf("%s: fbtrace_id %q is empty or repeated", c.name, trace)
		}
		traces[trace] = true
		if !strings.Contains(logs.String(), "fbtrace_id="+trace) {
			t.Errorf("%s: fbtrace_id %s is not in the log", c.name, trace)
		}
	}
	items, err := r.app.Store.Items(context.Background(), "", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 0 {
		t.Fatalf("refused requests stored %d events, want none", len(items))
	}
}

// TestGraphAliasTakesWhatGraphTakes: the body Meta's Node SDK sends (the
// pixel id and appsecret_proof in it, the token in the query and the
// body), the fields Graph accepts, the strings it coerces, a form body with
// data as a JSON string; and the request's partner_agent, namespace_id,
// upload_* and test_event_code (from the query) reach Meta.
func TestGraphAliasTakesWhatGraphTakes(t *testing.T) {
	r := newRelay(t, nil)
	_, key := r.addSite(t, "88888", "tok")
	now := time.Now()
	sdk := serverEvent("sdk-1", now)
	sdk["event_time"] = fmt.Sprint(now.Unix() - 60)
	sdk["custom_data"] = map[string]any{"value": "49.90", "currency": "eur"}
	sdk["advertiser_tracking_enabled"] = false
	ud := sdk["user_data"].(map[string]any)
	ud["f5first"], ud["dobd"], ud["doby"], ud["app_user_id"] = "maria", "7", "1990", "user-7"
	iso := serverEvent("sdk-2", now)
	iso["event_time"] = now.Add(-time.Hour).UTC().Format(time.RFC3339)
	body, _ := json.Marshal(map[string]any{"data": []any{sdk, iso}, "access_token": key, "id": "88888",
		"appsecret_proof": "0f3c", "partner_agent": "acme-shop-2.1", "namespace_id": "ns-9", "upload_id": "up-1",
		"upload_tag": "store-sales", "upload_source": "pos"})
	status, out := graphPost(t, r.srv.URL+"/v24.0/88888/events?access_token="+key+"&test_event_code=TEST777", "application/json", body)
	if status != 200 || out["events_received"] != float64(2) || out["fbtrace_id"] == "" {
		t.Fatalf("SDK body: %d %v", status, out)
	}
	form := url.Values{"data": {mustMarshal(t, []any{serverEvent("form-1", now)})}, "access_token": {key}, "test_event_code": {"TESTFORM"}}
	status, out = graphPost(t, r.srv.URL+"/v24.0/88888/events", "application/x-www-form-urlencoded", []byte(form.Encode()))
	if status != 200 || out["events_received"] != float64(1) {
		t.Fatalf("form body: %d %v", status, out)
	}
	sharedtest.WaitFor(t, 10*time.Second, "alias events delivered", func() bool { return len(r.graph.Events("88888")) == 3 })
	var sdkReq, formReq *capitest.Request
	for _, rq := range r.graph.Requests() {
		if rq.Status != 200 {
			continue
		}
		switch rq.TestEventCode {
		case "TEST777":
			sdkReq = &rq
		case "TESTFORM":
			formReq = &rq
		}
	}
	if sdkReq == nil || formReq == nil {
		t.Fatalf("Meta did not get both test event codes: %+v", r.graph.Requests())
	}
	if sdkReq.PartnerAgent != "acme-shop-2.1" || sdkReq.NamespaceID != "ns-9" || sdkReq.UploadID != "up-1" ||
		sdkReq.UploadTag != "store-sales" || sdkReq.UploadSource != "pos" {
		t.Errorf("forwarded parameters = %+v", sdkReq)
	}
	if formReq.PartnerAgent != PartnerAgent() {
		t.Errorf("partner_agent without the caller's = %q, want the relay's", formReq.PartnerAgent)
	}
	var got struct {
		EventTime  int64                      `json:"event_time"`
		CustomData map[string]any             `json:"custom_data"`
		UserData   map[string]json.RawMessage `json:"user_data"`
		ATE        *bool                      `json:"advertiser_tracking_enabled"`
	}
	if err := json.Unmarshal(r.graph.EventsByID("88888")["sdk-1"][0], &got); err != nil {
		t.Fatal(err)
	}
	if got.EventTime != now.Unix()-60 || got.CustomData["value"] != 49.9 || got.CustomData["currency"] != "EUR" || got.ATE == nil || *got.ATE {
		t.Errorf("coerced event = %+v", got)
	}
	for _, k := range []string{"f5first", "dobd", "doby", "app_user_id"} {
		var h string
		if json.Unmarshal(got.UserData[k], &h) != nil || len(h) != 64 {
			t.Errorf("user_data.%s = %s, want a SHA-256 hex", k, got.UserData[k])
		}
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
