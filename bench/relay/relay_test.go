package relay

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	const text = `# HELP capirelay_identity_cache_entries x
# TYPE capirelay_identity_cache_entries gauge
capirelay_identity_cache_entries 1234
capirelay_events_accepted_total{site="a"} 10
capirelay_events_accepted_total{site="b"} 5
capirelay_ingest_request_seconds_bucket{endpoint="e",le="+Inf"} 7 1700000000000
go_goroutines 42
`
	m, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"capirelay_identity_cache_entries": 1234, "capirelay_events_accepted_total": 15,
		"capirelay_ingest_request_seconds_bucket": 7, "go_goroutines": 42} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if _, err := ParseMetrics(strings.NewReader("broken{x=\"1\" 3\n")); err == nil {
		t.Error("a broken line parsed")
	}
}

// TestRestartSiteSet builds the binary and starts it with site settings:
// one it has, applied before serve; one it lacks, a *SiteSetError that
// benchall reports as "not available".
func TestRestartSiteSet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ./cmd/capirelay")
	}
	ctx := context.Background()
	b, err := StartBinary(ctx, "capirelay-relay-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Restart(ctx, "--consent", "required"); err != nil {
		t.Fatalf("a setting the binary has: %v", err)
	}
	list := exec.Command(b.bin, "site", "list", "--json")
	list.Env = append(os.Environ(), "CAPIRELAY_DATA_DIR="+b.Relay.dataDir)
	out, err := list.CombinedOutput()
	if err != nil || !strings.Contains(strings.ReplaceAll(string(out), " ", ""), `"consent":"required"`) {
		t.Fatalf("site list after --consent required: %v: %s", err, out)
	}
	// benchall's identity-off phase.
	if err := b.Restart(ctx, "--identity", "off"); err != nil {
		t.Fatalf("site set --identity off: %v", err)
	}
	err = b.Restart(ctx, "--no-such-setting", "x")
	var sse *SiteSetError
	if !errors.As(err, &sse) || !strings.Contains(sse.Error(), "no-such-setting") {
		t.Fatalf("a setting the binary lacks: %v", err)
	}
	if b.Relay != nil {
		t.Error("a relay runs after a failed restart")
	}
}

// TestInProcessIdentity: an in-process relay's bench site takes the
// identity mode of Options (load -identity), and keeps the default
// without one.
func TestInProcessIdentity(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ set, want string }{{"", "full"}, {"off", "off"}, {"visitor", "visitor"}} {
		r, err := StartInProcess(ctx, Options{GraphURL: "http://127.0.0.1:1", Identity: tc.set})
		if err != nil {
			t.Fatal(err)
		}
		site, err := r.app.Store.Site(ctx, r.SiteKey)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := site.IdentityMode(); got != tc.want {
			t.Errorf("Identity %q: site identity %q, want %q", tc.set, got, tc.want)
		}
	}
	if _, err := StartInProcess(ctx, Options{GraphURL: "http://127.0.0.1:1", Identity: "some"}); err == nil {
		t.Error("an unknown identity mode started a relay")
	}
}
