package capi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/metarules"
)

// Class is what a caller should do about a failed send (§7.3, §7.4).
type Class int

const (
	// ClassTransient: retry the same batch later with backoff (5xx, network
	// errors, timeouts, rate limits, is_transient, anything unknown).
	ClassTransient Class = iota
	// ClassInvalid: the payload is wrong. Never resend unchanged; bisect a
	// multi-event batch to isolate the bad event(s) (§7.2).
	ClassInvalid
	// ClassAuth: token, permission or configuration problem. Pause the pixel,
	// keep its queue, alert an operator.
	ClassAuth
	// ClassExpired: an event_time is older than Meta's 7-day window
	// (100/2804003). The event can never be delivered.
	ClassExpired
)

// String returns a short lowercase name ("transient", "invalid", "auth",
// "expired").
func (c Class) String() string {
	switch c {
	case ClassTransient:
		return "transient"
	case ClassInvalid:
		return "invalid"
	case ClassAuth:
		return "auth"
	case ClassExpired:
		return "expired"
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Graph error codes and CAPI subcodes this package gives meaning to (§7.3).
const (
	CodeInvalidParameter = metarules.CodeInvalidParameter
	CodeUserRateLimit    = 17
	CodeRateLimit        = 613
	CodeAccessToken      = 190

	SubcodeObjectMissing    = 33                                // 100/33: pixel does not exist or token lacks access
	SubcodeBadClickID       = metarules.SubcodeBadClickID       // 100/2804001: malformed fbc
	SubcodeTooOld           = metarules.SubcodeTooOld           // 100/2804003: event_time older than its window
	SubcodeInvalidData      = metarules.SubcodeInvalidParameter // 100/2804019: an invalid parameter seen in integrations
	SubcodeThinMatch        = metarules.SubcodeThinMatch        // 100/2804050: insufficient customer information
	SubcodeUserRateLimit    = 2446079                           // 17/2446079: user request limit reached
	SubcodeTokenInvalidated = 460                               // 190/460: session invalidated (e.g. password changed)
)

// Error is a failed Graph API call. Either the server answered (Status != 0,
// and the Graph error object fields are set when the body had one) or the
// request did not complete (Status == 0, Err is the network or context
// cause). Error never holds the access token: the client redacts it from the
// messages Meta sends back.
type Error struct {
	Status    int    // HTTP status; 0 when no response arrived
	Code      int    // error.code
	Subcode   int    // error.error_subcode
	Type      string // error.type, e.g. OAuthException
	Message   string // error.message
	UserTitle string // error.error_user_title
	UserMsg   string // error.error_user_msg
	TraceID   string // error.fbtrace_id (or the response's fbtrace_id)
	Transient bool   // error.is_transient
	// RetryAfter is how long Meta asked us to wait (Retry-After, or
	// X-Business-Use-Case-Usage estimated_time_to_regain_access); 0 if unsaid.
	RetryAfter time.Duration
	Err        error // network or context cause; nil when the server answered
}

// Error describes the failure with status, code/subcode, type, message and
// trace id. It contains no token and no request body.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("capi: ")
	if e.Status == 0 && e.Err != nil {
		b.WriteString("request failed: ")
		b.WriteString(e.Err.Error())
		return b.String()
	}
	if e.Status != 0 {
		b.WriteString("status ")
		b.WriteString(strconv.Itoa(e.Status))
	} else {
		b.WriteString("local check")
	}
	if e.Code != 0 {
		b.WriteString(" code ")
		b.WriteString(strconv.Itoa(e.Code))
		if e.Subcode != 0 {
			b.WriteByte('/')
			b.WriteString(strconv.Itoa(e.Subcode))
		}
	}
	if e.Type != "" {
		b.WriteString(" (")
		b.WriteString(e.Type)
		b.WriteByte(')')
	}
	if e.Transient {
		b.WriteString(" transient")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.UserTitle != "" || e.UserMsg != "" {
		b.WriteString(" [")
		b.WriteString(e.UserTitle)
		if e.UserTitle != "" && e.UserMsg != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.UserMsg)
		b.WriteByte(']')
	}
	if e.TraceID != "" {
		b.WriteString(" fbtrace_id=")
		b.WriteString(e.TraceID)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the network or context cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Class maps the error to what the caller should do (§7.3). Order matters:
//
//  1. no response (Status 0) with a cause: transient (network, timeout, reset);
//  2. is_transient:true or HTTP 5xx: transient (Meta says so / D-TS);
//  3. Graph throttling and downtime codes 1, 2, 4, 17, 32, 341, 368, 613,
//     80004: transient;
//  4. token/permission/config codes 190, 102, 104, 10, 200-299, 3, and
//     100/33 (pixel missing or not accessible): auth;
//  5. 100/2804003 (event_time older than 7 days): expired;
//  6. any other 100: invalid;
//  7. HTTP 408 and 429 without a known code: transient; 401/403: auth;
//     any other 4xx: invalid;
//  8. anything else (e.g. a 2xx without events_received): transient, since
//     retrying an unknown failure is safe thanks to event_id dedup (§6).
func (e *Error) Class() Class {
	if e.Status == 0 && e.Err != nil {
		return ClassTransient
	}
	if e.Transient || e.Status >= 500 {
		return ClassTransient
	}
	switch c := e.Code; {
	case c == 1, c == 2, c == 4, c == 17, c == 32, c == 341, c == 368, c == 613, c == 80004:
		return ClassTransient
	case c == 190, c == 102, c == 104, c == 10, c == 3, c >= 200 && c <= 299:
		return ClassAuth
	case c == CodeInvalidParameter:
		switch e.Subcode {
		case SubcodeObjectMissing:
			return ClassAuth
		case SubcodeTooOld:
			return ClassExpired
		}
		return ClassInvalid
	}
	switch {
	case e.Status == 408 || e.Status == 429:
		return ClassTransient
	case e.Status == 401 || e.Status == 403:
		return ClassAuth
	case e.Status >= 400 && e.Status < 500:
		return ClassInvalid
	}
	return ClassTransient
}

// Classify returns the Class of any error from this package or its
// callers: a *Error (found with errors.As) classifies itself; any other
// error implementing Class() Class does too; context deadlines, cancellation
// and net errors are transient; so is everything else, because an unknown
// failure is safe to retry (event_id dedup, §6). Classify(nil) is
// ClassTransient; check for nil first.
func Classify(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class()
	}
	var c interface{ Class() Class }
	if errors.As(err, &c) {
		return c.Class()
	}
	// Deadlines, cancellation, net.Error and anything unknown: retry.
	return ClassTransient
}

// Retryable reports whether err is worth retrying unchanged.
func Retryable(err error) bool { return err != nil && Classify(err) == ClassTransient }

// localError reports a request this package refused to send because Meta
// would refuse it (code 100, so it classifies as invalid).
func localError(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidParameter, Type: "capi", Message: fmt.Sprintf(format, args...)}
}

// subcodeTitles are the error_user_title strings Meta uses for the
// subcodes it documents (§7.3).
var subcodeTitles = map[int]string{
	SubcodeTooOld:      "Event Timestamp Too Old",
	SubcodeBadClickID:  "Click ID Incorrectly Formatted",
	SubcodeThinMatch:   "Insufficient customer information",
	SubcodeInvalidData: "Invalid parameter",
}

// Refusal is the error Graph answers for a request whose i-th event has
// problem p (§7.1, §7.2): HTTP 400, code 100, p's subcode (or
// SubcodeInvalidParameter), a title, and the field and reason in
// error_user_msg. The fake Graph, the sandbox and the relay's own
// Graph-compatible endpoint all refuse with it.
func (p Problem) Refusal(i int) *Error {
	sub := p.Subcode
	if sub == 0 {
		sub = SubcodeInvalidData
	}
	path := "data[" + strconv.Itoa(i) + "]"
	if p.Path != "" {
		path += "." + p.Path
	}
	return &Error{Status: 400, Code: p.Code, Subcode: sub, Type: "OAuthException", Message: "Invalid parameter",
		UserTitle: subcodeTitles[sub], UserMsg: path + ": " + p.Message}
}

// AppendBody appends e as Graph writes it: {"error":{...}} with every
// field of the error object (§7.1).
func (e *Error) AppendBody(b []byte) []byte {
	body := struct {
		Error graphError `json:"error"`
	}{graphError{Message: e.Message, Type: e.Type, Code: e.Code, Subcode: e.Subcode, UserTitle: e.UserTitle,
		UserMsg: e.UserMsg, IsTransient: e.Transient, FbtraceID: e.TraceID}}
	out, _ := json.Marshal(body) // cannot fail: strings and ints
	return append(b, out...)
}
