package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/dispatch"
	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// verdict is what one path says of an event: "" when it takes it, else
// the JSON path (relative to the event) of the first field it refuses.
type verdict string

const accepted verdict = ""

// TestRulebookVerdictsAgree feeds the same events to every path that judges
// one against Meta's rules (metarules): the ingest pipeline, capi's
// pre-send validator, `capirelay validate` and the sandbox destination. Each
// must take or refuse each event alike, naming the same field.
func TestRulebookVerdictsAgree(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	day := int64(24 * 3600)
	hash := sha256Hex
	ua := "Mozilla/5.0 (X11; Linux x86_64)"
	// base is a valid website purchase with pre-hashed user_data (the
	// validator and the sandbox judge payloads as Meta gets them).
	base := func() map[string]any {
		return map[string]any{
			"event_name": "Purchase", "event_time": now.Unix() - 60, "event_id": "o-1", "action_source": "website",
			"event_source_url": "https://shop.example.com/thanks",
			"user_data": map[string]any{"em": []string{hash("a@example.com")}, "client_user_agent": ua,
				"client_ip_address": "203.0.113.9", "fbp": "fb.1.1596403881668.1116446470"},
			"custom_data": map[string]any{"value": 49.9, "currency": "EUR"},
		}
	}
	ud := func(ev map[string]any) map[string]any { return ev["user_data"].(map[string]any) }
	cases := []struct {
		name   string
		mutate func(ev map[string]any)
		want   verdict
	}{
		{"valid website purchase", func(map[string]any) {}, accepted},
		{"website event 10 days old", func(ev map[string]any) { ev["event_time"] = now.Unix() - 10*day }, "event_time"},
		{"store sale 20 days old", func(ev map[string]any) {
			ev["action_source"] = "physical_store"
			ev["event_time"] = now.Unix() - 20*day
		}, accepted},
		{"store sale 63 days old", func(ev map[string]any) {
			ev["action_source"] = "physical_store"
			ev["event_time"] = now.Unix() - 63*day
		}, "event_time"},
		{"5 minutes ahead (clamped)", func(ev map[string]any) { ev["event_time"] = now.Unix() + 300 }, accepted},
		{"15 minutes ahead", func(ev map[string]any) { ev["event_time"] = now.Unix() + 900 }, "event_time"},
		{"event_time as a numeric string", func(ev map[string]any) { ev["event_time"] = fmt.Sprint(now.Unix() - 60) }, accepted},
		{"event_time as ISO 8601", func(ev map[string]any) { ev["event_time"] = now.Add(-time.Hour).Format(time.RFC3339) }, accepted},
		{"event_time ISO 8601 8 days old", func(ev map[string]any) { ev["event_time"] = now.Add(-8 * 24 * time.Hour).Format(time.RFC3339) }, "event_time"},
		{"unknown action_source", func(ev map[string]any) { ev["action_source"] = "tv" }, "action_source"},
		{"website without event_source_url", func(ev map[string]any) { delete(ev, "event_source_url") }, "event_source_url"},
		{"website without user agent", func(ev map[string]any) { delete(ud(ev), "client_user_agent") }, "user_data.client_user_agent"},
		{"app event without app_data", func(ev map[string]any) { ev["action_source"] = "app" }, "app_data"},
		{"app event with app_data and SDK fields", func(ev map[string]any) {
			ev["action_source"] = "app"
			ev["advertiser_tracking_enabled"] = true
			ev["app_data"] = map[string]any{"advertiser_tracking_enabled": true, "application_tracking_enabled": true,
				"extinfo": map[string]any{"0": "i2", "1": "com.example.app"}}
			ud(ev)["anon_id"] = "install-1"
			ud(ev)["f5first"] = hash("maria")
			ud(ev)["app_user_id"] = hash("user-1")
		}, accepted},
		{"unknown app_data field", func(ev map[string]any) {
			ev["action_source"] = "app"
			ev["app_data"] = map[string]any{"colour": "red"}
		}, "app_data.colour"},
		{"thin user_data", func(ev map[string]any) {
			ev["user_data"] = map[string]any{"ct": []string{hash("paris")}, "country": []string{hash("fr")}, "client_user_agent": ua}
		}, "user_data"},
		{"thin: name and gender", func(ev map[string]any) {
			ev["action_source"] = "email"
			ev["user_data"] = map[string]any{"fn": []string{hash("mary")}, "ge": []string{hash("f")}}
		}, "user_data"},
		{"value as a numeric string", func(ev map[string]any) { ev["custom_data"] = map[string]any{"value": "49.90", "currency": "EUR"} }, accepted},
		{"value not a number", func(ev map[string]any) { ev["custom_data"] = map[string]any{"value": "49,90", "currency": "EUR"} }, "custom_data.value"},
		{"value without currency", func(ev map[string]any) {
			ev["event_name"] = "Lead"
			ev["custom_data"] = map[string]any{"value": 3}
		}, "custom_data.currency"},
		{"withdrawn currency", func(ev map[string]any) { ev["custom_data"] = map[string]any{"value": 3, "currency": "HRK"} }, "custom_data.currency"},
		{"ldu in lower case", func(ev map[string]any) { ev["data_processing_options"] = []string{"ldu"} }, "data_processing_options[0]"},
		{"LDU without IP or location", func(ev map[string]any) {
			delete(ud(ev), "client_ip_address")
			ev["data_processing_options"] = []string{"LDU"}
		}, "data_processing_options_state"},
		{"LDU state out of range", func(ev map[string]any) {
			ev["data_processing_options"] = []string{"LDU"}
			ev["data_processing_options_country"] = 1
			ev["data_processing_options_state"] = 7
		}, "data_processing_options_state"},
		{"unknown event field", func(ev map[string]any) { ev["colour"] = "red" }, "colour"},
		{"unknown user_data field", func(ev map[string]any) { ud(ev)["email"] = hash("a@example.com") }, "user_data.email"},
	}

	db := openSQLite(t)
	paths := []struct {
		name  string
		judge func(t *testing.T, raw []byte) verdict
	}{
		{"pipeline", func(t *testing.T, raw []byte) verdict { return pipelineVerdict(t, db, raw, now) }},
		{"capi.ValidateEvent", func(t *testing.T, raw []byte) verdict { return problemVerdict(capi.ValidateEvent(raw, now)) }},
		{"capirelay validate", func(t *testing.T, raw []byte) verdict { return validateVerdict(t, raw, now) }},
		{"sandbox", func(t *testing.T, raw []byte) verdict { return sandboxVerdict(t, db, raw, now) }},
	}
	for i, tc := range cases {
		ev := base()
		ev["event_id"] = fmt.Sprint("o-", i)
		tc.mutate(ev)
		raw, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			if got := p.judge(t, raw); got != tc.want {
				t.Errorf("%s: %s says %q, want %q", tc.name, p.name, got, tc.want)
			}
		}
	}
}

// pipelineVerdict decodes raw as the ingest endpoints do and prepares it
// as the pipeline does (validation, hashing, the match rule).
func pipelineVerdict(t *testing.T, db *sqlite.DB, raw []byte, now time.Time) verdict {
	ev, err := event.Decode(raw, "data[0]")
	if err != nil {
		return fieldVerdict(t, err)
	}
	p := pipeline.New(db)
	p.Now = func() time.Time { return now }
	res, err := p.Submit(t.Context(), []pipeline.Input{{Site: &store.Site{Key: "s"}, Event: ev, Path: "data[0]", Source: pipeline.SourceServer}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != pipeline.Rejected {
		return accepted
	}
	return fieldVerdict(t, res[0].Err)
}

func fieldVerdict(t *testing.T, err error) verdict {
	var fe *event.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("pipeline error %v is not a FieldError", err)
	}
	return verdict(strings.TrimPrefix(strings.TrimPrefix(fe.Field, "data[0]"), "."))
}

func problemVerdict(probs []capi.Problem) verdict {
	if len(probs) == 0 {
		return accepted
	}
	return verdict(probs[0].Path)
}

// validateVerdict runs `capirelay validate`'s check on the event alone.
func validateVerdict(t *testing.T, raw []byte, now time.Time) verdict {
	lines, _, err := checkPayload(raw, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 {
		return accepted
	}
	path, _, _ := strings.Cut(lines[0], ": ")
	return verdict(path)
}

func openSQLite(t *testing.T) *sqlite.DB { return storetest.OpenSQLite(t) }

// sandboxVerdict sends the event through the sandbox destination, into a
// real SQLite store.
func sandboxVerdict(t *testing.T, db *sqlite.DB, raw []byte, now time.Time) verdict {
	sb := &dispatch.Sandbox{Store: db, Now: func() time.Time { return now }}
	_, err := sb.Send(t.Context(), &store.Site{Key: "s"}, &dispatch.Batch{Events: []json.RawMessage{raw}})
	if err == nil {
		return accepted
	}
	var ce *capi.Error
	if !errors.As(err, &ce) {
		t.Fatalf("sandbox: %v", err)
	}
	// The sandbox answers as Graph does, naming the field in
	// error_user_msg: "data[0].<path>: <reason>".
	path, _, _ := strings.Cut(ce.UserMsg, ": ")
	return verdict(strings.TrimPrefix(strings.TrimPrefix(path, "data[0]"), "."))
}
