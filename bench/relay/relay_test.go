package relay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"testing/iotest"
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

// The sink counts events as it reads: the same count as bytes.Count of
// the whole body, whatever the reads' sizes, keys across their edges
// included.
func TestCountKey(t *testing.T) {
	var body []byte
	for i := range 5000 {
		body = append(body, `{"event_name":"Purchase","custom_data":{"n":"`...)
		body = append(body, strings.Repeat("x", i%97)...)
		body = append(body, `"}},`...)
	}
	body = append(body, `"event_name""event_name"`...)
	want := bytes.Count(body, eventNameKey)
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(body),
		"one byte": iotest.OneByteReader(bytes.NewReader(body)),
		"halves":   iotest.HalfReader(bytes.NewReader(body)),
		"13 bytes": io.MultiReader(chunks(body, 13)...),
	} {
		if got, err := countKey(r, eventNameKey); err != nil || got != want {
			t.Errorf("%s: countKey = %d, %v; want %d", name, got, err, want)
		}
	}
	if _, err := countKey(iotest.ErrReader(io.ErrUnexpectedEOF), eventNameKey); err == nil {
		t.Error("a failed read gave no error")
	}
}

func chunks(b []byte, n int) []io.Reader {
	var out []io.Reader
	for len(b) > 0 {
		k := min(n, len(b))
		out = append(out, bytes.NewReader(b[:k]))
		b = b[k:]
	}
	return out
}

// Outside the module StartBinary fails with an error: it once closed the
// nil it was about to return and panicked.
func TestStartBinaryOutsideModule(t *testing.T) {
	t.Chdir(t.TempDir())
	b, err := StartBinary(t.Context(), "capirelay-bench-")
	if err == nil || b != nil {
		t.Fatalf("StartBinary outside the module = %v, %v; want an error", b, err)
	}
}
