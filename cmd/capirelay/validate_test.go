package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// validEvent is a website Purchase Meta accepts.
func validEvent(id string) map[string]any {
	return map[string]any{
		"event_name":       "Purchase",
		"event_time":       time.Now().Unix() - 60,
		"event_id":         id,
		"action_source":    "website",
		"event_source_url": "https://shop.example/checkout",
		"user_data": map[string]any{
			"em":                []string{sha256Hex("a@example.com")},
			"client_ip_address": "203.0.113.5",
			"client_user_agent": "Mozilla/5.0",
			"fbc":               "fb.1.1785492000000.IwAR2xyz",
			"fbp":               "fb.1.1785492000000.1234567890",
		},
		"custom_data": map[string]any{"value": 10.5, "currency": "USD"},
	}
}

func runValidateOn(t *testing.T, payload any) (string, error) {
	t.Helper()
	raw, ok := payload.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(payload); err != nil {
			t.Fatal(err)
		}
	}
	var out, errw bytes.Buffer
	err := runValidateStdin(t.Context(), []string{"-"}, bytes.NewReader(raw), &out, &errw)
	return out.String(), err
}

func TestValidateFindsPlantedProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(ev map[string]any) // applied to data[2]; nil = send 1001 valid events
		path   string                  // expected path of the problem
		want   string                  // and a part of its message
	}{
		{"event_time as a string Graph does not coerce", func(ev map[string]any) { ev["event_time"] = "last tuesday" },
			"data[2].event_time", "must be an integer number of Unix seconds"},
		{"event_time in milliseconds", func(ev map[string]any) { ev["event_time"] = time.Now().UnixMilli() },
			"data[2].event_time", "milliseconds"},
		{"missing action_source", func(ev map[string]any) { delete(ev, "action_source") },
			"data[2].action_source", "is required"},
		{"raw email in em", func(ev map[string]any) { ev["user_data"].(map[string]any)["em"] = []string{"Jane.Doe@Example.com"} },
			"data[2].user_data.em[0]", "SHA-256 hex hash (64 lowercase hex characters); looks like a raw email address"},
		{"bad fbc", func(ev map[string]any) { ev["user_data"].(map[string]any)["fbc"] = "IwAR2xyz" },
			"data[2].user_data.fbc", "subcode 2804001"},
		{"bad currency", func(ev map[string]any) { ev["custom_data"] = map[string]any{"value": 3, "currency": "US$"} },
			"data[2].custom_data.currency", "ISO 4217"},
		{"thin user_data", func(ev map[string]any) {
			ev["user_data"] = map[string]any{"ct": sha256Hex("paris"), "country": sha256Hex("fr"), "client_user_agent": "Mozilla/5.0"}
		}, "data[2].user_data", "subcode 2804050"},
		{"more than 1000 events", nil, "data", "has 1001 events, max 1000"},
		{"value without currency", func(ev map[string]any) {
			ev["event_name"] = "Lead"
			ev["custom_data"] = map[string]any{"value": 3}
		}, "data[2].custom_data.currency", "is required when value is set"},
		{"unknown field (pipeline)", func(ev map[string]any) { ev["evnt_source"] = "x" },
			"data[2].evnt_source", "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := 3
			if tc.mutate == nil {
				n = 1001
			}
			data := make([]any, n)
			for i := range data {
				ev := validEvent("e" + string(rune('a'+i%26)) + time.Now().Format("150405.000000"))
				if i == 2 && tc.mutate != nil {
					tc.mutate(ev)
				}
				data[i] = ev
			}
			out, err := runValidateOn(t, map[string]any{"data": data})
			if err == nil {
				t.Errorf("validate returned nil error; output:\n%s", out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			prefix := tc.path + ": "
			found := false
			for _, l := range lines[:len(lines)-1] {
				if strings.HasPrefix(l, prefix) && strings.Contains(l, tc.want) {
					found = true
				}
				if !strings.HasPrefix(l, "data") {
					t.Errorf("problem line without a path: %q", l)
				}
			}
			if !found {
				t.Errorf("no line %q…%q in:\n%s", prefix, tc.want, out)
			}
			if last := lines[len(lines)-1]; !strings.HasSuffix(last, " problem") && !strings.HasSuffix(last, " problems") {
				t.Errorf("last line = %q, want \"N problems\"", last)
			}
			if strings.Contains(out, "Jane.Doe") || strings.Contains(out, "US$") {
				t.Errorf("output repeats a value:\n%s", out)
			}
		})
	}
}

func TestValidateValidPayloads(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		payload any
		want    string
	}{
		{"request", map[string]any{"data": []any{validEvent("a"), validEvent("b")}, "test_event_code": "TEST1"}, "payload is valid (2 events)\n"},
		{"bare array", []any{validEvent("a")}, "payload is valid (1 event)\n"},
		{"single event", validEvent("a"), "payload is valid (1 event)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := runValidateOn(t, tc.payload)
			if err != nil || out != tc.want {
				t.Errorf("validate = %q, %v; want %q, nil", out, err, tc.want)
			}
		})
	}
}

func TestValidatePathsFollowTheShape(t *testing.T) {
	t.Parallel()
	ev := validEvent("a")
	delete(ev, "action_source")
	out, err := runValidateOn(t, ev)
	if err == nil || !strings.HasPrefix(out, "action_source: is required\n") || !strings.HasSuffix(out, "1 problem\n") {
		t.Errorf("single event: %q, %v", out, err)
	}
	out, err = runValidateOn(t, []any{validEvent("a"), ev})
	if err == nil || !strings.HasPrefix(out, "[1].action_source: is required\n") {
		t.Errorf("bare array: %q, %v", out, err)
	}
}

func TestValidateMalformed(t *testing.T) {
	t.Parallel()
	out, err := runValidateOn(t, []byte("{\"data\": [\n  {\"event_name\": \"Lead\",}\n]}"))
	if err == nil || !strings.Contains(out, "not valid JSON: line 2") {
		t.Errorf("validate = %q, %v; want a JSON error on line 2", out, err)
	}
}
