package capi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// DefaultVersion is the Graph API version used when Client.Version is empty:
// a version we test against, supported until 2028-07-29 (§1.2).
const DefaultVersion = "v25.0"

// DefaultBaseURL is the Graph API host used when Client.BaseURL is empty.
const DefaultBaseURL = "https://graph.facebook.com"

// DefaultTimeout bounds one Graph API call when Client.Timeout is zero.
// D-TS suggests 1.5 s and says most answers take < 600 ms (§1.5); 10 s
// leaves room for 1,000-event batches on slow links.
const DefaultTimeout = 10 * time.Second

// DefaultUserAgent is sent when Client.UserAgent is empty.
const DefaultUserAgent = "capirelay"

// maxResponseBytes caps how much of a Graph answer we read; real answers are
// a few hundred bytes.
const maxResponseBytes = 1 << 20

// Client posts event batches to the Graph API. The zero value is ready to
// use. A Client is safe for concurrent use as long as its fields are not
// changed meanwhile.
type Client struct {
	// BaseURL is the Graph API root, without the version; it may carry a
	// path prefix. Default DefaultBaseURL.
	BaseURL string
	// Version is the Graph API version ("v25.0"). Default DefaultVersion.
	Version string
	// HTTP sends the requests. Default: a shared client whose transport
	// keeps up to 64 idle connections per host.
	HTTP *http.Client
	// Timeout bounds each request, on top of the caller's ctx.
	// Default DefaultTimeout.
	Timeout time.Duration
	// UserAgent is the User-Agent header. Default DefaultUserAgent.
	UserAgent string
}

// defaultHTTP is shared by Clients without HTTP, like http.DefaultClient,
// but keeps 64 idle connections per host (not 2) so concurrent batches to
// graph.facebook.com reuse connections. It holds no per-pixel state; a
// package-level value keeps Client free of locks, so it can be copied.
var defaultHTTP = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t}
}()

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

func (c *Client) endpoint(pixelID, suffix string) string {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	v := c.Version
	if v == "" {
		v = DefaultVersion
	}
	return strings.TrimRight(base, "/") + "/" + url.PathEscape(v) + "/" + url.PathEscape(pixelID) + suffix
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Client) setHeaders(h http.Header) {
	ua := c.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	h.Set("User-Agent", ua)
	h.Set("Accept", "application/json")
}

// Send posts req to POST {BaseURL}/{Version}/{pixelID}/events as one JSON
// body with the token inside it, never in the URL (§1.4). The events are
// copied verbatim into a pooled buffer, not re-marshaled.
//
// It returns the parsed Response on a 2xx answer carrying events_received.
// Otherwise it returns a *Error: with the Graph error object, Retry-After
// and usage-header hints when Meta answered, or with Err set to the network
// or context cause when it did not. A request Meta would refuse outright (no
// events, more than 1,000, an empty event, no pixel id) is not sent and
// fails with a code-100 *Error. Use Classify to decide what to do.
func (c *Client) Send(ctx context.Context, pixelID string, req *Request) (*Response, error) {
	switch {
	case pixelID == "":
		return nil, &Error{Code: CodeInvalidParameter, Subcode: SubcodeObjectMissing, Type: "capi", Message: "empty pixel id"}
	case req == nil || len(req.Data) == 0:
		return nil, localError("request has no events")
	case len(req.Data) > MaxEventsPerRequest:
		return nil, localError("request has %d events, max %d", len(req.Data), MaxEventsPerRequest)
	}
	body, err := encodeRequest(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()

	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(pixelID, "/events"), body)
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("capi: build request for pixel %s: %w", pixelID, err)
	}
	hr.ContentLength = int64(body.Len())
	hr.Header.Set("Content-Type", "application/json")
	c.setHeaders(hr.Header)

	resp, err := c.httpClient().Do(hr)
	if err != nil {
		return nil, &Error{Err: stripURL(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, &Error{Err: fmt.Errorf("read response: %w", err)}
	}
	var gr graphResponse
	jerr := json.Unmarshal(raw, &gr)
	if resp.StatusCode/100 == 2 && jerr == nil && gr.Error == nil && gr.EventsReceived != nil {
		return &Response{EventsReceived: *gr.EventsReceived, Messages: gr.Messages, FbtraceID: gr.FbtraceID}, nil
	}
	e := responseError(resp, &gr, jerr, req.AccessToken)
	if e.Status/100 == 2 && e.Message == "" {
		e.Message = "response has no events_received"
	}
	return nil, e
}

// CheckToken verifies that accessToken can read the pixel, with a cheap
// authenticated GET {BaseURL}/{Version}/{pixelID}?fields=id; the token goes
// in an Authorization: Bearer header. It returns nil on success and a *Error
// otherwise (an invalid token is code 190, which classifies as ClassAuth).
func (c *Client) CheckToken(ctx context.Context, pixelID, accessToken string) error {
	if pixelID == "" {
		return &Error{Code: CodeInvalidParameter, Subcode: SubcodeObjectMissing, Type: "capi", Message: "empty pixel id"}
	}
	if accessToken == "" {
		return &Error{Code: CodeAccessToken, Type: "capi", Message: "empty access token"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(pixelID, "?fields=id"), nil)
	if err != nil {
		return fmt.Errorf("capi: build token check for pixel %s: %w", pixelID, err)
	}
	hr.Header.Set("Authorization", "Bearer "+accessToken)
	c.setHeaders(hr.Header)
	resp, err := c.httpClient().Do(hr)
	if err != nil {
		return &Error{Err: stripURL(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return &Error{Err: fmt.Errorf("read response: %w", err)}
	}
	var gr graphResponse
	jerr := json.Unmarshal(raw, &gr)
	if resp.StatusCode/100 == 2 && jerr == nil && gr.Error == nil {
		return nil
	}
	return responseError(resp, &gr, jerr, accessToken)
}

type graphResponse struct {
	EventsReceived *int        `json:"events_received"`
	Messages       []string    `json:"messages"`
	FbtraceID      string      `json:"fbtrace_id"`
	Error          *graphError `json:"error"`
}

// graphError is the Graph error object (§7.1), read and written.
type graphError struct {
	Message     string `json:"message"`
	Type        string `json:"type"`
	Code        int    `json:"code"`
	Subcode     int    `json:"error_subcode"`
	UserTitle   string `json:"error_user_title"`
	UserMsg     string `json:"error_user_msg"`
	FbtraceID   string `json:"fbtrace_id"`
	IsTransient bool   `json:"is_transient"`
}

// responseError builds the *Error for an unsuccessful answer. Text that
// Meta echoes back is scrubbed of the token.
func responseError(resp *http.Response, gr *graphResponse, jerr error, token string) *Error {
	e := &Error{Status: resp.StatusCode, TraceID: gr.FbtraceID}
	if g := gr.Error; g != nil {
		e.Code, e.Subcode, e.Type = g.Code, g.Subcode, g.Type
		e.Message = redact(g.Message, token)
		e.UserTitle = redact(g.UserTitle, token)
		e.UserMsg = redact(g.UserMsg, token)
		e.Transient = g.IsTransient
		if g.FbtraceID != "" {
			e.TraceID = g.FbtraceID
		}
	} else if jerr != nil {
		e.Message = "response is not a Graph JSON object"
	}
	if e.TraceID == "" {
		e.TraceID = resp.Header.Get("X-Fb-Trace-Id")
	}
	e.RetryAfter = retryAfter(resp.Header, time.Now())
	return e
}

func redact(s, token string) string {
	if token == "" || len(token) < 8 || !strings.Contains(s, token) {
		return s
	}
	return strings.ReplaceAll(s, token, "[redacted]")
}

// stripURL drops the *url.Error wrapper, whose text repeats the method and
// URL; the cause (timeout, reset, DNS) is what matters and stays wrapped.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s graph api: %w", ue.Op, ue.Err)
	}
	return err
}

// retryAfter reads how long Meta asks us to back off: the Retry-After header
// (seconds or HTTP date) and estimated_time_to_regain_access (minutes) from
// X-Business-Use-Case-Usage (§7.4, D-GRL). The longest wins; 0 if none.
func retryAfter(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
			d = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(v); err == nil && t.After(now) {
			d = t.Sub(now)
		}
	}
	if v := h.Get("X-Business-Use-Case-Usage"); v != "" {
		var usage map[string][]struct {
			Minutes float64 `json:"estimated_time_to_regain_access"`
		}
		if json.Unmarshal([]byte(v), &usage) == nil {
			for _, list := range usage {
				for _, u := range list {
					if m := time.Duration(u.Minutes * float64(time.Minute)); m > d {
						d = m
					}
				}
			}
		}
	}
	return d
}

// freeBodies keeps request bodies for the next requests: a dispatcher
// has a few batches in flight, each body about a megabyte. Not a
// sync.Pool: serve runs under a soft memory limit whose frequent
// collections empty a pool, and at full load 4 in 10 bodies were new
// (440 bytes allocated per event delivered). Bodies above maxPooledBuf
// are dropped, so at most 8 MiB is kept.
var freeBodies = make(chan *[]byte, 4)

const maxPooledBuf = 2 << 20

func getBody() *[]byte {
	select {
	case bp := <-freeBodies:
		return bp
	default:
		return new([]byte)
	}
}

// pooledBody is a request body backed by a pooled buffer. The buffer goes
// back to the pool only when the transport closes the body: net/http may
// still be writing it after Do returns.
type pooledBody struct {
	bytes.Reader
	buf  *[]byte
	once sync.Once
}

func (b *pooledBody) Close() error {
	b.once.Do(func() {
		if cap(*b.buf) <= maxPooledBuf {
			*b.buf = (*b.buf)[:0]
			select {
			case freeBodies <- b.buf:
			default:
			}
		}
	})
	return nil
}

// encodeRequest appends {"data":[ev,ev,...],"access_token":...} into a
// pooled buffer. Events are copied as-is; an empty event is refused because
// it would make the whole body invalid JSON.
func encodeRequest(req *Request) (*pooledBody, error) {
	n := 160 + len(req.AccessToken) + len(req.TestEventCode) + len(req.PartnerAgent) + len(req.NamespaceID) +
		len(req.UploadID) + len(req.UploadTag) + len(req.UploadSource)
	for i, ev := range req.Data {
		if len(ev) == 0 {
			return nil, localError("event %d is empty", i)
		}
		n += len(ev) + 1
	}
	bp := getBody()
	b := *bp
	if cap(b) < n {
		b = make([]byte, 0, n)
	}
	b = append(b, `{"data":[`...)
	for i, ev := range req.Data {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, ev...)
	}
	b = append(b, ']')
	b = appendField(b, "access_token", req.AccessToken)
	b = appendField(b, "test_event_code", req.TestEventCode)
	b = appendField(b, "partner_agent", req.PartnerAgent)
	b = appendField(b, "namespace_id", req.NamespaceID)
	b = appendField(b, "upload_id", req.UploadID)
	b = appendField(b, "upload_tag", req.UploadTag)
	b = appendField(b, "upload_source", req.UploadSource)
	b = append(b, '}')
	*bp = b
	body := &pooledBody{buf: bp}
	body.Reset(b)
	return body, nil
}

func appendField(b []byte, key, val string) []byte {
	if val == "" {
		return b
	}
	b = append(b, ",\""...)
	b = append(b, key...)
	b = append(b, "\":"...)
	return appendJSONString(b, val)
}

// appendJSONString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c >= 0x20:
				b = append(b, c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
