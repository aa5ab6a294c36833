package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/app"
	"github.com/capirelay/capirelay/internal/config"
	"github.com/capirelay/capirelay/internal/sitecfg"
	"github.com/capirelay/capirelay/internal/store"
)

// importEnv is a data directory with one (sandbox) site.
type importEnv struct {
	dir    string
	site   string
	getenv func(string) string
}

func newImportEnv(t *testing.T) *importEnv {
	t.Helper()
	dir := t.TempDir()
	e := &importEnv{dir: dir, getenv: func(k string) string {
		if k == "CAPIRELAY_DATA_DIR" {
			return dir
		}
		return ""
	}}
	st := e.open(t)
	site, _, err := app.CreateSite(t.Context(), st, sitecfg.Update{Name: new("Shop"), Domains: &[]string{"shop.example"}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	e.site = site.Key
	return e
}

func (e *importEnv) open(t *testing.T) store.Store {
	t.Helper()
	st, _, err := app.OpenStore(t.Context(), config.Config{DataDir: e.dir})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (e *importEnv) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errw bytes.Buffer
	err = runImport(t.Context(), args, &out, &errw, e.getenv)
	return out.String(), errw.String(), err
}

// writeImportCSV writes n rows with recent event times; every 100th row
// (from row 50) is bad in one of four ways. It returns the file lines of
// the bad rows.
func writeImportCSV(t *testing.T, path string, n int) map[int]string {
	t.Helper()
	var b strings.Builder
	b.WriteString("event_name,event_time,email,phone,first_name,last_name,zip,country,value,currency,order_id\n")
	now := time.Now().Unix()
	bad := map[int]string{}
	for i := range n {
		line := i + 2
		ts := strconv.FormatInt(now-int64(i), 10)
		email := fmt.Sprintf("buyer%d@example.com", i)
		currency := "EUR"
		if i%100 == 50 {
			switch (i / 100) % 4 {
			case 0:
				ts, bad[line] = "someday", "event_time"
			case 1:
				ts, bad[line] = time.Unix(now, 0).Add(-9*24*time.Hour).UTC().Format(time.RFC3339), "event_time"
			case 2:
				currency, bad[line] = "EURO", "currency"
			case 3:
				email, bad[line] = "", "email, phone, first_name, last_name, city, state, zip, country, external_id"
			}
		}
		if bad[line] == "email, phone, first_name, last_name, city, state, zip, country, external_id" {
			fmt.Fprintf(&b, "Purchase,%s,,,,,,,12.50,%s,o%d\n", ts, currency, i)
			continue
		}
		fmt.Fprintf(&b, "Purchase,%s,%s,+1 650 555 %04d,Ann,Lee,94025,US,12.50,%s,o%d\n", ts, email, i%10000, currency, i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return bad
}

func TestImportCSV(t *testing.T) {
	e := newImportEnv(t)
	file := filepath.Join(t.TempDir(), "orders.csv")
	const n = 10_000
	bad := writeImportCSV(t, file, n)

	start := time.Now()
	stdout, stderr, err := e.run(t, "--site", e.site, file)
	if err != nil {
		t.Fatalf("import = %v\n%s", err, stderr)
	}
	t.Logf("imported %d rows in %s (%.0f rows/s)", n, time.Since(start), n/time.Since(start).Seconds())
	want := fmt.Sprintf("%d rows: %d accepted, 0 duplicate, %d rejected\n", n, n-len(bad), len(bad))
	if stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}

	st := e.open(t)
	depth, err := st.Depth(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if depth[e.site] != n-len(bad) {
		t.Errorf("outbox depth = %d, want %d", depth[e.site], n-len(bad))
	}
	items, err := st.Items(t.Context(), e.site, "", 3)
	if err != nil || len(items) == 0 {
		t.Fatalf("Items = %d, %v", len(items), err)
	}
	for _, it := range items {
		if it.Source != "import" || !strings.HasPrefix(it.EventID, "imp_") || bytes.Contains(it.Payload, []byte("@example.com")) {
			t.Errorf("item source %q, event_id %q, payload %s", it.Source, it.EventID, it.Payload)
		}
	}
	st.Close()

	// The errors file lists exactly the bad rows, by line and column,
	// without any value.
	raw, err := os.ReadFile(file + ".errors.csv")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("@")) || bytes.Contains(raw, []byte("someday")) {
		t.Error("the errors file repeats row values")
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(bad)+1 {
		t.Fatalf("errors file has %d rows, want %d + header", len(recs)-1, len(bad))
	}
	for _, r := range recs[1:] {
		line, _ := strconv.Atoi(r[0])
		col, ok := bad[line]
		if !ok {
			t.Errorf("errors file names line %d, which is fine: %q", line, r)
			continue
		}
		if r[1] != col || r[2] == "" {
			t.Errorf("line %d: column %q reason %q, want column %q", line, r[1], r[2], col)
		}
		if strings.HasPrefix(r[1], "event_time") && strings.Contains(r[2], "days old") && !strings.Contains(r[2], "expired") {
			t.Errorf("line %d: old row not called expired: %q", line, r[2])
		}
	}

	// The same file again sends nothing twice.
	stdout, stderr, err = e.run(t, file, "--site", e.site)
	if err != nil {
		t.Fatalf("second import = %v\n%s", err, stderr)
	}
	want = fmt.Sprintf("%d rows: 0 accepted, %d duplicate, %d rejected\n", n, n-len(bad), len(bad))
	if stdout != want {
		t.Errorf("second run stdout = %q, want %q", stdout, want)
	}
}

func TestImportJSONLines(t *testing.T) {
	e := newImportEnv(t)
	now := time.Now().Unix()
	src := fmt.Sprintf(`{"event_name":"Purchase","event_time":%d,"action_source":"physical_store","user_data":{"em":"a@example.com","ph":"+16505551212"},"custom_data":{"value":5,"currency":"EUR"}}
{"event_name":"Lead","event_time":"%s","email":"b@example.com","external_id":"crm-7"}
{"event_name":"Lead","event_time":%d,"user_data":{"ct":"paris"}}
{"event_name":"Lead"
`, now-60, time.Unix(now-120, 0).UTC().Format(time.RFC3339), now-60)
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	errFile := filepath.Join(t.TempDir(), "rejects.csv")
	stdout, stderr, err := e.run(t, "--site", e.site, "--errors", errFile, file)
	if err != nil {
		t.Fatalf("import = %v\n%s", err, stderr)
	}
	if want := "4 rows: 2 accepted, 0 duplicate, 2 rejected\n"; stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	raw, err := os.ReadFile(errFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := "line,column,reason\n3,user_data,"; !strings.HasPrefix(string(raw), want) {
		t.Errorf("errors file = %q, want it to start %q", raw, want)
	}
	if !strings.Contains(string(raw), "\n4,,") {
		t.Errorf("errors file = %q, want line 4 (not JSON)", raw)
	}
}

func TestImportFailures(t *testing.T) {
	e := newImportEnv(t)
	file := filepath.Join(t.TempDir(), "a.csv")
	if err := os.WriteFile(file, []byte("event_name,event_time,email\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown site", []string{"--site", "nope", file}, "no site"},
		{"missing file", []string{"--site", e.site, file + ".missing"}, "no such file"},
		{"no event_time column", []string{"--site", e.site, "--format", "csv", writeTemp(t, "event_name,email\n")}, "event_time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("import = %v, want an error about %q", err, tc.want)
			}
		})
	}
	if _, _, err := e.run(t, file); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--site is required") {
		t.Errorf("import without --site = %v, want errUsage saying --site is required", err)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "x.txt")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

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

// TestLeadsListNamesExportIDs: leads list shows the lead_id that leads
// export and the webhook give, so a row can be found in either.
func TestLeadsListNamesExportIDs(t *testing.T) {
	t.Parallel()
	e := newImportEnv(t)
	st := e.open(t)
	l, err := st.UpsertLead(t.Context(), e.site, "v-1", "signup", func(l *store.Lead) error {
		l.State, l.Data.Fields = store.LeadPartial, map[string]string{"em": "ada@example.com"}
		return nil
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	var list, export, errw bytes.Buffer
	for _, c := range []struct {
		cmd string
		out *bytes.Buffer
	}{{"list", &list}, {"export", &export}} {
		if err := runLeadsEnv(t.Context(), []string{c.cmd, "--site", e.site, "--state", "all"}, nil, c.out, &errw, e.getenv); err != nil {
			t.Fatalf("leads %s: %v (%s)", c.cmd, err, errw.String())
		}
	}
	rows, err := csv.NewReader(&export).ReadAll()
	if err != nil || len(rows) != 2 || rows[0][0] != "lead_id" || rows[1][0] != l.SessionID {
		t.Fatalf("export = %q (%v), want one lead %s", rows, err, l.SessionID)
	}
	lines := strings.Split(strings.TrimSpace(list.String()), "\n")
	if len(lines) != 2 || strings.Fields(lines[1])[0] != l.SessionID {
		t.Errorf("list =\n%s\nwant the lead as %s", list.String(), l.SessionID)
	}
}
