package collect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/metarules"
	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// MaxServerBody is the largest request body of /v1/events and the Graph
// alias: 1,000 purchases as Meta's Node SDK builds them are 0.74 MB, or
// 2.3 MB with every user_data field set (TestNodeSDK measures them); 8 MiB
// leaves room for large custom_data. Bodies past bigBody share
// bigBodySlots, so the cap does not raise what many requests at once may
// hold.
const MaxServerBody = 8 << 20

// APIKeyPrefix starts every site api key, so a leaked key is recognisable.
const APIKeyPrefix = "crk_"

// HashAPIKey is how api keys are stored: hex SHA-256. Looking a key up by its
// hash makes the comparison independent of how much of the key matches.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Server takes events from customer backends: POST /v1/events with a site
// api key, and the Graph-compatible alias POST /{version}/{pixel}/events.
type Server struct {
	Sites    store.Sites
	Pipeline *pipeline.Pipeline
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// Notify, if set, is told how many events a site just queued.
	Notify func(site string, n int)
}

// Result is one event's answer in a /v1/events response.
type Result struct {
	EventID string          `json:"event_id"`
	Status  pipeline.Status `json:"status"`
	Error   string          `json:"error,omitempty"`
	Field   string          `json:"field,omitempty"`
}

// Response is the /v1/events answer.
type Response struct {
	EventsReceived int      `json:"events_received"`
	Results        []Result `json:"results"`
}

// request is the body of both endpoints: Meta's own shape.
type request struct {
	Data          json.RawMessage `json:"data"`
	TestEventCode string          `json:"test_event_code"`
	AccessToken   string          `json:"access_token"`
	PartnerAgent  string          `json:"partner_agent"`
	NamespaceID   string          `json:"namespace_id"`
	UploadID      string          `json:"upload_id"`
	UploadTag     string          `json:"upload_tag"`
	UploadSource  string          `json:"upload_source"`
	// See event.Envelope: taken, not used.
	ID             string          `json:"id"`
	AppsecretProof string          `json:"appsecret_proof"`
	Fields         json.RawMessage `json:"fields"`
	Platforms      json.RawMessage `json:"platforms"`
	Progress       json.RawMessage `json:"progress"`
}

// ServeEvents handles POST /v1/events.
func (s *Server) ServeEvents(w http.ResponseWriter, r *http.Request) {
	key := bearer(r)
	if key == "" {
		writeError(w, errNoKey)
		return
	}
	resp, err := s.handle(r, key, "", false)
	if err != nil {
		writeError(w, err)
		return
	}
	writeResponse(w, http.StatusOK, resp)
}

// ServeGraph handles POST /{version}/{pixel}/events, answering like the
// Graph API so Meta's SDKs work with only the base URL changed. The api
// key is given as access_token (query, form or JSON body) or a bearer
// header. As on Graph, a request with any invalid event is refused whole
// (HTTP 400 and Graph's error object) and nothing of it is stored; every
// answer carries a new fbtrace_id, which the log line of the answer
// repeats.
func (s *Server) ServeGraph(w http.ResponseWriter, r *http.Request) {
	trace := newTraceID()
	key := r.URL.Query().Get("access_token")
	if key == "" {
		key = bearer(r)
	}
	resp, err := s.handle(r, key, r.PathValue("pixel"), true)
	if err != nil {
		ge := graphError(err)
		ge.TraceID = trace
		if s.Logger != nil {
			s.Logger.Info("graph request refused", "fbtrace_id", trace, "status", ge.Status, "code", ge.Code,
				"subcode", ge.Subcode, "reason", strings.TrimSpace(ge.Message+" "+ge.UserMsg))
		}
		if ge.Transient {
			w.Header().Set("Retry-After", "5")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(ge.Status)
		_, _ = w.Write(append(ge.AppendBody(nil), '\n'))
		return
	}
	if s.Logger != nil {
		s.Logger.Info("graph request", "fbtrace_id", trace, "events_received", resp.EventsReceived)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events_received": resp.EventsReceived, "messages": []string{}, "fbtrace_id": trace})
}

// newTraceID returns a fresh fbtrace_id: 16 random URL-safe characters,
// like Graph's.
func newTraceID() string {
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32())
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// graphError is err as the Graph API answers it (spec §7.1): HTTP 400 with
// code 100 (a subcode and the field and reason in error_user_msg) for bad
// input, 190 for a wrong token, 104 for none; 503 (code 2) or 500 (code
// 1), is_transient, for the relay's own trouble. A refusal of what the
// caller sent is never a 5xx.
func graphError(err error) *capi.Error {
	var ref *eventRefused
	if errors.As(err, &ref) {
		path := strings.TrimPrefix(strings.TrimPrefix(ref.err.Field, dataPath(ref.index)), ".")
		return capi.Problem{Path: path, Message: ref.err.Message, Code: capi.CodeInvalidParameter, Subcode: ref.err.Subcode}.Refusal(ref.index)
	}
	he := refusal(err)
	e := &capi.Error{Status: http.StatusBadRequest, Code: answers[he.Kind].graphCode, Subcode: he.graphSubcode, Type: "OAuthException"}
	if he.graphCode != 0 {
		e.Code = he.graphCode
	}
	switch {
	case he.Kind == errUnavailable:
		e.Status, e.Transient = http.StatusServiceUnavailable, true
		e.Message = "(#2) Service temporarily unavailable: " + he.Error()
	case he.Kind == errInternal:
		e.Status, e.Transient = http.StatusInternalServerError, true
		e.Message = "An unknown error occurred"
	case e.Code == codeNoToken:
		e.Message = "An access token is required to request this resource."
	case e.Code == capi.CodeAccessToken:
		e.Message = "Invalid OAuth access token - Cannot parse access token"
	default:
		e.Message = "(#" + strconv.Itoa(e.Code) + ") " + he.Error()
		e.UserTitle, e.UserMsg = "Invalid parameter", he.Error()
	}
	return e
}

// eventRefused is the Graph alias's refusal of a whole request for its
// index-th event.
type eventRefused struct {
	index int
	err   *event.FieldError
}

func (e *eventRefused) Error() string { return e.err.Error() }

// graphRefusal is the Graph alias's refusal of a request for its index-th
// event, rejected for err.
func graphRefusal(index int, err error) error {
	var fe *event.FieldError
	if !errors.As(err, &fe) {
		fe = &event.FieldError{Field: dataPath(index), Message: fmt.Sprint(err)}
	}
	return &eventRefused{index: index, err: fe}
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// codeNoToken is Graph's code for a request without an access token.
const codeNoToken = 104

var errNoKey = &httpError{Kind: errUnauthorized, Field: "Authorization", Message: "missing api key: send Authorization: Bearer <site api key>", graphCode: codeNoToken}

// handle parses, authenticates and submits a request. pixel, when given,
// must match the site's pixel. graph selects the Graph alias's semantics:
// one invalid event refuses the whole request, and nothing is stored.
func (s *Server) handle(r *http.Request, key, pixel string, graph bool) (*Response, error) {
	if r.Method != http.MethodPost {
		return nil, &httpError{Kind: errMethod, Message: "use POST"}
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		// Read as it is, a compressed body would be refused as bytes that
		// are not UTF-8, which says nothing of the cause.
		return nil, &httpError{Kind: errMediaType, Field: "Content-Encoding", Message: "is not supported: send the body uncompressed"}
	}
	body, release, err := readServerBody(r)
	defer release()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &httpError{Kind: errTooLarge, Field: "body",
				Message: fmt.Sprintf("is larger than %d bytes (%d MiB); send at most %d events per request, in several requests if need be",
					MaxServerBody, MaxServerBody>>20, event.MaxPerRequest)}
		}
		if unavailable(err) {
			return nil, &httpError{Kind: errUnavailable, Message: "request cancelled while waiting", Err: err}
		}
		return nil, &httpError{Kind: errBadRequest, Message: "cannot read request body"}
	}
	var site *store.Site
	if key != "" { // authenticate before looking at the body
		if site, err = s.authenticate(r.Context(), key); err != nil {
			return nil, err
		}
	}
	// Decoding is CPU-bound as Prepare is: it runs inside the pipeline's
	// gate, which Submit leaves before the wait for the commit. The gate
	// is shared fairly between sites: a request of a site that is not yet
	// authenticated (access_token in the body) queues as "".
	gateKey := ""
	if site != nil {
		gateKey = site.Key
	}
	slot, err := s.Pipeline.Enter(r.Context(), gateKey)
	if err != nil {
		return nil, &httpError{Kind: errUnavailable, Message: "request cancelled while waiting", Err: err}
	}
	defer slot.Leave()
	req, evs, err := parseRequest(r, body)
	if err != nil {
		return nil, err
	}
	if site == nil {
		if req.AccessToken == "" {
			return nil, errNoKey
		}
		if site, err = s.authenticate(r.Context(), req.AccessToken); err != nil {
			return nil, err
		}
	}
	if pixel != "" && site.PixelID != "" && pixel != site.PixelID {
		// Graph's answer for a pixel the token cannot reach (spec §7.3).
		return nil, &httpError{Kind: errBadRequest, Field: "pixel_id", graphSubcode: capi.SubcodeObjectMissing,
			Message: "does not belong to this api key's site (Object with ID '" + pixel + "' does not exist, cannot be loaded due to missing permissions)"}
	}
	if evs == nil {
		if evs, err = decodeData(req.Data); err != nil {
			return nil, err
		}
	}
	params := capi.RequestParams{PartnerAgent: req.PartnerAgent, NamespaceID: req.NamespaceID, UploadID: req.UploadID,
		UploadTag: req.UploadTag, UploadSource: req.UploadSource}.Encode()
	ins := make([]pipeline.Input, len(evs))
	for i, ev := range evs {
		ins[i] = pipeline.Input{Site: site, Event: ev, Path: dataPath(i), Source: pipeline.SourceServer,
			TestEventCode: req.TestEventCode, Params: params}
	}
	if s.Metrics != nil {
		s.Metrics.Received.WithLabelValues(pipeline.SourceServer).Add(float64(len(ins)))
	}
	results, err := s.Pipeline.Submit(r.Context(), ins, pipeline.InSlot(slot), pipeline.AllOrNothing(graph))
	if err != nil {
		// A store that refuses writes is logged by the pipeline's
		// observer, once per interval with a count.
		if !errors.Is(err, store.ErrUnavailable) {
			logStoreFailure(r.Context(), s.Logger, "store events", site.Key, err)
		}
		return nil, &httpError{Kind: errUnavailable, Message: "events could not be stored; nothing was accepted, retry later", Err: err}
	}
	sum := results.Summary()
	if graph && sum.FirstRejected >= 0 {
		if s.Metrics != nil {
			s.Metrics.Rejected.WithLabelValues(site.Key).Add(float64(len(ins)))
		}
		// As Graph: nothing of the request was taken.
		return nil, graphRefusal(sum.FirstRejected, results[sum.FirstRejected].Err)
	}
	s.count(site.Key, sum)
	resp := response(results, sum)
	if sum.Accepted+sum.Duplicates == 0 && sum.FirstRejected >= 0 {
		// Nothing was taken: answer 4xx so a client that checks only the
		// status notices, with every event's reason in the body.
		return nil, &rejectedAll{resp: resp, first: resp.Results[sum.FirstRejected]}
	}
	return resp, nil
}

// count adds a submission to the metrics and wakes the dispatcher.
func (s *Server) count(site string, sum pipeline.Summary) {
	if s.Metrics != nil {
		s.Metrics.Accepted.WithLabelValues(site).Add(float64(sum.Accepted))
		s.Metrics.Duplicates.WithLabelValues(site).Add(float64(sum.Duplicates))
		s.Metrics.Rejected.WithLabelValues(site).Add(float64(sum.Rejected))
	}
	if s.Notify != nil && sum.Accepted > 0 {
		s.Notify(site, sum.Accepted)
	}
}

// response is the /v1/events answer for a submission's results: each
// event's status, and for a rejected one the field and the reason.
func response(results pipeline.Results, sum pipeline.Summary) *Response {
	resp := &Response{EventsReceived: sum.Accepted + sum.Duplicates, Results: make([]Result, len(results))}
	for i, res := range results {
		out := Result{EventID: echoID(res.EventID), Status: res.Status}
		if res.Status == pipeline.Rejected && res.Err != nil {
			var fe *event.FieldError
			if errors.As(res.Err, &fe) {
				out.Field, out.Error = fe.Field, fe.Message
			} else {
				out.Error = res.Err.Error()
			}
		}
		resp.Results[i] = out
	}
	return resp
}

// echoID is an event id as an answer repeats it: at most
// metarules.MaxEventIDLen bytes, cut on a UTF-8 boundary. An id over the
// limit is refused, and its result need not carry all of it back (a client
// sending 5,000 characters would get them all again in the 422).
func echoID(id string) string {
	if len(id) <= metarules.MaxEventIDLen {
		return id
	}
	n := metarules.MaxEventIDLen
	for n > 0 && !utf8.RuneStart(id[n]) {
		n--
	}
	return id[:n]
}

// bigBody is the size past which a body needs one of bigBodySlots.
const bigBody = 1 << 20

// bigBodySlots bounds the requests holding a body larger than bigBody at
// once: most requests are far smaller, and without it 64 requests at the
// body cap could hold half a gigabyte. A big body waits for a slot (its
// request's context bounds the wait), so the larger cap does not raise
// what the relay holds under load.
var bigBodySlots = make(chan struct{}, 2)

// readServerBody is io.ReadAll of the body capped at MaxServerBody, starting
// with room for the Content-Length the client announced: io.ReadAll starts
// at 512 bytes and grows by copying, which for a 100-event body was ten
// allocations and more than twice its size. A wrong Content-Length only
// changes the first buffer's size. release gives back the big-body slot
// the read took, if any; call it when done with the request.
func readServerBody(r *http.Request) (body []byte, release func(), err error) {
	release = func() {}
	rd := http.MaxBytesReader(nil, r.Body, MaxServerBody)
	size := int64(512)
	if n := r.ContentLength; n > 0 {
		size = min(n, MaxServerBody) + 1 // + 1: room for the read that sees EOF
	}
	big := false
	takeSlot := func() error {
		select {
		case bigBodySlots <- struct{}{}:
			big = true
			release = func() { <-bigBodySlots }
			return nil
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
	if size > bigBody {
		if err := takeSlot(); err != nil {
			return nil, release, err
		}
	}
	b := make([]byte, 0, size)
	for {
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if !big && len(b) > bigBody {
			// Not announced as big, but is: wait for a slot before the
			// next read.
			if err := takeSlot(); err != nil {
				return nil, release, err
			}
		}
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, release, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // let append pick the growth
		}
	}
}

func (s *Server) authenticate(ctx context.Context, key string) (*store.Site, error) {
	site, err := s.Sites.SiteByAPIKeyHash(ctx, HashAPIKey(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, &httpError{Kind: errUnauthorized, Field: "Authorization", Message: "invalid api key"}
	}
	if err != nil {
		return nil, storeError(err)
	}
	return site, nil
}

// rejectedAll is a 422 carrying the per-event results.
type rejectedAll struct {
	resp  *Response
	first Result
}

func (e *rejectedAll) Error() string { return e.first.Field + ": " + e.first.Error }

// parseRequest reads the body; the events are data's, decoded, when the
// whole body could be read in one pass (event.DecodeBatch), else nil.
func parseRequest(r *http.Request, body []byte) (*request, []*event.Event, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
		ct = "application/json" // curl -d sends JSON as a form by default
	}
	var req request
	switch ct {
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, nil, &httpError{Kind: errBadRequest, Message: "malformed form body"}
		}
		formRequest(&req, v)
	case "multipart/form-data":
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := r.ParseMultipartForm(MaxServerBody); err != nil {
			return nil, nil, &httpError{Kind: errBadRequest, Message: "malformed multipart body"}
		}
		formRequest(&req, r.MultipartForm.Value)
	default:
		// Bytes that are not UTF-8 would pass encoding/json inside raw
		// values (custom_data) and make Meta's request invalid JSON.
		if err := event.CheckUTF8(body, ""); err != nil {
			return nil, nil, fieldHTTPError(err)
		}
		// The common body goes the fast way (its events' strings share
		// body's memory, which nothing modifies); anything it does not take,
		// errors included, goes through encoding/json. request(env) stops
		// compiling if the two structs' fields part ways.
		if env, evs, ok := event.DecodeBatch(body); ok {
			req = request(env)
			queryParams(&req, r)
			return &req, evs, nil
		}
		if env, ok := event.DecodeEnvelope(body); ok {
			req = request(env)
			break
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			fe := describeTop(err)
			return nil, nil, &httpError{Kind: errBadRequest, Field: fe.Field, Message: fe.Message}
		}
		if dec.More() {
			return nil, nil, &httpError{Kind: errBadRequest, Message: "malformed JSON: trailing data after the object"}
		}
	}
	if len(bytes.TrimSpace(req.Data)) == 0 {
		return nil, nil, &httpError{Kind: errBadRequest, Field: "data", Message: "is required: a list of server events"}
	}
	// A form's values are not checked by the JSON path above.
	if err := event.CheckUTF8(req.Data, "data"); err != nil {
		return nil, nil, fieldHTTPError(err)
	}
	queryParams(&req, r)
	for _, f := range []struct{ name, v string }{{"test_event_code", req.TestEventCode}, {"partner_agent", req.PartnerAgent},
		{"namespace_id", req.NamespaceID}, {"upload_id", req.UploadID}, {"upload_tag", req.UploadTag}, {"upload_source", req.UploadSource}} {
		if !utf8.ValidString(f.v) {
			return nil, nil, &httpError{Kind: errBadRequest, Field: f.name, Message: "is not valid UTF-8"}
		}
	}
	return &req, nil, nil
}

// formRequest reads a form body (spec §1.4): data is a JSON string, the
// other parameters plain values.
func formRequest(req *request, v url.Values) {
	get := func(k string) string {
		if vs := v[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	req.Data = json.RawMessage(get("data"))
	req.TestEventCode, req.AccessToken, req.PartnerAgent = get("test_event_code"), get("access_token"), get("partner_agent")
	req.NamespaceID, req.UploadID, req.UploadTag, req.UploadSource = get("namespace_id"), get("upload_id"), get("upload_tag"), get("upload_source")
	req.ID, req.AppsecretProof = get("id"), get("appsecret_proof")
}

// queryParams fills the request's parameters that the body left empty from
// the URL's query, where Graph takes them too (the token is read there
// before the body).
func queryParams(req *request, r *http.Request) {
	if r.URL.RawQuery == "" {
		return
	}
	q := r.URL.Query()
	for _, p := range []struct {
		key string
		dst *string
	}{{"test_event_code", &req.TestEventCode}, {"partner_agent", &req.PartnerAgent}, {"namespace_id", &req.NamespaceID},
		{"upload_id", &req.UploadID}, {"upload_tag", &req.UploadTag}, {"upload_source", &req.UploadSource}} {
		if *p.dst == "" {
			*p.dst = q.Get(p.key)
		}
	}
}

func describeTop(err error) *event.FieldError {
	var fe *event.FieldError
	if errors.As(event.DescribeJSONError(err, ""), &fe) {
		return fe
	}
	return &event.FieldError{Message: err.Error()}
}

// decodeData splits data into its events and decodes each one; the error
// is the request's answer.
func decodeData(data json.RawMessage) ([]*event.Event, error) {
	raws, err := splitData(data)
	if err != nil {
		return nil, err
	}
	evs := make([]*event.Event, len(raws))
	for i, raw := range raws {
		path := dataPath(i)
		ev, err := event.Decode(raw, path)
		if err != nil {
			var fe *event.FieldError
			if errors.As(err, &fe) {
				return nil, &httpError{Kind: errBadRequest, Field: fe.Field, Message: fe.Message}
			}
			return nil, &httpError{Kind: errBadRequest, Field: path, Message: err.Error()}
		}
		evs[i] = ev
	}
	return evs, nil
}

// dataPaths are "data[0]" … "data[999]", made once: every event carries
// its path for its errors, and making it per event was one allocation each.
var dataPaths = func() (p [event.MaxPerRequest]string) {
	for i := range p {
		p[i] = "data[" + strconv.Itoa(i) + "]"
	}
	return p
}()

// dataPath is the JSON path of a request's i-th event.
func dataPath(i int) string {
	if i < len(dataPaths) {
		return dataPaths[i]
	}
	return "data[" + strconv.Itoa(i) + "]"
}

func splitData(data json.RawMessage) ([]json.RawMessage, error) {
	t := bytes.TrimSpace(data)
	if len(t) == 0 || t[0] != '[' {
		return nil, &httpError{Kind: errBadRequest, Field: "data", Message: "must be a list of server event objects"}
	}
	// The body was validated as JSON when it was decoded; split without a
	// second full decode.
	raws, err := capi.DecodeEvents(t)
	if err != nil {
		return nil, &httpError{Kind: errBadRequest, Field: "data", Message: "must be a list of server event objects"}
	}
	if len(raws) == 0 {
		return nil, &httpError{Kind: errBadRequest, Field: "data", Message: "is empty"}
	}
	if len(raws) > event.MaxPerRequest {
		return nil, &httpError{Kind: errTooLarge, Field: "data", Message: fmt.Sprintf("has %d events; at most %d per request", len(raws), event.MaxPerRequest)}
	}
	return raws, nil
}

// ErrorBody is every JSON error answer: the problem and the field it names.
type ErrorBody struct {
	Error   string   `json:"error"`
	Field   string   `json:"field,omitempty"`
	Results []Result `json:"results,omitempty"`
}

// writeError writes err as the JSON error answer, its status from answers.
func writeError(w http.ResponseWriter, err error) {
	var ra *rejectedAll
	if errors.As(err, &ra) {
		msg := "no event was accepted: " + ra.first.Error
		if ra.first.Field != "" {
			msg = "no event was accepted: " + ra.first.Field + " " + ra.first.Error
		}
		writeJSON(w, answers[errRejectedAll].status, ErrorBody{Error: msg, Field: ra.first.Field, Results: ra.resp.Results})
		return
	}
	he := refusal(err)
	a := answers[he.Kind]
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	writeJSON(w, a.status, ErrorBody{Error: he.Error(), Field: he.Field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// writeResponse is writeJSON for a Response, written by hand: encoding/json
// cost as much per event as decoding it. TestAppendResponse checks the two
// write the same bytes.
func writeResponse(w http.ResponseWriter, status int, resp *Response) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(appendResponse(make([]byte, 0, 64+len(resp.Results)*64), resp))
}

// appendResponse appends resp as json.Encoder writes it with HTML escaping
// off, the newline included.
func appendResponse(b []byte, resp *Response) []byte {
	b = append(b, `{"events_received":`...)
	b = strconv.AppendInt(b, int64(resp.EventsReceived), 10)
	b = append(b, `,"results":`...)
	if resp.Results == nil {
		return append(b, "null}\n"...)
	}
	b = append(b, '[')
	for i, r := range resp.Results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"event_id":`...)
		b = event.AppendString(b, r.EventID)
		b = append(b, `,"status":`...)
		b = event.AppendString(b, string(r.Status))
		if r.Error != "" {
			b = append(b, `,"error":`...)
			b = event.AppendString(b, r.Error)
		}
		if r.Field != "" {
			b = append(b, `,"field":`...)
			b = event.AppendString(b, r.Field)
		}
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}
