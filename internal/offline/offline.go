// Package offline reads offline conversions (a CRM or shop export) for
// `capirelay import`: CSV with a header row, or JSON lines. Each row becomes
// an event.Event with raw user_data (the pipeline normalizes and hashes it)
// and its line number; a bad row is a RowError naming the line and the
// column, never the value, and does not stop the file. Files are streamed:
// memory does not grow with the number of rows.
package offline

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/event"
)

// Formats.
const (
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"
)

// DetectFormat guesses the format from the file name, then from the first
// byte of the content: "{" means JSON lines, anything else CSV.
func DetectFormat(name string, head []byte) string {
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".jsonl"), strings.HasSuffix(lower, ".ndjson"), strings.HasSuffix(lower, ".json"):
		return FormatJSONL
	case strings.HasSuffix(lower, ".csv"), strings.HasSuffix(lower, ".tsv"), strings.HasSuffix(lower, ".txt"):
		return FormatCSV
	}
	head = bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\ufeff")), " \t\r\n")
	if len(head) > 0 && head[0] == '{' {
		return FormatJSONL
	}
	return FormatCSV
}

// Row is one data row of the file.
type Row struct {
	Line  int          // 1-based line where the row starts
	Event *event.Event // nil when Err is set
	Err   *RowError

	flat bool // built from columns (CSV or flat JSON), not a Meta event
}

// RowError is why a row cannot be imported. Column is the canonical column
// name (CSV and flat JSON), a JSON path (Meta-shaped JSON lines) or "" for
// the whole row. Reason never contains the row's values.
type RowError struct {
	Line   int
	Column string
	Reason string
}

func (e *RowError) Error() string {
	if e.Column == "" {
		return "line " + strconv.Itoa(e.Line) + ": " + e.Reason
	}
	return "line " + strconv.Itoa(e.Line) + ": " + e.Column + ": " + e.Reason
}

type colError struct {
	col    Column
	reason string
}

func (e *colError) Error() string { return e.col.String() + ": " + e.reason }

func colErr(c Column, reason string) error { return &colError{col: c, reason: reason} }

// Options configure a Reader.
type Options struct {
	// SiteKey seeds generated event_ids, so the same row imported into two
	// sites gets two ids.
	SiteKey string
	// Now is the clock for the 7-day check. Default time.Now.
	Now func() time.Time
	// MaxLineBytes caps one JSON line; longer lines are row errors.
	// Default 1 MiB.
	MaxLineBytes int
}

// Reader reads rows one at a time. It is not safe for concurrent use.
type Reader struct {
	opts   Options
	format string

	// CSV
	csv     *csv.Reader
	cols    []Column // by field index; -1 = ignored
	ignored []string

	// JSON lines
	br   *bufio.Reader
	line int
}

// NewReader returns a Reader of format (FormatCSV or FormatJSONL) over r.
// For CSV it reads the header at once and fails when the header lacks
// event_name or event_time or names a column twice; the delimiter (comma,
// semicolon or tab) is taken from the header line.
func NewReader(r io.Reader, format string, opts Options) (*Reader, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = 1 << 20
	}
	br := bufio.NewReaderSize(r, 64<<10)
	rd := &Reader{opts: opts, format: format}
	switch format {
	case FormatJSONL:
		rd.br = br
		return rd, nil
	case FormatCSV:
		return rd, rd.readHeader(br)
	}
	return nil, fmt.Errorf("unknown format %q (csv or jsonl)", format)
}

// Ignored lists header columns the reader does not know and skips.
func (r *Reader) Ignored() []string { return r.ignored }

func (r *Reader) readHeader(br *bufio.Reader) error {
	head, _ := br.Peek(64 << 10) // a short file is fine: err is EOF
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	r.csv = csv.NewReader(br)
	r.csv.Comma = sniffDelimiter(head)
	r.csv.FieldsPerRecord = -1
	r.csv.LazyQuotes = true
	r.csv.ReuseRecord = true
	header, err := r.csv.Read()
	if err == io.EOF {
		return errors.New("the file is empty: want a header row and data rows")
	}
	if err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	seen := map[Column]string{}
	r.cols = make([]Column, len(header))
	for i, h := range header {
		c, ok := lookupColumn(h)
		if !ok {
			r.cols[i] = -1
			if strings.TrimSpace(h) != "" {
				r.ignored = append(r.ignored, strings.TrimSpace(h))
			}
			continue
		}
		if prev, dup := seen[c]; dup {
			return fmt.Errorf("header names column %s twice (%q and %q)", c, prev, strings.TrimSpace(h))
		}
		seen[c] = strings.TrimSpace(h)
		r.cols[i] = c
	}
	for _, c := range []Column{ColEventName, ColEventTime} {
		if _, ok := seen[c]; !ok {
			return fmt.Errorf("header has no %s column (found: %s)", c, strings.Join(header, ", "))
		}
	}
	return nil
}

// sniffDelimiter picks the most frequent of comma, semicolon and tab in the
// header line, outside quotes; comma on a tie.
func sniffDelimiter(line []byte) rune {
	var comma, semi, tab int
	quoted := false
	for _, c := range line {
		switch {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == ',':
			comma++
		case c == ';':
			semi++
		case c == '\t':
			tab++
		}
	}
	switch {
	case semi > comma && semi >= tab:
		return ';'
	case tab > comma && tab > semi:
		return '\t'
	}
	return ','
}

// Next returns the next row, or io.EOF after the last one. Any other error
// means the file itself could not be read; a bad row is a Row with Err set.
func (r *Reader) Next() (Row, error) {
	if r.format == FormatJSONL {
		return r.nextJSON()
	}
	return r.nextCSV()
}

func (r *Reader) nextCSV() (Row, error) {
	for {
		fields, err := r.csv.Read()
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return Row{Line: pe.StartLine, Err: &RowError{Line: pe.StartLine, Reason: "malformed CSV: " + pe.Err.Error()}}, nil
			}
			return Row{}, err // io.EOF or a read error
		}
		if blank(fields) {
			continue
		}
		line, _ := r.csv.FieldPos(0)
		if len(fields) > len(r.cols) && !blank(fields[len(r.cols):]) {
			return Row{Line: line, Err: &RowError{Line: line, Reason: fmt.Sprintf("has %d fields, the header %d", len(fields), len(r.cols))}}, nil
		}
		var rec record
		for i, v := range fields[:min(len(fields), len(r.cols))] {
			if c := r.cols[i]; c >= 0 {
				rec[c] = v
			}
		}
		return r.row(line, &rec), nil
	}
}

func blank(fields []string) bool {
	for _, f := range fields {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

// row turns a record into a Row.
func (r *Reader) row(line int, rec *record) Row {
	ev, err := rec.toEvent(r.opts.SiteKey, r.opts.Now())
	if err != nil {
		return Row{Line: line, Err: rowError(line, err), flat: true}
	}
	return Row{Line: line, Event: ev, flat: true}
}

func rowError(line int, err error) *RowError {
	var ce *colError
	if errors.As(err, &ce) {
		return &RowError{Line: line, Column: ce.col.String(), Reason: ce.reason}
	}
	var fe *event.FieldError
	if errors.As(err, &fe) {
		return &RowError{Line: line, Column: strings.TrimPrefix(fe.Field, "."), Reason: fe.Message}
	}
	return &RowError{Line: line, Reason: err.Error()}
}
