package leads

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// exportColumns are the CSV header; the field columns follow FieldNames.
var exportColumns = append([]string{"lead_id", "state", "form_id", "visitor_id", "started_at", "last_activity_at",
	"partial_at", "closed_at", "page_url"}, FieldNames...)

// Export writes the site's leads in the given states (partial and
// converted when none) with activity since since as CSV to w, with the raw
// values, for the operator. Cells that a spreadsheet would run as a formula
// are prefixed with a quote.
func (s *Service) Export(ctx context.Context, w io.Writer, siteKey string, since time.Time, states []string) (int, error) {
	if len(states) == 0 {
		states = []string{store.LeadPartial, store.LeadConverted}
	}
	ls, err := s.Store.ListLeads(ctx, store.LeadFilter{SiteKey: siteKey, States: states, Since: since})
	if err != nil {
		return 0, fmt.Errorf("export leads: %w", err)
	}
	return len(ls), WriteCSV(w, ls)
}

// WriteCSV writes leads as CSV with a header row.
func WriteCSV(w io.Writer, leads []store.Lead) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(exportColumns); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, l := range leads {
		row := []string{l.SessionID, l.State, safeCell(l.FormID), safeCell(l.VisitorID), ts(l.StartedAt),
			ts(l.UpdatedAt), ts(l.PartialAt), ts(l.ClosedAt), safeCell(l.Data.PageURL)}
		for _, k := range FieldNames {
			row = append(row, safeCell(l.Data.Fields[k]))
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// safeCell defuses CSV formula injection (a cell starting with = + - @ or a
// control character runs as a formula in spreadsheets) by prefixing a
// quote, except for values that read as a phone number or a number, such as
// "+1 650 555 1212", which are left exactly as typed.
func safeCell(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '@', '\t', '\r':
		return "'" + v
	case '+', '-':
		if strings.Trim(v[1:], "0123456789 ().-/") != "" {
			return "'" + v
		}
	}
	return v
}
