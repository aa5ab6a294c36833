package offline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// DefaultChunkSize is how many events go to the pipeline at once: big
// enough that SQLite group commit amortizes the fsync, small enough that
// memory stays flat and progress moves.
const DefaultChunkSize = 500

// Submitter takes events into the outbox; *pipeline.Pipeline implements it.
type Submitter interface {
	Submit(ctx context.Context, ins []pipeline.Input, opts ...pipeline.Option) (pipeline.Results, error)
}

var _ Submitter = (*pipeline.Pipeline)(nil)

// Stats counts the rows of an import.
type Stats struct {
	Rows      int // data rows read (blank lines excluded)
	Accepted  int // stored for delivery
	Duplicate int // already imported (same event_name and event_id within 48 h)
	Rejected  int // bad rows: unreadable, or refused by Meta's rules
}

// Importer sends the rows of a Reader through the pipeline in chunks. The
// running relay's dispatcher delivers what it stores.
type Importer struct {
	Pipeline Submitter
	Site     *store.Site
	// ChunkSize is how many events are submitted at once. Default
	// DefaultChunkSize.
	ChunkSize int
	// Reject, if set, is called for every rejected row, in line order.
	// Returning an error stops the import.
	Reject func(*RowError) error
	// Progress, if set, is called after every chunk with the totals so far.
	Progress func(Stats)
}

// Run imports every row of r. Bad rows are counted, passed to Reject, and
// skipped. It returns an error, with the totals so far, only when the file
// cannot be read, the store fails (pipeline.ErrStore: that chunk was not
// stored; earlier chunks were), Reject fails or ctx ends; rerunning the
// same file after that is safe, as stored rows come back as duplicates.
func (im *Importer) Run(ctx context.Context, r *Reader) (Stats, error) {
	size := im.ChunkSize
	if size <= 0 {
		size = DefaultChunkSize
	}
	var st Stats
	rows := make([]Row, 0, size)
	ins := make([]pipeline.Input, 0, size)
	flush := func() error {
		if len(rows) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var results []pipeline.Result
		if len(ins) > 0 {
			var err error
			if results, err = im.Pipeline.Submit(ctx, ins); err != nil {
				return fmt.Errorf("import lines %d-%d: %w", rows[0].Line, rows[len(rows)-1].Line, err)
			}
		}
		j := 0
		for _, row := range rows {
			rerr := row.Err
			if rerr == nil {
				res := results[j]
				j++
				switch res.Status {
				case pipeline.Accepted:
					st.Accepted++
					continue
				case pipeline.Duplicate:
					st.Duplicate++
					continue
				default:
					rerr = resultError(row.Line, res, row.flat)
				}
			}
			st.Rejected++
			if im.Reject != nil {
				if err := im.Reject(rerr); err != nil {
					return err
				}
			}
		}
		rows, ins = rows[:0], ins[:0]
		if im.Progress != nil {
			im.Progress(st)
		}
		return nil
	}
	for {
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, fmt.Errorf("read: %w", err)
		}
		st.Rows++
		rows = append(rows, row)
		if row.Err == nil {
			ins = append(ins, pipeline.Input{Site: im.Site, Event: row.Event, Source: pipeline.SourceImport})
		}
		if len(ins) >= size || len(rows) >= 4*size {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	return st, flush()
}

// resultError describes a pipeline refusal. For flat rows the JSON path is
// turned back into the column the user wrote.
func resultError(line int, res pipeline.Result, flat bool) *RowError {
	if res.Status != pipeline.Rejected {
		return &RowError{Line: line, Reason: "not stored (" + string(res.Status) + ")"}
	}
	var fe *event.FieldError
	if !errors.As(res.Err, &fe) {
		reason := "refused"
		if res.Err != nil {
			reason = res.Err.Error()
		}
		return &RowError{Line: line, Reason: reason}
	}
	col := strings.TrimPrefix(fe.Field, ".")
	if flat {
		if c, ok := pathColumns[col]; ok {
			col = c
		}
	}
	return &RowError{Line: line, Column: col, Reason: fe.Message}
}

// pathColumns maps the event paths the pipeline names to import columns.
var pathColumns = map[string]string{
	"custom_data.value":           "value",
	"custom_data.currency":        "currency",
	"custom_data":                 "value, currency",
	"user_data":                   "email, phone, first_name, last_name, city, state, zip, country, external_id",
	"user_data.client_user_agent": "client_user_agent",
	"user_data.client_ip_address": "client_ip_address",
	"user_data.fbc":               "fbc",
	"user_data.fbp":               "fbp",
}
