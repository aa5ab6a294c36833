package capitest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/capitest"
)

const token = "EAAfaketoken0123456789"

func event(now time.Time, id string) json.RawMessage {
	return json.RawMessage(`{"event_name":"Lead","event_time":` + strconv.FormatInt(now.Unix()-30, 10) +
		`,"event_id":"` + id + `","action_source":"website","event_source_url":"https://example.com/form",` +
		`"user_data":{"client_user_agent":"Mozilla/5.0","client_ip_address":"203.0.113.9","fbp":"fb.1.1596403881668.1116446470"}}`)
}

// badFbc is a valid event but for a malformed fbc (100/2804001).
func badFbc(now time.Time, id string) json.RawMessage {
	return json.RawMessage(strings.Replace(string(event(now, id)), `"fbp":`, `"fbc":"fb.1.1554763741205","fbp":`, 1))
}

type bundle struct {
	srv    *capitest.Server
	client *capi.Client
}

func setup(t *testing.T) bundle {
	t.Helper()
	srv := capitest.New()
	t.Cleanup(srv.Close)
	return bundle{srv: srv, client: &capi.Client{BaseURL: srv.URL, Timeout: 2 * time.Second}}
}

func (b bundle) send(t *testing.T, pixel string, events ...json.RawMessage) (*capi.Response, error) {
	t.Helper()
	return b.client.Send(t.Context(), pixel, &capi.Request{Data: events, AccessToken: token})
}

func TestRejectsWholeBatchForOneBadEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.srv.Now()
	_, err := b.send(t, "1", event(now, "a"), badFbc(now, "b"), event(now, "c"))
	var e *capi.Error
	if !errors.As(err, &e) || e.Status != 400 || e.Code != 100 || e.Subcode != capi.SubcodeBadClickID || e.Type != "OAuthException" || e.TraceID == "" {
		t.Fatalf("Send = %v, want 400 OAuthException 100/2804001 with a trace id", err)
	}
	if e.UserTitle != "Click ID Incorrectly Formatted" || !strings.HasPrefix(e.UserMsg, "data[1].user_data.fbc") {
		t.Errorf("user title/msg = %q / %q, want the fbc problem of data[1]", e.UserTitle, e.UserMsg)
	}
	if n := len(b.srv.Events("1")); n != 0 {
		t.Errorf("Events = %d, want 0: the whole batch is rejected", n)
	}
	reqs := b.srv.Requests()
	if len(reqs) != 1 || reqs[0].Status != 400 || len(reqs[0].Events) != 3 || reqs[0].Subcode != capi.SubcodeBadClickID {
		t.Errorf("Requests = %+v, want one 400 with 3 events", reqs)
	}
	if _, err := b.send(t, "1", event(now, "a"), event(now, "c")); err != nil {
		t.Fatalf("Send(good events) = %v", err)
	}
	if got := len(b.srv.Events("1")); got != 2 {
		t.Errorf("Events = %d, want 2", got)
	}
}

func TestRejectRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.srv.Now()
	b.srv.Reject(func(ev map[string]any) bool { return ev["event_id"] == "poison" })
	_, err := b.send(t, "1", event(now, "a"), event(now, "poison"))
	var e *capi.Error
	if !errors.As(err, &e) || e.Code != 100 || e.Subcode != capi.SubcodeInvalidData || capi.Classify(err) != capi.ClassInvalid {
		t.Fatalf("Send with poison = %v, want 100/2804019 invalid", err)
	}
	// Bisect: each half alone.
	if _, err := b.send(t, "1", event(now, "a")); err != nil {
		t.Errorf("Send(first half) = %v, want accepted", err)
	}
	if _, err := b.send(t, "1", event(now, "poison")); err == nil {
		t.Error("Send(second half) accepted, want rejected")
	}
	b.srv.Reset()
	if _, err := b.send(t, "1", event(now, "poison")); err != nil {
		t.Errorf("Send after Reset = %v, want accepted", err)
	}
}

func TestTooManyEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.srv.Now()
	var body bytes.Buffer
	body.WriteString(`{"access_token":"` + token + `","data":[`)
	for i := range capi.MaxEventsPerRequest + 1 {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(event(now, strconv.Itoa(i)))
	}
	body.WriteString(`]}`)
	resp, err := http.Post(b.srv.URL+"/v25.0/1/events", "application/json", &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if e := graphErr(t, resp); resp.StatusCode != 400 || e.Code != 100 {
		t.Errorf("1001 events: status %d error %+v, want 400 code 100", resp.StatusCode, e)
	}
}

type errBody struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    int    `json:"code"`
	Subcode int    `json:"error_subcode"`
}

func graphErr(t *testing.T, resp *http.Response) errBody {
	t.Helper()
	var body struct{ Error errBody }
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("response %s: %v", raw, err)
	}
	return body.Error
}

func TestFormBodies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.srv.Now()
	data := `[` + string(event(now, "f1")) + `,` + string(event(now, "f2")) + `]`

	form := url.Values{"data": {data}, "access_token": {token}, "test_event_code": {"TEST9"}}
	resp, err := http.PostForm(b.srv.URL+"/v25.0/1/events", form)
	if err != nil {
		t.Fatal(err)
	}
	var ok capi.Response
	json.NewDecoder(resp.Body).Decode(&ok)
	resp.Body.Close()
	if resp.StatusCode != 200 || ok.EventsReceived != 2 {
		t.Errorf("form POST: status %d %+v, want 200 with 2 events", resp.StatusCode, ok)
	}

	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	w.WriteField("data", data)
	w.WriteField("access_token", token)
	w.Close()
	resp, err = http.Post(b.srv.URL+"/v25.0/1/events", w.FormDataContentType(), &mp)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("multipart POST: status %d, want 200", resp.StatusCode)
	}

	// JSON body with data as a JSON-encoded string and the token in the
	// query string, as GTM sends it.
	body := `{"data":` + strconv.Quote(data) + `}`
	resp, err = http.Post(b.srv.URL+"/v25.0/1/events?access_token="+token, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("JSON with string data: status %d, want 200", resp.StatusCode)
	}

	if got := len(b.srv.Events("1")); got != 6 {
		t.Errorf("Events = %d, want 6", got)
	}
	reqs := b.srv.Requests()
	if reqs[0].AccessToken != token || reqs[0].TestEventCode != "TEST9" || reqs[2].AccessToken != token || !strings.Contains(reqs[2].RawQuery, "access_token") {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.srv.Now()
	if _, err := b.send(t, "1", event(now, "a")); err != nil {
		t.Fatalf("default accepts any token: %v", err)
	}
	_, err := b.client.Send(t.Context(), "1", &capi.Request{Data: []json.RawMessage{event(now, "a")}})
	if capi.Classify(err) != capi.ClassAuth {
		t.Errorf("Send without token = %v, want auth error", err)
	}
	b.srv.SetToken("1", "EAAothertoken")
	_, err = b.send(t, "1", event(now, "a"))
	var e *capi.Error
	if !errors.As(err, &e) || e.Code != 190 || e.Subcode != 460 || capi.Classify(err) != capi.ClassAuth {
		t.Errorf("Send with wrong token = %v, want 190/460", err)
	}
	if _, err := b.send(t, "2", event(now, "a")); err != nil {
		t.Errorf("other pixel: %v", err)
	}
	b.srv.SetToken("1", token)
	if _, err := b.send(t, "1", event(now, "a")); err != nil {
		t.Errorf("right token: %v", err)
	}
	b.srv.RevokeToken("1")
	if _, err := b.send(t, "1", event(now, "a")); capi.Classify(err) != capi.ClassAuth {
		t.Errorf("revoked: %v, want auth", err)
	}
	if err := b.client.CheckToken(t.Context(), "1", token); capi.Classify(err) != capi.ClassAuth || err == nil {
		t.Errorf("CheckToken(revoked) = %v", err)
	}
	if err := b.client.CheckToken(t.Context(), "2", token); err != nil {
		t.Errorf("CheckToken(pixel 2) = %v", err)
	}
}

func TestFailNextAndLatency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.srv.Now()
	b.srv.FailNext(2, capitest.Fault503)
	for range 2 {
		if _, err := b.send(t, "1", event(now, "a")); err == nil {
			t.Fatal("Send succeeded during FailNext")
		}
	}
	b.srv.SetLatency(50 * time.Millisecond)
	start := time.Now()
	if _, err := b.send(t, "1", event(now, "a")); err != nil {
		t.Fatalf("Send after FailNext: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Send took %v, want >= latency 50ms", d)
	}
	if st := b.srv.Stats(); st.Requests != 3 || st.Faults != 2 || st.Accepted != 1 || st.EventsAccepted != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

// faultSequence sends n requests and returns which fault each got.
func faultSequence(t *testing.T, seed uint64, n int) []capitest.Fault {
	b := setup(t)
	b.srv.SetSeed(seed)
	b.srv.SetFaultRate(0.5, capitest.Fault500, capitest.FaultRateLimit, capitest.FaultToken)
	now := b.srv.Now()
	for range n {
		b.send(t, "1", event(now, "a"))
	}
	var out []capitest.Fault
	for _, r := range b.srv.Requests() {
		out = append(out, r.Fault)
	}
	return out
}

func TestFaultRateDeterministic(t *testing.T) {
	t.Parallel()
	a, b := faultSequence(t, 7, 200), faultSequence(t, 7, 200)
	faults := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("request %d: fault %v vs %v with the same seed", i, a[i], b[i])
		}
		if a[i] != capitest.FaultNone {
			faults++
		}
	}
	if faults < 60 || faults > 140 {
		t.Errorf("%d faults in 200 requests at rate 0.5", faults)
	}
}

func TestEventsByIDCountsDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.srv.Now()
	b.send(t, "1", event(now, "a"), event(now, "b"))
	b.srv.FailNext(1, capitest.Fault500)
	b.send(t, "1", event(now, "c"))
	b.send(t, "1", event(now, "a"))
	byID := b.srv.EventsByID("1")
	if len(byID["a"]) != 2 || len(byID["b"]) != 1 || len(byID["c"]) != 0 {
		t.Errorf("EventsByID counts a=%d b=%d c=%d, want 2 1 0", len(byID["a"]), len(byID["b"]), len(byID["c"]))
	}
}

func TestClock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	past := time.Now().Add(-30 * 24 * time.Hour)
	ev := event(past, "a")
	if _, err := b.send(t, "1", ev); capi.Classify(err) != capi.ClassExpired {
		t.Errorf("30-day-old event = %v, want expired", err)
	}
	b.srv.SetClock(func() time.Time { return past })
	if _, err := b.send(t, "1", ev); err != nil {
		t.Errorf("with the fake clock in the past: %v", err)
	}
	if at := b.srv.Requests()[1].At; !at.Equal(past) {
		t.Errorf("At = %v, want the fake clock %v", at, past)
	}
}

func TestUnknownPathAndVersion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/v25.0/1/other", "/v25.0/1/events/x", "/nope/1/events"} {
		resp, err := http.Post(b.srv.URL+path+"?access_token=x", "application/json", strings.NewReader(`{"data":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("POST %s: status %d, want 400", path, resp.StatusCode)
		}
	}
	// Without the base path the fake does not answer like Graph.
	resp, err := http.Post(strings.TrimSuffix(b.srv.URL, capitest.BasePath)+"/v25.0/1/events", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Error("request without the base path was accepted")
	}
}

func TestConcurrentAndClose(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := b.srv.Now()
	b.srv.SetFaultRate(0.2, capitest.Fault500, capitest.FaultReset, capitest.FaultRateLimit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	delivered := 0
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				if _, err := b.send(t, "1", event(now, strconv.Itoa(g*100+i))); err == nil {
					mu.Lock()
					delivered++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	st := b.srv.Stats()
	if st.Requests != 200 || st.EventsAccepted != delivered || len(b.srv.Events("1")) != delivered {
		t.Errorf("Stats %+v, delivered %d, Events %d", st, delivered, len(b.srv.Events("1")))
	}

	// Close returns even while a request hangs on FaultTimeout.
	b.srv.SetFaultRate(0)
	b.srv.FailNext(1, capitest.FaultTimeout)
	c := &capi.Client{BaseURL: b.srv.URL, Timeout: time.Minute}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Send(t.Context(), "1", &capi.Request{Data: []json.RawMessage{event(now, "x")}, AccessToken: token})
		errc <- err
	}()
	// A request is recorded only when it ends; give this one time to be in
	// flight.
	time.Sleep(100 * time.Millisecond)
	done := make(chan struct{})
	go func() { b.srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a FaultTimeout request")
	}
	if err := <-errc; capi.Classify(err) != capi.ClassTransient || err == nil {
		t.Errorf("hung Send = %v, want a transient error", err)
	}
}
