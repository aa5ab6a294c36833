// Package capitest is a fake Graph API events edge for tests: it validates
// every event with capi.ValidateEvent the way Meta would, rejects a whole
// batch for one bad event, checks tokens, records what it received and
// injects faults (5xx, timeouts, connection resets, rate limits, token
// errors).
//
// It is for tests only; nothing on the binary's main path may import it.
// All methods are safe for concurrent use. The fake is mounted under a
// non-empty base path (Server.URL ends in "/graph"), so code that builds
// absolute URLs instead of using the configured base fails its tests.
package capitest

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
)

// BasePath is the path prefix the fake serves under.
const BasePath = "/graph"

// Fault is a failure the fake can inject instead of handling a request.
type Fault int

const (
	FaultNone        Fault = iota
	Fault500               // HTTP 500 with a Graph error object, code 1
	Fault503               // HTTP 503 with a plain-text body
	FaultTimeout           // hang until the client gives up (or Close)
	FaultReset             // hijack the connection and reset it
	FaultRateLimit         // 400 code 17 subcode 2446079, is_transient
	FaultThrottle613       // 400 code 613 subcode 1487742
	FaultToken             // 400 OAuthException code 190 subcode 460
)

// String names the fault ("500", "timeout", ...).
func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case Fault500:
		return "500"
	case Fault503:
		return "503"
	case FaultTimeout:
		return "timeout"
	case FaultReset:
		return "reset"
	case FaultRateLimit:
		return "rate_limit"
	case FaultThrottle613:
		return "throttle_613"
	case FaultToken:
		return "token"
	}
	return "fault(" + strconv.Itoa(int(f)) + ")"
}

// Request is one recorded call, accepted or not.
type Request struct {
	Method      string
	Path        string // URL path as received, including BasePath
	RawQuery    string // to assert that no token travels in the URL
	ContentType string

	Pixel, Version, AccessToken, TestEventCode, PartnerAgent string
	// The request's other top-level parameters (spec §1.3).
	NamespaceID, UploadID, UploadTag, UploadSource string
	// Events of the request, when the body could be decoded. Nil when
	// SetKeepEvents(false).
	Events []json.RawMessage
	// Status answered; 0 when the fake timed out or reset the connection.
	Status int
	// Code and Subcode of the Graph error answered, if any.
	Code, Subcode int
	Fault         Fault
	At            time.Time
}

// Stats counts what the fake has seen since New or Reset.
type Stats struct {
	Requests       int // every request
	Accepted       int // requests answered 200
	EventsAccepted int // events in accepted requests
	Faults         int // requests answered by an injected fault
}

// Server is the fake. Create it with New; Close it when done.
type Server struct {
	// URL is the base URL to use as capi.Client.BaseURL, e.g.
	// http://127.0.0.1:1234/graph.
	URL string

	ts        *httptest.Server
	closing   chan struct{}
	closeOnce sync.Once
	traceSeq  atomic.Uint64

	mu          sync.Mutex
	now         func() time.Time
	tokens      map[string]string
	revoked     map[string]bool
	rejects     []func(ev map[string]any) bool
	faultRate   float64
	faults      []Fault
	rng         *rand.Rand
	failNext    []Fault
	latency     time.Duration
	retryAfter  time.Duration
	keepEvents  bool
	requests    []Request
	accepted    map[string][]json.RawMessage
	stats       Stats
	defaultSeed uint64
}

// New starts a fake on a loopback port. By default any non-empty token is
// accepted, there are no faults and the clock is time.Now.
func New() *Server {
	s := &Server{closing: make(chan struct{}), now: time.Now, keepEvents: true, defaultSeed: 1}
	s.resetLocked()
	s.ts = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.ts.URL + BasePath
	return s
}

// Close stops the server, releasing requests hung by FaultTimeout first.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
}

// SetToken makes token the only accepted token for pixelID; any other gets
// 400 OAuthException 190/460.
func (s *Server) SetToken(pixelID, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[pixelID] = token
	delete(s.revoked, pixelID)
}

// RevokeToken makes every token for pixelID fail with code 190 until the
// next SetToken for it.
func (s *Server) RevokeToken(pixelID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[pixelID] = true
}

// Reject adds a rule: a batch containing an event for which fn returns true
// is rejected whole with code 100, subcode 2804019. fn gets the event
// decoded with json.Unmarshal (numbers as float64) and must not keep it.
func (s *Server) Reject(fn func(ev map[string]any) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejects = append(s.rejects, fn)
}

// SetFaultRate makes each request independently fail, with probability
// rate, with one of faults chosen at random (Fault500 if none given). The
// random source is seeded (see SetSeed), so a run is reproducible given the
// same request order.
func (s *Server) SetFaultRate(rate float64, faults ...Fault) {
	if len(faults) == 0 {
		faults = []Fault{Fault500}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultRate = rate
	s.faults = append([]Fault(nil), faults...)
}

// SetSeed reseeds the fault random source.
func (s *Server) SetSeed(seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defaultSeed = seed
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// FailNext makes the next n requests (of any kind) fail with f, before any
// fault rate applies.
func (s *Server) FailNext(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, f)
	}
}

// SetLatency delays every answer by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetRetryAfter makes rate-limit faults (FaultRateLimit, FaultThrottle613)
// carry a Retry-After header of d (whole seconds) and a
// X-Business-Use-Case-Usage estimated_time_to_regain_access of d (whole
// minutes). Default 0: no hint.
func (s *Server) SetRetryAfter(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = d
}

// SetClock sets the clock used to validate event_time and stamp requests.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Now returns the fake's current time.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	now := s.now
	s.mu.Unlock()
	return now()
}

// SetKeepEvents chooses whether accepted events are kept (default true).
// Turn it off in long benchmarks; Stats still counts.
func (s *Server) SetKeepEvents(keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepEvents = keep
}

// Requests returns every request received, accepted or not, in arrival
// order of completion.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Events returns the events of accepted requests for pixelID, in order.
func (s *Server) Events(pixelID string) []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]json.RawMessage(nil), s.accepted[pixelID]...)
}

// EventsByID groups the accepted events of pixelID by event_id ("" for
// events without one); a slice longer than 1 is a duplicate delivery.
func (s *Server) EventsByID(pixelID string) map[string][]json.RawMessage {
	events := s.Events(pixelID)
	out := make(map[string][]json.RawMessage, len(events))
	for _, ev := range events {
		var id struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(ev, &id) // accepted events are valid JSON
		out[id.EventID] = append(out[id.EventID], ev)
	}
	return out
}

// Stats returns counters since New or Reset.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Reset forgets recorded requests and events, tokens, revocations, reject
// rules, faults, latency and retry hints, and reseeds the random source.
// The clock and SetKeepEvents are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
}

func (s *Server) resetLocked() {
	s.tokens = map[string]string{}
	s.revoked = map[string]bool{}
	s.rejects = nil
	s.faultRate, s.faults, s.failNext = 0, nil, nil
	s.latency, s.retryAfter = 0, 0
	s.requests = nil
	s.accepted = map[string][]json.RawMessage{}
	s.stats = Stats{}
	s.rng = rand.New(rand.NewPCG(s.defaultSeed, s.defaultSeed^0x9e3779b97f4a7c15))
}

// snapshot is the configuration one request runs under.
type snapshot struct {
	now        time.Time
	fault      Fault
	latency    time.Duration
	retryAfter time.Duration
	token      string
	hasToken   bool
	revoked    bool
	rejects    []func(ev map[string]any) bool
}

func (s *Server) snapshot(pixel string) snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := snapshot{now: s.now(), latency: s.latency, retryAfter: s.retryAfter, rejects: s.rejects}
	sn.token, sn.hasToken = s.tokens[pixel]
	sn.revoked = s.revoked[pixel]
	switch {
	case len(s.failNext) > 0:
		sn.fault = s.failNext[0]
		s.failNext = s.failNext[1:]
	case s.faultRate > 0 && s.rng.Float64() < s.faultRate:
		sn.fault = s.faults[s.rng.IntN(len(s.faults))]
	}
	return sn
}

func (s *Server) record(r Request, events []json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	if r.Fault != FaultNone {
		s.stats.Faults++
	}
	if r.Status == http.StatusOK && r.Method == http.MethodPost {
		s.stats.Accepted++
		s.stats.EventsAccepted += len(events)
		if s.keepEvents {
			s.accepted[r.Pixel] = append(s.accepted[r.Pixel], events...)
		}
	} else if r.Status == http.StatusOK {
		s.stats.Accepted++
	}
	if s.keepEvents {
		r.Events = events
	}
	s.requests = append(s.requests, r)
}

var versionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

// graphError is the Graph API error object (spec §7.1).
type graphError struct {
	Message     string `json:"message"`
	Type        string `json:"type"`
	Code        int    `json:"code"`
	Subcode     int    `json:"error_subcode,omitempty"`
	IsTransient bool   `json:"is_transient"`
	UserTitle   string `json:"error_user_title,omitempty"`
	UserMsg     string `json:"error_user_msg,omitempty"`
	FbtraceID   string `json:"fbtrace_id"`
}

func (s *Server) traceID() string {
	return "Afake" + strconv.FormatUint(s.traceSeq.Add(1), 36)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type")}
	var events []json.RawMessage
	defer func() { s.record(rec, events) }()

	rest, ok := strings.CutPrefix(r.URL.Path, BasePath+"/")
	parts := strings.Split(rest, "/")
	switch {
	case ok && len(parts) == 3 && parts[2] == "events" && r.Method == http.MethodPost:
	case ok && len(parts) == 2 && r.Method == http.MethodGet:
	default:
		s.fail(w, &rec, http.StatusBadRequest, graphError{Code: 2500, Type: "OAuthException", Message: "Unknown path components"})
		return
	}
	rec.Version, rec.Pixel = parts[0], parts[1]
	sn := s.snapshot(rec.Pixel)
	rec.At = sn.now

	if sn.latency > 0 {
		t := time.NewTimer(sn.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.closing:
			t.Stop()
			return
		}
	}

	var perr *graphError
	if r.Method == http.MethodPost {
		events, perr = s.readEvents(r, &rec)
	} else {
		rec.AccessToken = bearer(r)
	}

	if rec.Fault = sn.fault; sn.fault != FaultNone {
		s.inject(w, r, &rec, sn)
		return
	}
	if !versionRE.MatchString(rec.Version) {
		s.fail(w, &rec, http.StatusBadRequest, graphError{Code: 2500, Type: "OAuthException", Message: "Unknown path components: unsupported version"})
		return
	}
	switch {
	case rec.AccessToken == "":
		s.fail(w, &rec, http.StatusBadRequest, graphError{Code: 190, Type: "OAuthException", Message: "An access token is required to request this resource."})
		return
	case sn.revoked || sn.hasToken && rec.AccessToken != sn.token:
		s.fail(w, &rec, http.StatusBadRequest, graphError{Code: 190, Subcode: capi.SubcodeTokenInvalidated, Type: "OAuthException",
			Message: "Error validating access token: The session has been invalidated.", UserTitle: "Invalid access token",
			UserMsg: "The access token is invalid or has been revoked."})
		return
	}
	if r.Method == http.MethodGet {
		rec.Status = http.StatusOK
		writeJSON(w, http.StatusOK, map[string]string{"id": rec.Pixel})
		return
	}
	if perr != nil {
		s.fail(w, &rec, http.StatusBadRequest, *perr)
		return
	}
	if ge := s.validate(events, sn); ge != nil {
		s.fail(w, &rec, http.StatusBadRequest, *ge)
		return
	}
	rec.Status = http.StatusOK
	trace := s.traceID()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, `{"events_received":%d,"messages":[],"fbtrace_id":%q}`, len(events), trace)
}

// readEvents decodes the body: JSON {"data":[...],...}, or a form /
// multipart body with data=<JSON array>. The token may also come from the
// query string or an Authorization header, as Graph allows (§1.4).
func (s *Server) readEvents(r *http.Request, rec *Request) ([]json.RawMessage, *graphError) {
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<20)
	mt, _, _ := mime.ParseMediaType(rec.ContentType)
	var data []byte
	var events []json.RawMessage
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		var err error
		if mt == "multipart/form-data" {
			err = r.ParseMultipartForm(32 << 20)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			return nil, invalidParam("Could not parse the form body")
		}
		rec.AccessToken = r.FormValue("access_token")
		rec.TestEventCode = r.FormValue("test_event_code")
		rec.PartnerAgent = r.FormValue("partner_agent")
		rec.NamespaceID, rec.UploadID = r.FormValue("namespace_id"), r.FormValue("upload_id")
		rec.UploadTag, rec.UploadSource = r.FormValue("upload_tag"), r.FormValue("upload_source")
		data = []byte(r.FormValue("data"))
	default:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, invalidParam("Could not read the request body")
		}
		req, err := capi.DecodeRequest(body)
		if err != nil {
			return nil, invalidParam("The request body is not a valid JSON object with a data array")
		}
		rec.AccessToken, rec.TestEventCode, rec.PartnerAgent = req.AccessToken, req.TestEventCode, req.PartnerAgent
		rec.NamespaceID, rec.UploadID, rec.UploadTag, rec.UploadSource = req.NamespaceID, req.UploadID, req.UploadTag, req.UploadSource
		events = req.Data
	}
	if rec.AccessToken == "" {
		rec.AccessToken = r.URL.Query().Get("access_token")
	}
	if rec.AccessToken == "" {
		rec.AccessToken = bearer(r)
	}
	if events != nil {
		return events, nil
	}
	if len(data) == 0 {
		return nil, invalidParam("The parameter data is required")
	}
	events, err := capi.DecodeEvents(data)
	if err != nil {
		return nil, invalidParam("Param data must be an array.")
	}
	return events, nil
}

func bearer(r *http.Request) string {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return tok
	}
	return r.URL.Query().Get("access_token")
}

func invalidParam(msg string) *graphError {
	return &graphError{Code: capi.CodeInvalidParameter, Type: "OAuthException", Message: "(#100) " + msg}
}

// validate applies Meta's batch rules: 1..1000 events, every event valid,
// and the Reject rules; the first failure rejects the whole batch (§7.2).
func (s *Server) validate(events []json.RawMessage, sn snapshot) *graphError {
	switch {
	case len(events) == 0:
		return invalidParam("Param data must contain at least one event")
	case len(events) > capi.MaxEventsPerRequest:
		return invalidParam(fmt.Sprintf("Param data must contain at most %d events", capi.MaxEventsPerRequest))
	}
	for i, ev := range events {
		if probs := capi.ValidateEvent(ev, sn.now); len(probs) > 0 {
			r := probs[0].Refusal(i)
			return &graphError{Code: r.Code, Subcode: r.Subcode, Type: r.Type, Message: r.Message,
				UserTitle: r.UserTitle, UserMsg: r.UserMsg}
		}
	}
	if len(sn.rejects) == 0 {
		return nil
	}
	for i, ev := range events {
		var m map[string]any
		if json.Unmarshal(ev, &m) != nil {
			continue
		}
		for _, fn := range sn.rejects {
			if fn(m) {
				return &graphError{Code: capi.CodeInvalidParameter, Subcode: capi.SubcodeInvalidData, Type: "OAuthException",
					Message: "Invalid parameter", UserTitle: "Invalid parameter",
					UserMsg: "data[" + strconv.Itoa(i) + "] was rejected by a test rule"}
			}
		}
	}
	return nil
}

func (s *Server) fail(w http.ResponseWriter, rec *Request, status int, ge graphError) {
	ge.FbtraceID = s.traceID()
	rec.Status, rec.Code, rec.Subcode = status, ge.Code, ge.Subcode
	writeJSON(w, status, map[string]graphError{"error": ge})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "BUG: encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func (s *Server) inject(w http.ResponseWriter, r *http.Request, rec *Request, sn snapshot) {
	switch sn.fault {
	case Fault500:
		s.fail(w, rec, http.StatusInternalServerError, graphError{Code: 1, Type: "OAuthException", Message: "An unknown error occurred"})
	case Fault503:
		rec.Status = http.StatusServiceUnavailable
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
	case FaultTimeout:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
	case FaultReset:
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			tcp.SetLinger(0) // close with RST, not FIN
		}
		conn.Close()
	case FaultRateLimit, FaultThrottle613:
		ge := graphError{Code: capi.CodeUserRateLimit, Subcode: capi.SubcodeUserRateLimit, Type: "OAuthException",
			Message: "(#17) User request limit reached", IsTransient: true}
		if sn.fault == FaultThrottle613 {
			ge = graphError{Code: capi.CodeRateLimit, Subcode: 1487742, Type: "OAuthException",
				Message: "(#613) There have been too many calls from this ad-account. Please wait a bit and try again."}
		}
		if sn.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(sn.retryAfter/time.Second)))
			w.Header().Set("X-Business-Use-Case-Usage", fmt.Sprintf(
				`{"1":[{"type":"ads_management","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":%d}]}`,
				int(sn.retryAfter/time.Minute)))
		}
		s.fail(w, rec, http.StatusBadRequest, ge)
	case FaultToken:
		s.fail(w, rec, http.StatusBadRequest, graphError{Code: capi.CodeAccessToken, Subcode: capi.SubcodeTokenInvalidated, Type: "OAuthException",
			Message: "Error validating access token: The session has been invalidated."})
	}
}
