package offline_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/offline"
)

// FuzzReader checks that no input makes the reader panic or loop, that line
// numbers only grow, and that every row is an event or an error.
func FuzzReader(f *testing.F) {
	f.Add("event_name,event_time,email\nLead,1785492000,a@example.com\n", false)
	f.Add("event_name;event_time;\"em\"\n\"Lead\";2026-07-31T10:00:00Z;\"a\"\"b\"\n", false)
	f.Add(`{"event_name":"Lead","event_time":1785492000,"user_data":{"em":"a"}}`+"\n{\"email\":1}\n", true)
	f.Add("{\"event_name\":\"Lead\",\"timestamp\":\"2026-07-31\",\"value\":\"1e400\"}\n\n[1]\n", true)
	f.Fuzz(func(t *testing.T, src string, jsonl bool) {
		format := offline.FormatCSV
		if jsonl {
			format = offline.FormatJSONL
		}
		r, err := offline.NewReader(strings.NewReader(src), format, offline.Options{SiteKey: "s", Now: func() time.Time { return now }, MaxLineBytes: 4096})
		if err != nil {
			return
		}
		last := 0
		for range len(src) + 2 {
			row, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("Next = %v", err)
			}
			if row.Line < last {
				t.Fatalf("line %d after %d", row.Line, last)
			}
			last = row.Line
			if (row.Event == nil) == (row.Err == nil) {
				t.Fatalf("row %d: event %v, err %v", row.Line, row.Event, row.Err)
			}
		}
		t.Fatal("more rows than input bytes")
	})
}
