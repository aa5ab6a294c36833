package capi_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/capitest"
)

const testToken = "EAAtesttoken0123456789"

// validEvent returns a website Purchase that passes ValidateEvent at now.
func validEvent(now time.Time, id string) json.RawMessage {
	return json.RawMessage(`{"event_name":"Purchase","event_time":` + strconv.FormatInt(now.Unix()-60, 10) +
		`,"event_id":"` + id + `","action_source":"website","event_source_url":"https://shop.example.com/checkout",` +
		`"user_data":{"em":["62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"],` +
		`"client_user_agent":"Mozilla/5.0","client_ip_address":"2001:db8::1","fbp":"fb.1.1596403881668.1116446470"},` +
		`"custom_data":{"value":12.5,"currency":"USD"}}`)
}

func setup(t *testing.T) (*capitest.Server, *capi.Client) {
	t.Helper()
	srv := capitest.New()
	t.Cleanup(srv.Close)
	return srv, &capi.Client{BaseURL: srv.URL, Timeout: 2 * time.Second}
}

func TestSendSuccess(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	now := srv.Now()
	req := &capi.Request{Data: []json.RawMessage{validEvent(now, "a"), validEvent(now, "b")}, AccessToken: testToken, TestEventCode: "TEST1", PartnerAgent: "capirelay"}
	resp, err := c.Send(t.Context(), "123", req)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if resp.EventsReceived != 2 || resp.FbtraceID == "" {
		t.Errorf("Send = %+v, want 2 events and a trace id", resp)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake saw %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Pixel != "123" || r.Version != capi.DefaultVersion || r.AccessToken != testToken || r.TestEventCode != "TEST1" || r.PartnerAgent != "capirelay" {
		t.Errorf("recorded %+v", r)
	}
	if got := len(srv.Events("123")); got != 2 {
		t.Errorf("accepted events = %d, want 2", got)
	}
}
