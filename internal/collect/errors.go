package collect

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// errKind is a category of refusal. Handlers name the kind; answers is the
// one table that turns kinds into HTTP statuses, the Graph error code the
// SDK alias answers with, and a Retry-After.
type errKind uint8

const (
	errInternal     errKind = iota // the zero kind: anything unexpected
	errBadRequest                  // malformed or invalid input, naming the field
	errUnauthorized                // missing or unknown api key
	errForbidden                   // page origin not one of the site's domains
	errNotFound                    // unknown site key
	errMethod                      // not POST
	errTooLarge                    // body or batch over its limit
	errMediaType                   // Content-Type the endpoint does not read
	errTooMany                     // one address sending too fast
	errUnavailable                 // store down, request cancelled, ingest busy: retry
	errRejectedAll                 // every event of the request broke Meta's rules
)

var answers = [...]struct {
	status     int
	graphCode  int    // Graph API error code for /{version}/{pixel}/events
	retryAfter string // seconds; "" = no Retry-After header
}{
	errInternal:     {http.StatusInternalServerError, 1, ""}, // 1: an unknown error, maybe temporary
	errBadRequest:   {http.StatusBadRequest, 100, ""},
	errUnauthorized: {http.StatusUnauthorized, 190, ""}, // 190: invalid OAuth access token
	errForbidden:    {http.StatusForbidden, 100, ""},
	errNotFound:     {http.StatusNotFound, 100, ""},
	errMethod:       {http.StatusMethodNotAllowed, 100, ""},
	errTooLarge:     {http.StatusRequestEntityTooLarge, 100, ""},
	errMediaType:    {http.StatusUnsupportedMediaType, 100, ""},
	errTooMany:      {http.StatusTooManyRequests, 100, "1"},
	errUnavailable:  {http.StatusServiceUnavailable, 2, "5"}, // 2: service temporarily unavailable
	errRejectedAll:  {http.StatusUnprocessableEntity, 100, ""},
}

// httpError is a refusal of a whole request: its kind, the field at fault
// and a message safe to show. Err, the cause, is for the log only.
type httpError struct {
	Kind    errKind
	Field   string
	Message string
	Err     error
	// graphCode and graphSubcode, when set, are the Graph alias's code
	// and subcode instead of the kind's (104 for no token, 100/33 for
	// another site's pixel).
	graphCode, graphSubcode int
}

func (e *httpError) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

func (e *httpError) Unwrap() error { return e.Err }

// status is the HTTP status of e's kind.
func (e *httpError) status() int { return answers[e.Kind].status }

// refusal is what any error becomes on the wire. An *httpError says it
// itself; otherwise the error's category decides: an invalid event is a
// 400 naming its field, a store that cannot write or a cancelled request
// is a 503 to retry, and anything else is an internal error whose detail
// stays out of the answer.
func refusal(err error) *httpError {
	var he *httpError
	var fe *event.FieldError
	switch {
	case errors.As(err, &he):
		return he
	case errors.As(err, &fe):
		return &httpError{Kind: errBadRequest, Field: fe.Field, Message: fe.Message, Err: err}
	case unavailable(err):
		return &httpError{Kind: errUnavailable, Message: "store unavailable, retry later", Err: err}
	}
	return &httpError{Kind: errInternal, Message: "internal error", Err: err}
}

// unavailable reports errors a client should retry: the store could not
// durably write or be reached, or the request gave up waiting.
func unavailable(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, pipeline.ErrStore) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// storeError answers a failed store read by its cause: unavailable (retry)
// or internal, keeping the cause for the log.
func storeError(err error) error {
	if unavailable(err) {
		return &httpError{Kind: errUnavailable, Message: "store unavailable, retry later", Err: err}
	}
	return &httpError{Kind: errInternal, Message: "internal error", Err: err}
}

// logStoreFailure logs a request's events that could not be stored, at
// error level; but when the client went away first (its request's context
// ended and the store gave up on that), which is no fault of the relay and
// happens to every request in flight when a client stops, at debug level.
func logStoreFailure(ctx context.Context, l *slog.Logger, msg, site string, err error) {
	if l == nil {
		return
	}
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
		l.Debug(msg, "site", site, "err", err, "cause", "client went away")
		return
	}
	l.Error(msg, "site", site, "err", err)
}
