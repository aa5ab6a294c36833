package offline

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/capirelay/capirelay/internal/event"
)

// nextJSON reads one JSON line: either a Meta-shaped server event (it has
// user_data) or an object whose keys are the CSV columns.
func (r *Reader) nextJSON() (Row, error) {
	for {
		raw, tooLong, err := r.readLine()
		if err != nil {
			return Row{}, err
		}
		r.line++
		line := r.line
		if tooLong {
			return Row{Line: line, Err: &RowError{Line: line, Reason: "is longer than " + strconv.Itoa(r.opts.MaxLineBytes) + " bytes"}}, nil
		}
		raw = bytes.TrimSpace(raw)
		if line == 1 {
			raw = bytes.TrimPrefix(raw, []byte("\ufeff"))
		}
		if len(raw) == 0 {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return Row{Line: line, Err: &RowError{Line: line, Reason: "is not a JSON object"}}, nil
		}
		if _, ok := obj["user_data"]; ok {
			return r.metaRow(line, raw), nil
		}
		return r.flatRow(line, obj), nil
	}
}

// readLine returns the next line without its newline; io.EOF when there is
// none. A line over MaxLineBytes is skipped and reported as tooLong.
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > r.opts.MaxLineBytes {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			return buf, tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && (len(buf) > 0 || tooLong):
			return buf, tooLong, nil
		default:
			return nil, false, err
		}
	}
}

// metaRow decodes a Meta-shaped event strictly, as /v1/events does.
func (r *Reader) metaRow(line int, raw []byte) Row {
	ev, err := event.Decode(raw, "")
	if err != nil {
		return Row{Line: line, Err: rowError(line, err)}
	}
	if ev.EventTime != 0 {
		if err := checkAge(time.Unix(int64(ev.EventTime), 0), r.opts.Now()); err != nil {
			return Row{Line: line, Err: &RowError{Line: line, Column: "event_time", Reason: err.Error()}}
		}
	}
	if ev.ActionSource == "" {
		ev.ActionSource = DefaultActionSource
	}
	if ev.EventID == "" {
		var compact bytes.Buffer
		if json.Compact(&compact, raw) != nil {
			compact.Write(raw)
		}
		h := sha256.New()
		h.Write([]byte(r.opts.SiteKey))
		h.Write([]byte{0})
		h.Write(compact.Bytes())
		ev.EventID = "imp_" + hex.EncodeToString(h.Sum(nil))
	}
	return Row{Line: line, Event: ev}
}

// flatRow maps the keys of obj to columns like a CSV header.
func (r *Reader) flatRow(line int, obj map[string]json.RawMessage) Row {
	var rec record
	seen := map[Column]bool{}
	for k, v := range obj {
		c, ok := lookupColumn(k)
		if !ok {
			if !slices.Contains(r.ignored, k) && len(r.ignored) < 50 {
				r.ignored = append(r.ignored, k)
			}
			continue
		}
		if seen[c] {
			return Row{Line: line, Err: &RowError{Line: line, Column: c.String(), Reason: "is given twice (under two names)"}}
		}
		seen[c] = true
		s, err := scalar(v)
		if err != nil {
			return Row{Line: line, Err: &RowError{Line: line, Column: c.String(), Reason: err.Error()}}
		}
		rec[c] = s
	}
	return r.row(line, &rec)
}

// scalar returns a JSON string, number or boolean as text; null is "".
func scalar(v json.RawMessage) (string, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", nil
	}
	switch v[0] {
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", errorString("is not a valid JSON string")
		}
		return s, nil
	case 'n':
		return "", nil
	case '{', '[':
		return "", errorString("must be a string or a number, not an object or a list")
	}
	return string(v), nil
}
