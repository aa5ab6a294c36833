package capi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestErrorClass(t *testing.T) {
	t.Parallel()
	netErr := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	tests := []struct {
		name string
		err  Error
		want Class
	}{
		{"network reset", Error{Err: netErr}, ClassTransient},
		{"deadline", Error{Err: context.DeadlineExceeded}, ClassTransient},
		{"unexpected EOF", Error{Err: io.ErrUnexpectedEOF}, ClassTransient},
		{"500 no body", Error{Status: 500}, ClassTransient},
		{"503", Error{Status: 503}, ClassTransient},
		{"500 with code 100", Error{Status: 500, Code: 100}, ClassTransient},
		{"code 1 unknown", Error{Status: 400, Code: 1}, ClassTransient},
		{"code 2 service", Error{Status: 400, Code: 2}, ClassTransient},
		{"code 4 app throttled", Error{Status: 400, Code: 4}, ClassTransient},
		{"code 17 user limit", Error{Status: 400, Code: 17, Subcode: 2446079}, ClassTransient},
		{"code 32 page limit", Error{Status: 400, Code: 32}, ClassTransient},
		{"code 341 app limit", Error{Status: 400, Code: 341}, ClassTransient},
		{"code 368 policy block", Error{Status: 400, Code: 368}, ClassTransient},
		{"code 613 rate limit", Error{Status: 400, Code: 613, Subcode: 1487742}, ClassTransient},
		{"code 80004 ad account", Error{Status: 400, Code: 80004}, ClassTransient},
		{"is_transient wins over 100", Error{Status: 400, Code: 100, Transient: true}, ClassTransient},
		{"code 190 token", Error{Status: 400, Code: 190, Subcode: 460}, ClassAuth},
		{"code 190 no subcode", Error{Status: 401, Code: 190}, ClassAuth},
		{"code 102 session", Error{Status: 400, Code: 102}, ClassAuth},
		{"code 104 no token", Error{Status: 400, Code: 104}, ClassAuth},
		{"code 10 permission", Error{Status: 403, Code: 10}, ClassAuth},
		{"code 200 permission", Error{Status: 403, Code: 200}, ClassAuth},
		{"code 294 permission", Error{Status: 403, Code: 294}, ClassAuth},
		{"code 299 permission", Error{Status: 403, Code: 299}, ClassAuth},
		{"code 3 method", Error{Status: 400, Code: 3}, ClassAuth},
		{"100/33 pixel missing", Error{Status: 400, Code: 100, Subcode: 33}, ClassAuth},
		{"100/2804003 too old", Error{Status: 400, Code: 100, Subcode: 2804003}, ClassExpired},
		{"100/2804001 bad fbc", Error{Status: 400, Code: 100, Subcode: 2804001}, ClassInvalid},
		{"100/2804050 thin", Error{Status: 400, Code: 100, Subcode: 2804050}, ClassInvalid},
		{"100/2804019", Error{Status: 400, Code: 100, Subcode: 2804019}, ClassInvalid},
		{"100 plain", Error{Status: 400, Code: 100}, ClassInvalid},
		{"code 300 is not permission", Error{Status: 400, Code: 300}, ClassInvalid},
		{"400 unknown code", Error{Status: 400, Code: 12345}, ClassInvalid},
		{"400 no body", Error{Status: 400}, ClassInvalid},
		{"404", Error{Status: 404}, ClassInvalid},
		{"413 too large", Error{Status: 413}, ClassInvalid},
		{"429 without code", Error{Status: 429}, ClassTransient},
		{"408 without code", Error{Status: 408}, ClassTransient},
		{"401 without code", Error{Status: 401}, ClassAuth},
		{"403 without code", Error{Status: 403}, ClassAuth},
		{"200 without events_received", Error{Status: 200}, ClassTransient},
		{"unknown: nothing known", Error{}, ClassTransient},
		{"local no events", *localError("request has no events"), ClassInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.Class(); got != tc.want {
				t.Errorf("(%+v).Class() = %v, want %v", tc.err, got, tc.want)
			}
			wrapped := fmt.Errorf("send batch: %w", &tc.err)
			if got := Classify(wrapped); got != tc.want {
				t.Errorf("Classify(wrapped %+v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

type classed struct{}

func (classed) Error() string { return "classed" }
func (classed) Class() Class  { return ClassAuth }

func TestClassifyOtherErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"deadline", context.DeadlineExceeded, ClassTransient},
		{"wrapped deadline", fmt.Errorf("post: %w", context.DeadlineExceeded), ClassTransient},
		{"canceled", context.Canceled, ClassTransient},
		{"net op error", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, ClassTransient},
		{"dns", &net.DNSError{Err: "no such host", Name: "graph.facebook.com"}, ClassTransient},
		{"unknown", errors.New("boom"), ClassTransient},
		{"self-classifying", fmt.Errorf("x: %w", classed{}), ClassAuth},
	}
	for _, tc := range tests {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("%s: Classify(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestClassString(t *testing.T) {
	t.Parallel()
	for c, want := range map[Class]string{ClassTransient: "transient", ClassInvalid: "invalid", ClassAuth: "auth", ClassExpired: "expired", Class(9): "class(9)"} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	e := &Error{Status: 400, Code: 100, Subcode: 2804003, Type: "OAuthException", Message: "Invalid parameter",
		UserTitle: "Event Timestamp Too Old", UserMsg: "data[0].event_time", TraceID: "Axyz"}
	want := "capi: status 400 code 100/2804003 (OAuthException): Invalid parameter [Event Timestamp Too Old: data[0].event_time] fbtrace_id=Axyz"
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	n := &Error{Err: context.DeadlineExceeded}
	if got := n.Error(); got != "capi: request failed: context deadline exceeded" {
		t.Errorf("Error() = %q", got)
	}
	if !errors.Is(n, context.DeadlineExceeded) {
		t.Error("errors.Is(network error, DeadlineExceeded) = false, want true via Unwrap")
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		h    map[string]string
		want time.Duration
	}{
		{"none", nil, 0},
		{"seconds", map[string]string{"Retry-After": "30"}, 30 * time.Second},
		{"http date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"past date", map[string]string{"Retry-After": now.Add(-time.Hour).Format(http.TimeFormat)}, 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
		{"buc minutes", map[string]string{"X-Business-Use-Case-Usage": `{"123":[{"type":"ads_management","call_count":100,"estimated_time_to_regain_access":5}]}`}, 5 * time.Minute},
		{"buc max of several", map[string]string{"X-Business-Use-Case-Usage": `{"1":[{"estimated_time_to_regain_access":2}],"2":[{"estimated_time_to_regain_access":7},{"estimated_time_to_regain_access":0}]}`}, 7 * time.Minute},
		{"longest wins", map[string]string{"Retry-After": "600", "X-Business-Use-Case-Usage": `{"1":[{"estimated_time_to_regain_access":2}]}`}, 10 * time.Minute},
		{"bad buc json", map[string]string{"X-Business-Use-Case-Usage": `{"1":`}, 0},
	}
	for _, tc := range tests {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := retryAfter(h, now); got != tc.want {
			t.Errorf("%s: retryAfter(%v) = %v, want %v", tc.name, tc.h, got, tc.want)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x01\x1f\n\r\t", "ünïcødé 정", "bad\xffutf8", "<html>&"} {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("appendJSONString(%q) = %s: not valid JSON: %v", s, got, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back != want {
			t.Errorf("appendJSONString(%q) decodes to %q, want %q", s, back, want)
		}
	}
}

func TestLookupVersion(t *testing.T) {
	t.Parallel()
	v, ok := LookupVersion(DefaultVersion)
	if !ok || v.Expires.IsZero() || v.Expired(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("LookupVersion(%q) = %+v, %v; want a supported version", DefaultVersion, v, ok)
	}
	if v, ok := LookupVersion("v26.0"); !ok || !v.Expires.IsZero() {
		t.Errorf("LookupVersion(v26.0) = %+v, %v; want known with TBD expiry", v, ok)
	}
	if v, ok := LookupVersion("20.0"); !ok || v.Version != "v20.0" || !v.Expired(time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("LookupVersion(20.0) = %+v, %v; want expired v20.0", v, ok)
	}
	if _, ok := LookupVersion("v99.0"); ok {
		t.Error("LookupVersion(v99.0) ok, want unknown")
	}
}
