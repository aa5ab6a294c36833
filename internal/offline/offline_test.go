package offline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/offline"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

var now = time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)

func readAll(t *testing.T, format, src string) []offline.Row {
	t.Helper()
	r, err := offline.NewReader(strings.NewReader(src), format, offline.Options{SiteKey: "site1", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("NewReader = %v", err)
	}
	var rows []offline.Row
	for {
		row, err := r.Next()
		if err == io.EOF {
			return rows
		}
		if err != nil {
			t.Fatalf("Next = %v", err)
		}
		rows = append(rows, row)
	}
}

func TestCSVAliasesAndTimes(t *testing.T) {
	t.Parallel()
	src := "\ufeffEvent Name;Date;EM;Phone Number;FN;ln;Zip_Code;Country;Amount;Currency;Order ID;Notes\n" +
		"Purchase;2026-07-31T10:00:00Z;a@example.com;+1 650 555 1212;Ann;Lee;94025;US;19.90;usd;o-1;x\n" +
		"\n" +
		"Lead;1785578400;b@example.com;;;;;;;;;\n" +
		"Lead;2026-07-31 09:30:00;c@example.com;;;;;;;;;\n" +
		"Lead;1785578400000;d@example.com;;;;;;;;;\n"
	r, err := offline.NewReader(strings.NewReader(src), offline.FormatCSV, offline.Options{SiteKey: "s", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Ignored(); len(got) != 1 || got[0] != "Notes" {
		t.Errorf("Ignored = %q, want [Notes]", got)
	}
	rows := readAll(t, offline.FormatCSV, src)
	if len(rows) != 4 {
		t.Fatalf("got %d rows, want 4", len(rows))
	}
	wantLines := []int{2, 4, 5, 6}
	wantTimes := []int64{1785492000, 1785578400, 1785490200, 1785578400}
	for i, row := range rows {
		if row.Err != nil {
			t.Fatalf("row %d: %v", i, row.Err)
		}
		if row.Line != wantLines[i] {
			t.Errorf("row %d Line = %d, want %d", i, row.Line, wantLines[i])
		}
		if got := int64(row.Event.EventTime); got != wantTimes[i] {
			t.Errorf("row %d event_time = %d, want %d", i, got, wantTimes[i])
		}
		if row.Event.ActionSource != offline.DefaultActionSource {
			t.Errorf("row %d action_source = %q", i, row.Event.ActionSource)
		}
		if !strings.HasPrefix(row.Event.EventID, "imp_") || len(row.Event.EventID) != 68 {
			t.Errorf("row %d event_id = %q, want imp_ + 64 hex", i, row.Event.EventID)
		}
	}
	ev := rows[0].Event
	if ev.EventName != "Purchase" || ev.UserData.Em[0] != "a@example.com" || ev.UserData.Zp[0] != "94025" || ev.UserData.Fn[0] != "Ann" {
		t.Errorf("row 0 = %+v", ev)
	}
	if got, want := string(ev.CustomData), `{"value":19.9,"currency":"USD","order_id":"o-1"}`; got != want {
		t.Errorf("custom_data = %s, want %s", got, want)
	}
}

func TestEventIDStable(t *testing.T) {
	t.Parallel()
	a := readAll(t, offline.FormatCSV, "event_name,event_time,email\nLead,2026-07-31T10:00:00Z,A@Example.com\n")
	b := readAll(t, offline.FormatCSV, "email,EVENT_TIME,event_name\na@example.com,1785492000,Lead\n")
	c := readAll(t, offline.FormatCSV, "event_name,event_time,email\nLead,2026-07-31T10:00:01Z,a@example.com\n")
	if a[0].Event.EventID != b[0].Event.EventID {
		t.Errorf("same row, other column order/case/date format: ids %s != %s", a[0].Event.EventID, b[0].Event.EventID)
	}
	if a[0].Event.EventID == c[0].Event.EventID {
		t.Error("different rows got the same event_id")
	}
	d := readAll(t, offline.FormatCSV, "event_name,event_time,email,event_id\nLead,2026-07-31T10:00:00Z,a@example.com,mine\n")
	if d[0].Event.EventID != "mine" {
		t.Errorf("event_id = %q, want the file's own", d[0].Event.EventID)
	}
}

func TestCSVBadRows(t *testing.T) {
	t.Parallel()
	src := "event_name,event_time,email,value,currency\n" +
		",2026-07-31T10:00:00Z,a@example.com,,\n" + // 2: no event_name
		"Lead,yesterday,a@example.com,,\n" + // 3
		"Lead,2026-07-01T10:00:00Z,a@example.com,,\n" + // 4: expired
		"Purchase,2026-07-31T10:00:00Z,a@example.com,1.234,50,EUR\n" + // 5: extra field
		"Purchase,2026-07-31T10:00:00Z,a@example.com,12€,EUR\n" + // 6
		"Lead,2026-07-31T10:00:00Z,a@example.com,,\n" // 7: fine
	rows := readAll(t, offline.FormatCSV, src)
	want := []struct {
		line   int
		column string
		reason string
	}{
		{2, "event_name", "required"},
		{3, "event_time", "not a date-time"},
		{4, "event_time", "expired"},
		{5, "", "fields"},
		{6, "value", "not a number"},
	}
	if len(rows) != len(want)+1 {
		t.Fatalf("got %d rows, want %d", len(rows), len(want)+1)
	}
	for i, w := range want {
		e := rows[i].Err
		if e == nil {
			t.Errorf("line %d: no error", w.line)
			continue
		}
		if e.Line != w.line || e.Column != w.column || !strings.Contains(e.Reason, w.reason) {
			t.Errorf("line %d: got %+v, want column %q and reason containing %q", w.line, e, w.column, w.reason)
		}
		if strings.Contains(e.Error(), "example.com") || strings.Contains(e.Error(), "yesterday") {
			t.Errorf("error repeats a value: %v", e)
		}
	}
	if rows[5].Err != nil {
		t.Errorf("line 7: %v", rows[5].Err)
	}
}

func TestCSVHeaderErrors(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "email,phone\nx,y\n", "event_name,event_time,email,em\n"} {
		if _, err := offline.NewReader(strings.NewReader(src), offline.FormatCSV, offline.Options{}); err == nil {
			t.Errorf("NewReader(%q) = nil error", src)
		}
	}
}

func TestJSONLines(t *testing.T) {
	t.Parallel()
	src := `{"event_name":"Purchase","event_time":1785492000,"user_data":{"em":["a@example.com"]},"custom_data":{"value":5,"currency":"EUR"}}
{"Event_Name":"Lead","timestamp":"2026-07-31T10:00:00Z","email":"b@example.com","value":3,"currency":"EUR"}

{"event_name":"Lead","event_time":"last friday","user_data":{"em":"c@example.com"}}
not json
{"event_name":"Lead","event_time":1785492000,"user_data":{},"bogus":1}
{"event_name":"Lead","event_time":1785492000,"email":{"x":1}}
`
	rows := readAll(t, offline.FormatJSONL, src)
	if len(rows) != 6 {
		t.Fatalf("got %d rows, want 6", len(rows))
	}
	for i, want := range []struct {
		line   int
		column string
	}{{1, ""}, {2, ""}, {4, "event_time"}, {5, ""}, {6, "bogus"}, {7, "email"}} {
		row := rows[i]
		if row.Line != want.line {
			t.Errorf("row %d Line = %d, want %d", i, row.Line, want.line)
		}
		switch {
		case i < 2 && row.Err != nil:
			t.Errorf("line %d: %v", row.Line, row.Err)
		case i >= 2 && row.Err == nil:
			t.Errorf("line %d: no error", row.Line)
		case i >= 2 && row.Err.Column != want.column:
			t.Errorf("line %d: column %q, want %q (%v)", row.Line, row.Err.Column, want.column, row.Err)
		}
	}
	if ev := rows[0].Event; ev.ActionSource != "system_generated" || !strings.HasPrefix(ev.EventID, "imp_") {
		t.Errorf("meta row: action_source %q, event_id %q", ev.ActionSource, ev.EventID)
	}
	if ev := rows[1].Event; ev.EventName != "Lead" || ev.UserData.Em[0] != "b@example.com" || int64(ev.EventTime) != 1785492000 {
		t.Errorf("flat row = %+v", ev)
	}
}

func TestDetectFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, head, want string }{
		{"a.csv", "{", offline.FormatCSV},
		{"a.jsonl", "x", offline.FormatJSONL},
		{"export", "\ufeff {\"a\":1}", offline.FormatJSONL},
		{"export", "event_name,event_time", offline.FormatCSV},
	} {
		if got := offline.DetectFormat(tc.name, []byte(tc.head)); got != tc.want {
			t.Errorf("DetectFormat(%q, %q) = %q, want %q", tc.name, tc.head, got, tc.want)
		}
	}
}

var eventFieldError = event.FieldError{Field: "custom_data.currency", Message: "must be an ISO 4217 code such as USD or EUR"}

// fakeSubmitter accepts every event once per event_id, like the store.
type fakeSubmitter struct {
	seen   map[string]bool
	calls  int
	failAt int
}

func (f *fakeSubmitter) Submit(_ context.Context, ins []pipeline.Input, _ ...pipeline.Option) (pipeline.Results, error) {
	f.calls++
	if f.calls == f.failAt {
		return nil, pipeline.ErrStore
	}
	out := make([]pipeline.Result, len(ins))
	for i, in := range ins {
		switch {
		case in.Event.EventName == "Refuse":
			out[i] = pipeline.Result{Status: pipeline.Rejected, Err: fmt.Errorf("wrapped: %w", &eventFieldError)}
		case f.seen[in.Event.EventID]:
			out[i].Status = pipeline.Duplicate
		default:
			f.seen[in.Event.EventID] = true
			out[i].Status = pipeline.Accepted
		}
	}
	return out, nil
}

func TestImporterChunksAndReportsInLineOrder(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("event_name,event_time,email,currency\n")
	for i := range 1203 {
		switch {
		case i%100 == 7:
			b.WriteString("Lead,never,a@example.com,\n")
		case i%100 == 8:
			b.WriteString("Refuse,2026-07-31T10:00:00Z,a@example.com,XXX\n")
		default:
			fmt.Fprintf(&b, "Lead,%d,u%d@example.com,\n", now.Unix()-int64(i), i)
		}
	}
	sub := &fakeSubmitter{seen: map[string]bool{}}
	var rejected []*offline.RowError
	var progress []offline.Stats
	im := &offline.Importer{Pipeline: sub, Site: &store.Site{Key: "site1"},
		Reject:   func(e *offline.RowError) error { rejected = append(rejected, e); return nil },
		Progress: func(s offline.Stats) { progress = append(progress, s) }}
	r, err := offline.NewReader(strings.NewReader(b.String()), offline.FormatCSV, offline.Options{SiteKey: "site1", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	st, err := im.Run(t.Context(), r)
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if st.Rows != 1203 || st.Rejected != 24 || st.Accepted != 1203-24 {
		t.Errorf("stats = %+v", st)
	}
	if sub.calls != 3 || len(progress) != 3 {
		t.Errorf("Submit calls = %d, progress calls = %d; want 3 chunks of up to 500", sub.calls, len(progress))
	}
	for i := 1; i < len(rejected); i++ {
		if rejected[i].Line <= rejected[i-1].Line {
			t.Fatalf("rejects out of line order: %d after %d", rejected[i].Line, rejected[i-1].Line)
		}
	}
	if e := rejected[1]; e.Line != 10 || e.Column != "currency" {
		t.Errorf("pipeline refusal = %+v, want line 10, column currency", e)
	}
}

func TestImporterStoreFailure(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("event_name,event_time,email\n")
	for i := range 1200 {
		fmt.Fprintf(&b, "Lead,%d,u%d@example.com\n", now.Unix()-int64(i), i)
	}
	sub := &fakeSubmitter{seen: map[string]bool{}, failAt: 2}
	r, _ := offline.NewReader(strings.NewReader(b.String()), offline.FormatCSV, offline.Options{Now: func() time.Time { return now }})
	st, err := (&offline.Importer{Pipeline: sub, Site: &store.Site{}}).Run(t.Context(), r)
	if !errors.Is(err, pipeline.ErrStore) {
		t.Fatalf("Run = %v, want ErrStore", err)
	}
	if st.Accepted != 500 {
		t.Errorf("Accepted = %d, want the first chunk (500)", st.Accepted)
	}
}
