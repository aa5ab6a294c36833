package collect

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/pipeline"
)

// sorted is a request's tag events by what becomes of them.
type sorted struct {
	ins      []pipeline.Input // the events, for the pipeline
	captures []Capture        // form captures
	submits  []Capture        // forms submitted, passed after their events are stored
	consents []browserEvent   // consent answers
}

// sortEvents builds the request's events and captures into s, as far as
// the visitor's consent allows, and keeps its consent answers.
func (b *Browser) sortEvents(s *sorted, v *visit, body *browserBody) error {
	s.ins = make([]pipeline.Input, 0, len(body.Events))
	for i := range body.Events {
		e := &body.Events[i]
		path := eventPath(i)
		switch e.Type {
		case "capture":
			if n := dropCards(e.Fields); n > 0 {
				b.countCards(n) // a payment form: none of it is kept
				continue
			}
			if v.allowed && v.consent != pipeline.ConsentDenied {
				raw := b.eventURL(e, body)
				page := event.ScrubURL(raw)
				b.countScrubbed(page != raw)
				s.captures = append(s.captures, v.capture(e.Form, e.Fields, false, page))
			}
		case "consent":
			s.consents = append(s.consents, *e)
		default:
			if v.consent == pipeline.ConsentDenied {
				continue // the visitor said no: nothing is stored
			}
			b.countCards(dropCards(e.User))
			raw := b.eventURL(e, body)
			ev, err := v.event(e, raw, path) // Prepare scrubs the URLs
			if err != nil {
				return err
			}
			b.countScrubbed(ev.EventSourceURL != raw || ev.ReferrerURL != "" && ev.ReferrerURL != e.Ref)
			s.ins = append(s.ins, pipeline.Input{Site: v.site, Event: ev, Path: path, Source: pipeline.SourceBrowser,
				VisitorID: v.vid, Consent: v.consent, Region: v.region})
			if e.Submit && v.allowed {
				s.submits = append(s.submits, v.capture(e.Form, e.User, true, ev.EventSourceURL))
			}
		}
	}
	return nil
}

// eventPath is "events[i]", the path of event i in error messages and
// results; the paths of the events a request may carry are built once.
func eventPath(i int) string {
	if i < len(eventPaths) {
		return eventPaths[i]
	}
	return "events[" + strconv.Itoa(i) + "]"
}

var eventPaths = func() (p [maxBrowserEvents]string) {
	for i := range p {
		p[i] = "events[" + strconv.Itoa(i) + "]"
	}
	return p
}()

// eventURL is the page an event happened on, its own url or the body's,
// as sent: it may carry personal data (a form sent with GET puts its
// fields, a password among them, in the next page's query), which
// event.ScrubURL takes out before it is kept.
func (b *Browser) eventURL(e *browserEvent, body *browserBody) string {
	for _, u := range []string{e.URL, body.URL} {
		if u != "" {
			return u
		}
	}
	return ""
}

// countScrubbed counts an event or capture whose URLs lost personal data.
func (b *Browser) countScrubbed(scrubbed bool) {
	if scrubbed && b.Metrics != nil {
		b.Metrics.URLsScrubbed.Inc()
	}
}

// event builds the canonical event for one tag event.
func (v *visit) event(e *browserEvent, pageURL, path string) (*event.Event, error) {
	if !absoluteHTTP(pageURL) {
		return nil, &httpError{Kind: errBadRequest, Field: path + ".url", Message: "must be the page's absolute http(s) URL"}
	}
	a := new(eventAlloc)
	a.ev = event.Event{
		EventName:      strings.TrimSpace(e.Name),
		EventTime:      event.Time(v.now.Unix()), // the browser's clock may be off (spec §10 pitfall 12)
		EventID:        e.ID,
		ActionSource:   "website",
		EventSourceURL: pageURL,
	}
	ev := &a.ev
	if absoluteHTTP(e.Ref) {
		ev.ReferrerURL = e.Ref
	}
	if d := bytes.TrimSpace(e.Data); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		ev.CustomData = append(json.RawMessage(nil), d...)
	}
	u := &ev.UserData
	for k, val := range e.User {
		if val = strings.TrimSpace(val); val == "" {
			continue
		}
		if l := u.List(userKeys[k]); l != nil {
			*l = append(*l, val)
		}
	}
	if v.vid != "" {
		if len(u.ExternalID) == 0 {
			a.externalID[0] = v.vid
			u.ExternalID = a.externalID[:1:1]
		} else {
			u.ExternalID = append(u.ExternalID, v.vid)
		}
	}
	if v.ip.IsValid() {
		u.ClientIPAddress = v.ip.String()
	}
	u.ClientUserAgent = v.ua
	u.Fbp, u.Fbc = v.fbp, v.fbc
	if err := ev.CheckLimits(path); err != nil {
		return nil, fieldHTTPError(err)
	}
	if err := ev.Prepare(v.now, path); err != nil {
		return nil, fieldHTTPError(err)
	}
	return ev, nil
}

// eventAlloc is an event with room for the visitor id as its external_id:
// one allocation, not two.
type eventAlloc struct {
	ev         event.Event
	externalID [1]string
}

func (v *visit) capture(form string, fields map[string]string, submitted bool, pageURL string) Capture {
	c := Capture{VisitorID: v.vid, FormID: form, Fields: map[string]string{}, Submitted: submitted, At: v.now,
		PageURL: pageURL, Fbp: v.fbp, Fbc: v.fbc, UA: v.ua, Consent: v.consent}
	if v.ip.IsValid() {
		c.IP = v.ip.String()
	}
	for k, val := range fields {
		// An empty value erases the key; it does not override a value
		// sent under an alias (phone and ph).
		if k = userKeys[k]; captureKeys[k] {
			if val = strings.TrimSpace(val); val != "" || c.Fields[k] == "" {
				c.Fields[k] = val
			}
		}
	}
	return c
}

// regionOf turns a BCP 47 language tag (navigator.language) into a lower-case
// ISO 3166 alpha-2 region hint: en-US → us, zh-Hant-TW → tw, de → "".
func regionOf(lang string) string {
	first := true // the language subtag is no region
	for lang != "" {
		i := strings.IndexAny(lang, "-_")
		if i < 0 {
			i = len(lang)
		}
		p := lang[:i]
		lang = lang[min(i+1, len(lang)):]
		if p == "" {
			continue
		}
		if !first && len(p) == 2 && isLetters(p) {
			return regionCodes[(p[0]|0x20)-'a'][(p[1]|0x20)-'a']
		}
		first = false
	}
	return ""
}

// regionCodes holds every two-letter lower-case region code, so regionOf
// does not allocate.
var regionCodes = func() (t [26][26]string) {
	for a := range t {
		for b := range t[a] {
			t[a][b] = string([]byte{byte('a' + a), byte('a' + b)})
		}
	}
	return t
}()

func isLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}
