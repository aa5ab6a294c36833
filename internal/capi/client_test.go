package capi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/capitest"
)

const testToken = "EAAtesttoken0123456789"

// validEvent returns a website Purchase that passes ValidateEvent at now.
func validEvent(now time.Time, id string) json.RawMessage {
	return json.RawMessage(`{"event_name":"Purchase","event_time":` + strconv.FormatInt(now.Unix()-60, 10) +
		`,"event_id":"` + id + `","action_source":"website","event_source_url":"https://shop.example.com/checkout",` +
		`"user_data":{"em":["62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"],` +
		`"client_user_agent":"Mozilla/5.0","client_ip_address":"2001:db8::1","fbp":"fb.1.1596403881668.1116446470"},` +
		`"custom_data":{"value":12.5,"currency":"USD"}}`)
}

func setup(t *testing.T) (*capitest.Server, *capi.Client) {
	t.Helper()
	srv := capitest.New()
	t.Cleanup(srv.Close)
	return srv, &capi.Client{BaseURL: srv.URL, Timeout: 2 * time.Second}
}

func TestSendSuccess(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	now := srv.Now()
	req := &capi.Request{Data: []json.RawMessage{validEvent(now, "a"), validEvent(now, "b")}, AccessToken: testToken, TestEventCode: "TEST1", PartnerAgent: "capirelay"}
	resp, err := c.Send(t.Context(), "123", req)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if resp.EventsReceived != 2 || resp.FbtraceID == "" {
		t.Errorf("Send = %+v, want 2 events and a trace id", resp)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake saw %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Pixel != "123" || r.Version != capi.DefaultVersion || r.AccessToken != testToken || r.TestEventCode != "TEST1" || r.PartnerAgent != "capirelay" {
		t.Errorf("recorded %+v", r)
	}
	if got := len(srv.Events("123")); got != 2 {
		t.Errorf("accepted events = %d, want 2", got)
	}
}

func TestSendFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fault      capitest.Fault
		wantStatus int
		wantCode   int
		want       capi.Class
	}{
		{capitest.Fault500, 500, 1, capi.ClassTransient},
		{capitest.Fault503, 503, 0, capi.ClassTransient},
		{capitest.FaultTimeout, 0, 0, capi.ClassTransient},
		{capitest.FaultReset, 0, 0, capi.ClassTransient},
		{capitest.FaultRateLimit, 400, 17, capi.ClassTransient},
		{capitest.FaultThrottle613, 400, 613, capi.ClassTransient},
		{capitest.FaultToken, 400, 190, capi.ClassAuth},
	}
	for _, tc := range tests {
		t.Run(tc.fault.String(), func(t *testing.T) {
			t.Parallel()
			srv, c := setup(t)
			c.Timeout = 300 * time.Millisecond
			srv.FailNext(1, tc.fault)
			req := &capi.Request{Data: []json.RawMessage{validEvent(srv.Now(), "a")}, AccessToken: testToken}
			_, err := c.Send(t.Context(), "123", req)
			var e *capi.Error
			if !errors.As(err, &e) {
				t.Fatalf("Send with %v: err = %v (%T), want *capi.Error", tc.fault, err, err)
			}
			if e.Status != tc.wantStatus || e.Code != tc.wantCode {
				t.Errorf("Send with %v: status %d code %d, want %d %d (%v)", tc.fault, e.Status, e.Code, tc.wantStatus, tc.wantCode, err)
			}
			if tc.wantStatus == 0 && e.Err == nil {
				t.Errorf("Send with %v: Err = nil, want the network cause", tc.fault)
			}
			if got := capi.Classify(err); got != tc.want {
				t.Errorf("Classify(Send with %v) = %v, want %v (%v)", tc.fault, got, tc.want, err)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error text contains the access token: %v", err)
			}
			// The fault was one-shot: the same batch now goes through.
			if _, err := c.Send(t.Context(), "123", req); err != nil {
				t.Errorf("Send after fault: %v", err)
			}
		})
	}
}

func TestSendTokenNotInURL(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	req := &capi.Request{Data: []json.RawMessage{validEvent(srv.Now(), "a")}, AccessToken: testToken}
	if _, err := c.Send(t.Context(), "123", req); err != nil {
		t.Fatalf("Send: %v", err)
	}
	srv.FailNext(1, capitest.FaultToken)
	c.Send(t.Context(), "123", req)
	if err := c.CheckToken(t.Context(), "123", testToken); err != nil {
		t.Fatalf("CheckToken: %v", err)
	}
	for _, r := range srv.Requests() {
		if strings.Contains(r.Path, testToken) || strings.Contains(r.RawQuery, testToken) || strings.Contains(r.RawQuery, "access_token") {
			t.Errorf("%s %s?%s carries the token in the URL", r.Method, r.Path, r.RawQuery)
		}
		if r.AccessToken != testToken {
			t.Errorf("%s %s: fake got token %q, want it from the body or header", r.Method, r.Path, r.AccessToken)
		}
	}
	if got := srv.Requests()[0].ContentType; got != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", got)
	}
}

func TestSendTimeout(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	c.Timeout = 200 * time.Millisecond
	srv.FailNext(1, capitest.FaultTimeout)
	start := time.Now()
	_, err := c.Send(t.Context(), "123", &capi.Request{Data: []json.RawMessage{validEvent(srv.Now(), "a")}, AccessToken: testToken})
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Send took %v with Timeout 200ms", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send = %v, want a deadline error", err)
	}
	if capi.Classify(err) != capi.ClassTransient {
		t.Errorf("Classify(timeout) = %v, want transient", capi.Classify(err))
	}

	// The caller's context is honoured too.
	srv.FailNext(1, capitest.FaultTimeout)
	c.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = c.Send(ctx, "123", &capi.Request{Data: []json.RawMessage{validEvent(srv.Now(), "a")}, AccessToken: testToken})
	if elapsed := time.Since(start); elapsed > 2*time.Second || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send with ctx deadline: %v after %v", err, elapsed)
	}
}

func TestSendRejectedBatch(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	now := srv.Now()
	old := json.RawMessage(strings.Replace(string(validEvent(now, "old")), strconv.FormatInt(now.Unix()-60, 10), strconv.FormatInt(now.Add(-8*24*time.Hour).Unix(), 10), 1))
	_, err := c.Send(t.Context(), "123", &capi.Request{Data: []json.RawMessage{validEvent(now, "a"), old}, AccessToken: testToken})
	var e *capi.Error
	if !errors.As(err, &e) || e.Code != 100 || e.Subcode != capi.SubcodeTooOld || e.TraceID == "" || e.UserTitle != "Event Timestamp Too Old" {
		t.Fatalf("Send with a too-old event = %v, want 100/2804003 with title and trace id", err)
	}
	if capi.Classify(err) != capi.ClassExpired {
		t.Errorf("Classify = %v, want expired", capi.Classify(err))
	}
	if n := len(srv.Events("123")); n != 0 {
		t.Errorf("fake accepted %d events of a rejected batch, want 0", n)
	}
}

func TestSendRetryAfter(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	srv.SetRetryAfter(3 * time.Minute)
	srv.FailNext(1, capitest.FaultRateLimit)
	_, err := c.Send(t.Context(), "123", &capi.Request{Data: []json.RawMessage{validEvent(srv.Now(), "a")}, AccessToken: testToken})
	var e *capi.Error
	if !errors.As(err, &e) || e.RetryAfter != 3*time.Minute || !e.Transient {
		t.Fatalf("Send = %v (%+v), want transient with RetryAfter 3m", err, e)
	}
}

func TestSendRedactsEchoedToken(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"error":{"message":"Malformed access token %s","type":"OAuthException","code":190,"error_user_msg":"token %s"}}`, testToken, testToken)
	}))
	defer ts.Close()
	c := &capi.Client{BaseURL: ts.URL}
	_, err := c.Send(t.Context(), "123", &capi.Request{Data: []json.RawMessage{json.RawMessage(`{}`)}, AccessToken: testToken})
	if err == nil || strings.Contains(err.Error(), testToken) {
		t.Fatalf("Send = %v, want an error without the token", err)
	}
	if capi.Classify(err) != capi.ClassAuth {
		t.Errorf("Classify = %v, want auth", capi.Classify(err))
	}
}

func TestSendBadResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   capi.Class
	}{
		{"2xx without events_received", 200, `{"fbtrace_id":"x"}`, capi.ClassTransient},
		{"2xx not json", 200, `<html>`, capi.ClassTransient},
		{"502 html", 502, `<html>bad gateway</html>`, capi.ClassTransient},
		{"400 not json", 400, `nope`, capi.ClassInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer ts.Close()
			c := &capi.Client{BaseURL: ts.URL}
			_, err := c.Send(t.Context(), "123", &capi.Request{Data: []json.RawMessage{json.RawMessage(`{}`)}})
			var e *capi.Error
			if !errors.As(err, &e) || e.Status != tc.status {
				t.Fatalf("Send = %v, want *capi.Error with status %d", err, tc.status)
			}
			if got := capi.Classify(err); got != tc.want {
				t.Errorf("Classify = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSendRefusesBadRequests(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	many := make([]json.RawMessage, capi.MaxEventsPerRequest+1)
	for i := range many {
		many[i] = validEvent(srv.Now(), strconv.Itoa(i))
	}
	tests := []struct {
		name  string
		pixel string
		req   *capi.Request
		want  capi.Class
	}{
		{"nil request", "123", nil, capi.ClassInvalid},
		{"no events", "123", &capi.Request{AccessToken: testToken}, capi.ClassInvalid},
		{"too many events", "123", &capi.Request{Data: many, AccessToken: testToken}, capi.ClassInvalid},
		{"empty event", "123", &capi.Request{Data: []json.RawMessage{nil}, AccessToken: testToken}, capi.ClassInvalid},
		{"no pixel", "", &capi.Request{Data: many[:1], AccessToken: testToken}, capi.ClassAuth},
	}
	for _, tc := range tests {
		_, err := c.Send(t.Context(), tc.pixel, tc.req)
		if err == nil || capi.Classify(err) != tc.want {
			t.Errorf("%s: Send = %v, want a %v error", tc.name, err, tc.want)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("fake saw %d requests, want none", n)
	}
}

func TestCheckToken(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	srv.SetToken("123", testToken)
	if err := c.CheckToken(t.Context(), "123", testToken); err != nil {
		t.Errorf("CheckToken(right token) = %v, want nil", err)
	}
	err := c.CheckToken(t.Context(), "123", "EAAwrongtoken999999")
	var e *capi.Error
	if !errors.As(err, &e) || e.Code != 190 || capi.Classify(err) != capi.ClassAuth {
		t.Errorf("CheckToken(wrong token) = %v, want 190 auth", err)
	}
	if err != nil && strings.Contains(err.Error(), "EAAwrongtoken999999") {
		t.Errorf("error contains the token: %v", err)
	}
	srv.RevokeToken("123")
	if err := c.CheckToken(t.Context(), "123", testToken); capi.Classify(err) != capi.ClassAuth || err == nil {
		t.Errorf("CheckToken(revoked) = %v, want auth error", err)
	}
	if err := c.CheckToken(t.Context(), "123", ""); capi.Classify(err) != capi.ClassAuth || err == nil {
		t.Errorf("CheckToken(empty) = %v, want auth error", err)
	}
	reqs := srv.Requests()
	if len(reqs) != 3 || reqs[0].Method != http.MethodGet || reqs[0].RawQuery != "fields=id" || reqs[0].Path != capitest.BasePath+"/"+capi.DefaultVersion+"/123" {
		t.Errorf("requests = %+v, want 3 GET .../123?fields=id", reqs)
	}
}

// BenchmarkSend posts 1,000-event batches to the fake, which validates
// every event, and reports events/s end to end.
func BenchmarkSend(b *testing.B) {
	srv := capitest.New()
	defer srv.Close()
	srv.SetKeepEvents(false)
	c := &capi.Client{BaseURL: srv.URL}
	now := srv.Now()
	req := &capi.Request{Data: make([]json.RawMessage, capi.MaxEventsPerRequest), AccessToken: testToken}
	for i := range req.Data {
		req.Data[i] = validEvent(now, "ev-"+strconv.Itoa(i))
	}
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		if _, err := c.Send(b.Context(), "123", req); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n*len(req.Data))/time.Since(start).Seconds(), "events/s")
}

// BenchmarkSendParallel is BenchmarkSend with GOMAXPROCS concurrent senders.
func BenchmarkSendParallel(b *testing.B) {
	srv := capitest.New()
	defer srv.Close()
	srv.SetKeepEvents(false)
	c := &capi.Client{BaseURL: srv.URL}
	now := srv.Now()
	req := &capi.Request{Data: make([]json.RawMessage, capi.MaxEventsPerRequest), AccessToken: testToken}
	for i := range req.Data {
		req.Data[i] = validEvent(now, "ev-"+strconv.Itoa(i))
	}
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Send(context.Background(), "123", req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(srv.Stats().EventsAccepted)/time.Since(start).Seconds(), "events/s")
}
