package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// dataDirEnv is an environment that names only the data directory.
func dataDirEnv(dir string) getenvFunc {
	return func(k string) string {
		if k == "CAPIRELAY_DATA_DIR" {
			return dir
		}
		return ""
	}
}

// newDataDir is a data directory with an empty store, made with
// `capirelay migrate` as before a relay's first start.
func newDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	migrate(t, dataDirEnv(dir))
	return dir
}

// migrate runs `capirelay migrate` in getenv's environment.
func migrate(t *testing.T, getenv getenvFunc) {
	t.Helper()
	var out, errw bytes.Buffer
	if err := run(t.Context(), []string{"migrate"}, strings.NewReader(""), &out, &errw, getenv); err != nil {
		t.Fatalf("capirelay migrate: %v (%s)", err, errw.String())
	}
}

// TestForgetPrintsKinds forgets a visitor whose event was delivered: the
// CLI erases it with its dedup key and says so, kind by kind.
func TestForgetPrintsKinds(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	getenv := dataDirEnv(dir)
	sf := storeFlags{dataDir: dir}
	st, err := sf.open(t.Context(), getenv)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	res, err := st.Enqueue(t.Context(), []store.NewEvent{{SiteKey: "s", EventName: "PageView", EventID: "e-1",
		EventTime: now, VisitorID: "vis-cli-1", Payload: []byte(`{"event_name":"PageView"}`), Source: "browser"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Claim(t.Context(), "s", "n", 1, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := st.Complete(t.Context(), "n", []store.Outcome{{ID: res[0].ID, Kind: store.OutcomeDelivered}}, now); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var out, errOut bytes.Buffer
	if err := runForgetEnv(t.Context(), []string{"--visitor", "vis-cli-1"}, strings.NewReader(""), &out, &errOut, getenv); err != nil {
		t.Fatalf("forget = %v (stderr %s)", err, errOut.String())
	}
	for _, line := range []string{"visitors\t1\n", "outbox_events\t1\n", "dedup_keys\t1\n", "sandbox_events\t0\n", "leads\t0\n"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("forget printed %q, want a line %q", out.String(), line)
		}
	}
}
