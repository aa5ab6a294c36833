package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// TestWriteErrorTable: every error reaches the wire through answers, and
// an error's category, not the call site, picks the status.
func TestWriteErrorTable(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		field      string
		retryAfter string
	}{
		{"bad request", &httpError{Kind: errBadRequest, Field: "data", Message: "is empty"}, 400, "data", ""},
		{"field error", fmt.Errorf("decode: %w", &event.FieldError{Field: "data[0].event_name", Message: "is required"}), 400, "data[0].event_name", ""},
		{"too many", &httpError{Kind: errTooMany, Message: "slow down"}, 429, "", "1"},
		{"store unavailable", fmt.Errorf("enqueue: %w: disk full", store.ErrUnavailable), 503, "", "5"},
		{"pipeline store", fmt.Errorf("%w: boom", pipeline.ErrStore), 503, "", "5"},
		{"cancelled", context.Canceled, 503, "", "5"},
		{"store error unavailable", storeError(fmt.Errorf("site by api key: %w", store.ErrUnavailable)), 503, "", "5"},
		{"store error other", storeError(errors.New("open sealed token: message authentication failed")), 500, "", ""},
		{"unknown", errors.New("a bug"), 500, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			writeError(w, tc.err)
			var body ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status || body.Field != tc.field || body.Error == "" || w.Header().Get("Retry-After") != tc.retryAfter {
				t.Errorf("writeError = %d %+v Retry-After %q, want %d field %q Retry-After %q",
					w.Code, body, w.Header().Get("Retry-After"), tc.status, tc.field, tc.retryAfter)
			}
			if tc.status == 500 && body.Error != "internal error" {
				t.Errorf("an internal error shows its detail: %q", body.Error)
			}
		})
	}
}

func TestStoreErrorKeepsItsCause(t *testing.T) {
	cause := fmt.Errorf("site by api key: %w", store.ErrUnavailable)
	if err := storeError(cause); !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, cause) {
		t.Errorf("storeError(%v) = %v, which lost its cause", cause, err)
	}
}

// TestEveryKindHasAnAnswer: a kind added without a row in answers would
// answer 0.
func TestEveryKindHasAnAnswer(t *testing.T) {
	for k := errInternal; k <= errRejectedAll; k++ {
		if a := answers[k]; a.status < 400 || a.graphCode == 0 {
			t.Errorf("kind %d has no answer: %+v", k, a)
		}
	}
	if len(answers) != int(errRejectedAll)+1 {
		t.Errorf("answers has %d rows for %d kinds", len(answers), errRejectedAll+1)
	}
}
