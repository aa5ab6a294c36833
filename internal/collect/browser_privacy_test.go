package collect

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A card number in a capture or in identify data (an old tag, a
// hand-written integration) is refused: no capture, no user_data key,
// nothing stored, and the drop is counted.
func TestBrowserRefusesCardNumbers(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	body := `{"vid":"abcdefghijklmnopq","events":[
{"type":"capture","form":"pay","url":"https://www.example.co.uk/pay","fields":{"em":"ada@example.com","ph":"4111 1111 1111 1111"}},
{"type":"event","name":"Lead","id":"l-1","url":"https://www.example.co.uk/pay","form":"pay","submit":true,"user":{"em":"ada@example.com","phone":"5555-5555-5555-4444"}}]}`
	if res := bb.do(t, req{body: body}); res.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", res.StatusCode)
	}
	items := bb.items(t)
	if len(items) != 1 {
		t.Fatalf("items = %d, want the Lead", len(items))
	}
	ud := payload(t, items[0])["user_data"].(map[string]any)
	if ud["ph"] != nil || ud["em"] == nil {
		t.Errorf("Lead user_data = %v, want em without ph", ud)
	}
	bb.mu.Lock()
	for _, c := range bb.captures {
		if !c.Submitted {
			t.Errorf("the payment form's capture was kept: %+v", c.FormID)
		}
		for k, v := range c.Fields {
			if strings.ContainsAny(v, "0123456789") {
				t.Errorf("capture field %s kept %q", k, v)
			}
		}
	}
	bb.mu.Unlock()
	if n := testutil.ToFloat64(bb.b.Metrics.PaymentDropped); n != 2 {
		t.Errorf("payment_values_dropped_total = %v, want 2", n)
	}
}

// The relay's cookies are Secure behind a trusted TLS proxy, or when the
// public URL is https; a proxy that is not trusted is not believed.
func TestBrowserSecureCookies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		trusted bool
		public  bool
		proto   string
		want    bool
	}{
		{"plain http", false, false, "", false},
		{"untrusted proxy says https", false, false, "https", false},
		{"trusted proxy says https", true, false, "https", true},
		{"trusted proxy says http", true, false, "http", false},
		{"public URL is https", false, true, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bb := setupBrowser(t)
			bb.b.SecureCookies = tc.public
			if tc.trusted {
				bb.b.TrustedProxies = mustPrefixes("10.0.0.0/8")
			}
			hdr := map[string]string{}
			if tc.proto != "" {
				hdr["X-Forwarded-Proto"] = tc.proto
			}
			res := bb.do(t, req{body: pageView(""), remote: "10.0.0.2:4000", header: hdr})
			cookies := res.Header.Values("Set-Cookie")
			if len(cookies) == 0 {
				t.Fatal("no cookie set")
			}
			for _, c := range cookies {
				if got := strings.Contains(c, "; Secure"); got != tc.want {
					t.Errorf("Set-Cookie %q: Secure %v, want %v", c, got, tc.want)
				}
			}
		})
	}
}

// X-Forwarded-For from a peer that is not trusted is ignored, and said:
// one warning per peer, the peer listed for the dashboard, each request
// counted.
func TestBrowserWarnsUntrustedProxy(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	var logs bytes.Buffer
	bb.b.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	for range 3 {
		bb.do(t, req{body: pageView(""), remote: "192.0.2.10:4000", header: map[string]string{"X-Forwarded-For": "198.51.100.1"}})
	}
	bb.do(t, req{body: pageView(""), remote: "192.0.2.11:4000"}) // no header: nothing to say
	if n := strings.Count(logs.String(), "untrusted peer"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"peer":"192.0.2.10"`) || strings.Contains(logs.String(), "198.51.100.1") {
		t.Errorf("warning should name the peer, not the forwarded address:\n%s", logs.String())
	}
	if got := bb.b.UntrustedProxies(); len(got) != 1 || got[0] != "192.0.2.10" {
		t.Errorf("UntrustedProxies = %v", got)
	}
	if n := testutil.ToFloat64(bb.b.Metrics.UntrustedForwarded); n != 3 {
		t.Errorf("untrusted_forwarded_for_total = %v, want 3", n)
	}
	items := bb.items(t)
	if len(items) == 0 || !strings.Contains(string(items[0].Payload), `"client_ip_address":"192.0.2.`) {
		t.Errorf("the forwarded address was believed")
	}
}

// heldFill adds the grant's fbp, and the fbc of the click in the held
// event's own URL, without touching what the event already has.
func TestHeldFill(t *testing.T) {
	t.Parallel()
	const fbp = "fb.2.1700000000000.1234567890"
	for _, tc := range []struct {
		name, in, fbc, wantFbp, wantFbc string
	}{
		{"grant's fbc", `{"event_time":1700000000,"event_source_url":"https://www.example.co.uk/","user_data":{"em":["x"]}}`,
			"fb.2.1690000000000.Grant", fbp, "fb.2.1690000000000.Grant"},
		{"click in the URL", `{"event_time":1700000000,"event_source_url":"https://www.example.co.uk/?fbclid=AbC-1","user_data":{}}`,
			"", fbp, "fb.2.1700000000000.AbC-1"},
		{"another click in the URL", `{"event_time":1700000000,"event_source_url":"https://www.example.co.uk/?fbclid=New","user_data":{}}`,
			"fb.2.1690000000000.Old", fbp, "fb.2.1700000000000.New"},
		{"kept", `{"event_time":1700000000,"event_source_url":"https://www.example.co.uk/","user_data":{"fbp":"fb.1.1.1","fbc":"fb.1.1.K"}}`,
			"fb.2.1690000000000.Grant", "fb.1.1.1", "fb.1.1.K"},
	} {
		out := heldFill(fbp, tc.fbc)([]byte(tc.in))
		var ev struct {
			UserData map[string]any `json:"user_data"`
		}
		if err := json.Unmarshal(out, &ev); err != nil {
			t.Fatalf("%s: %s: %v", tc.name, out, err)
		}
		if ev.UserData["fbp"] != tc.wantFbp || ev.UserData["fbc"] != tc.wantFbc {
			t.Errorf("%s: user_data = %v, want fbp %s fbc %s", tc.name, ev.UserData, tc.wantFbp, tc.wantFbc)
		}
	}
}

// TestBrowserCustomDataScrubbed: a page's capirelay('track', …) data is
// custom_data; an email address or a card number in it never reaches the
// outbox, the rest does.
func TestBrowserCustomDataScrubbed(t *testing.T) {
	t.Parallel()
	bb := setupBrowser(t)
	body := `{"vid":"abcdefghijklmnopq","events":[{"type":"event","name":"Signup","id":"s-1","url":"https://www.example.co.uk/","data":{"plan":"pro","email":"ada@example.com","ref":"4111111111111111","friend":{"Mobile":"020 7946 0958"}}}]}`
	if res := bb.do(t, req{body: body}); res.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", res.StatusCode)
	}
	items := bb.items(t)
	if len(items) != 1 {
		t.Fatalf("items = %+v", items)
	}
	cd, _ := payload(t, items[0])["custom_data"].(map[string]any)
	if len(cd) != 2 || cd["plan"] != "pro" || len(cd["friend"].(map[string]any)) != 0 {
		t.Errorf("custom_data = %v, want only the plan and an empty friend", cd)
	}
	if p := string(items[0].Payload); strings.Contains(p, "ada@") || strings.Contains(p, "4111") || strings.Contains(p, "7946") {
		t.Errorf("personal data in the outbox payload: %s", p)
	}
}
