package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestSandboxTailShortensIPs: sandbox tail shows client_ip_address as the
// dashboard does, as its network, in events and in whole requests.
func TestSandboxTailShortensIPs(t *testing.T) {
	t.Parallel()
	e := newImportEnv(t)
	st := e.open(t)
	payload := `{"data":[{"event_name":"Lead","user_data":{"client_ip_address":"198.51.100.77","em":["h"]}},` +
		`{"event_name":"Lead","user_data":{"client_ip_address":"2001:db8:1234:5678::1"}}],"partner_agent":"capirelay"}`
	err := st.RecordSandbox(t.Context(), e.site, time.Now(), []byte(payload))
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"tail", "--site", e.site}, {"tail", "--site", e.site, "--requests"}} {
		var out, errw bytes.Buffer
		if err := runSandbox(t.Context(), args, &out, &errw, e.getenv); err != nil {
			t.Fatalf("sandbox %q = %v (%s)", args, err, errw.String())
		}
		got := out.String()
		if strings.Contains(got, "198.51.100.77") || strings.Contains(got, "2001:db8:1234:5678::1") ||
			!strings.Contains(got, `"198.51.100.0/24"`) || !strings.Contains(got, `"2001:db8:1234::/48"`) || !strings.Contains(got, `"em":["h"]`) {
			t.Errorf("sandbox %q printed\n%s\nwant the addresses shortened to their networks, the rest kept", args, got)
		}
	}
}
