// Package pipeline owns submission: Submit is the one way events enter the
// outbox, whichever door they came through (the tag, the server API, an
// import, a partial lead). Inside its bounded gate it validates each event
// against Meta's rules, normalizes and hashes user_data, assigns the
// event_id and applies the site's consent mode; then the store drops
// repeats and commits durably, and Submit answers what became of each
// event (Results, Summary). Front ends only turn that answer into theirs;
// the events a site held for consent are released through Releaser.
package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/metarules"
	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/store"
)

// Sources of events.
const (
	SourceServer  = "server"
	SourceBrowser = "browser"
	SourceImport  = "import"
	SourceLead    = "lead"
)

// Consent states reported by the tag.
const (
	ConsentUnknown = ""
	ConsentGranted = "granted"
	ConsentDenied  = "denied"
)

// Status is what became of one Input.
type Status string

// Statuses of a Result.
const (
	Accepted  = Status(store.Accepted)
	Duplicate = Status(store.Duplicate)
	Rejected  = Status("rejected")
	Dropped   = Status("dropped") // consent denied: deliberately not stored
	// Withheld: valid, but not stored because another event of the same
	// AllOrNothing submission was rejected.
	Withheld = Status("withheld")
)

// Input is one event on its way in.
type Input struct {
	Site      *store.Site
	Event     *event.Event // user_data raw or pre-hashed; modified in place
	Path      string       // JSON path prefix for errors, e.g. "data[3]"
	Source    string
	VisitorID string
	Consent   string // browser consent state; "" for server events
	Region    string // region hint (browser locale) used after the site default
	// TestEventCode is the request's own test_event_code, if any.
	TestEventCode string
	// Enriched names the user_data keys the Enricher added (names only,
	// never values), for the live-event page.
	Enriched []string
	// Params are the request's other top-level parameters, encoded
	// (capi.RequestParams), forwarded with the event.
	Params string
}

// Result is the outcome of one Input.
type Result struct {
	EventID string
	Status  Status
	Err     error // why it was rejected (a *event.FieldError), nil otherwise
	ID      int64 // outbox id when accepted
}

// Enricher adds what is known about a person to an event before hashing
// (identity stitching); it must never overwrite what the event carries.
// own is the event's own user_data hashed as it is sent unless Enrich adds
// to it (read-only), so that the enricher need not hash it again.
type Enricher interface {
	Enrich(ctx context.Context, in *Input, own *normalize.UserData) error
}

// Observer learns from accepted events (identity stitching, live views).
// Learn runs on a prepared input before its commit and returns what to do
// once the event is accepted (nil: nothing), so that a request need not
// keep its decoded events while it waits for the disk: with 64 requests of
// 100 events waiting, those were about 20 MB of the heap, and under serve's
// soft memory limit every such megabyte is paid for in collections.
type Observer interface {
	Learn(in *Input) func(context.Context)
}

// Pipeline is safe for concurrent use.
type Pipeline struct {
	Store    store.Outbox
	Enricher Enricher // optional
	Observer Observer // optional
	Now      func() time.Time
	// DateOrder is the default day/month order for dates of birth.
	DateOrder normalize.DateOrder
	// Gate, if set, bounds the requests doing CPU-bound work (decoding,
	// Prepare) at once; collectors hold it from decoding to Prepare.
	Gate *Gate
	// Work, if set, bounds the callers of Enter (the server endpoints'
	// requests) from Enter until their Submit returns: each holds its
	// decoded events and their sealed payloads until its commit, so
	// without a bound the requests waiting for the one store writer, not
	// the writer's pace, decide the live heap. Requests waiting for a
	// place hold only their bodies, and the places go to the sites in
	// turn. Submit's own entry (browser events, imports) does not take one.
	Work *Gate
	// Writes, if set, is told whether each commit was stored or refused
	// (readiness, and one log line per interval instead of one per
	// refusal).
	Writes WriteObserver
	// Scrubbed, if set, counts the events whose event_source_url or
	// referrer_url Prepare took personal data out of (event.ScrubURL).
	Scrubbed Counter
	// CustomScrubbed, if set, counts the events whose custom_data Prepare
	// took personal data or a card number out of.
	CustomScrubbed Counter
}

// Counter counts (a prometheus.Counter is one).
type Counter interface{ Inc() }

// WriteObserver learns the outcome of every commit.
type WriteObserver interface {
	Refused(err error)
	Stored()
}

// New returns a pipeline writing to st.
func New(st store.Outbox) *Pipeline {
	return &Pipeline{Store: st, Now: time.Now}
}

// ErrStore wraps a failure to store: nothing of the request was stored.
var ErrStore = errors.New("store failed")

// Prepared is a request's events validated, enriched, hashed and
// serialized: the CPU-bound part of Submit, done.
type Prepared struct {
	p       *Pipeline
	ins     []Input
	results []Result
	news    []store.NewEvent
	idx     []int
}

// Prepare does the CPU-bound part of Submit, outside the gate. Submit is
// the way in; Prepare and Commit are its halves, apart for tests.
func (p *Pipeline) Prepare(ctx context.Context, ins []Input) *Prepared {
	return p.prepareAll(ctx, ins, nil)
}

// prepareAll is Prepare, calling yield (if set) between events.
func (p *Pipeline) prepareAll(ctx context.Context, ins []Input, yield func()) *Prepared {
	now := p.Now()
	b := &Prepared{p: p, ins: ins, results: make([]Result, len(ins)),
		news: make([]store.NewEvent, 0, len(ins)), idx: make([]int, 0, len(ins))}
	sh := new(shared)
	sh.sealer, _ = p.Store.(store.PayloadSealer)
	for i := range ins {
		if yield != nil && i > 0 {
			yield()
		}
		in := &ins[i]
		sh.left = len(ins) - i
		ne, res := p.prepare(ctx, in, now, sh)
		b.results[i] = res
		if res.Status == "" {
			b.news = append(b.news, ne)
			b.idx = append(b.idx, i)
		}
	}
	compactIDs(b.results)
	return b
}

// compactIDs copies the results' event ids into one string: an id cut from
// its request's body (event.DecodeBatch) would keep the whole body alive
// for as long as the caller holds the results, through the commit's wait.
func compactIDs(results []Result) {
	n := 0
	for i := range results {
		n += len(results[i].EventID)
	}
	var sb strings.Builder
	sb.Grow(n)
	for i := range results {
		sb.WriteString(results[i].EventID)
	}
	all, at := sb.String(), 0
	for i := range results {
		l := len(results[i].EventID)
		results[i].EventID = all[at : at+l]
		at += l
	}
}

// withhold is AllOrNothing's check after Prepare: when an event was
// rejected, the events Commit would have stored are marked Withheld and
// true is returned (nothing is to be committed).
func (b *Prepared) withhold() bool {
	if !slices.ContainsFunc(b.results, func(r Result) bool { return r.Status == Rejected }) {
		return false
	}
	for _, i := range b.idx {
		b.results[i].Status = Withheld
	}
	return true
}

// Commit stores the prepared events and waits until they are durable; the
// rest of Submit.
func (b *Prepared) Commit(ctx context.Context) ([]Result, error) {
	p, results := b.p, b.results
	news := b.news
	if len(news) == 0 {
		return results, nil
	}
	var later []func(context.Context) // by news index
	if p.Observer != nil {
		later = make([]func(context.Context), len(news))
		for j, i := range b.idx {
			later[j] = p.Observer.Learn(&b.ins[i])
		}
	}
	// The store keeps sealed copies and the observer what it learnt: let
	// the decoded events (and any plaintext payloads, for a store that
	// does not seal them in Prepare) go while the commit is awaited.
	b.ins, b.news = nil, nil
	out, err := p.Store.Enqueue(ctx, news)
	if p.Writes != nil {
		if err != nil {
			p.Writes.Refused(err)
		} else {
			p.Writes.Stored()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStore, err)
	}
	for j, r := range out {
		i := b.idx[j]
		results[i].Status = Status(r.Status)
		results[i].ID = r.ID
		if r.Status == store.Accepted && later != nil && later[j] != nil {
			later[j](ctx)
		}
	}
	return results, nil
}

// prepare validates, enriches, hashes and serializes one event. A Result
// with a Status is final (rejected or dropped); otherwise the NewEvent goes
// to the store.
// shared is what the events of one Prepare share.
type shared struct {
	// memo: a value repeated from the event before (the same city,
	// country …) is not hashed again.
	memo normalize.Memo
	// seen: an event_source_url or custom_data found valid in the event
	// before is not checked again.
	seen event.Seen
	// sealer, when the store is one, seals each payload as soon as it is
	// encoded into scratch, which the next event's payload reuses.
	sealer  store.PayloadSealer
	scratch []byte
	// Else out holds the payloads, one after the other: a block per few
	// dozen events instead of an allocation each (the store seals a copy
	// of each payload and lets the plaintext go, so they all live as
	// long).
	out []byte
	// left is how many events of the Prepare are left, this one included:
	// a block is never larger than they need, so the tag's one-event
	// requests do not each allocate a whole block.
	left int
}

// payload encodes ev and, with a sealer, seals it; sealed says which.
func (sh *shared) payload(ev *event.Event) (payload []byte, sealed bool) {
	if sh.sealer == nil {
		return sh.marshal(ev), false
	}
	if need := encodedSize(ev); cap(sh.scratch) < need {
		sh.scratch = make([]byte, 0, max(need, 2<<10))
	}
	sh.scratch = ev.AppendJSON(sh.scratch[:0])
	return sh.sealer.SealPayload(sh.scratch), true
}

// payloadBlock is the largest block of payloads: about 40 of the load's
// events.
const payloadBlock = 64 << 10

// marshal is Marshal into sh.out.
func (sh *shared) marshal(ev *event.Event) []byte {
	if need := encodedSize(ev); cap(sh.out)-len(sh.out) < need {
		sh.out = make([]byte, 0, max(need, min(payloadBlock, need*sh.left)))
	}
	start := len(sh.out)
	sh.out = ev.AppendJSON(sh.out)
	return sh.out[start:len(sh.out):len(sh.out)]
}

func (p *Pipeline) prepare(ctx context.Context, in *Input, now time.Time, sh *shared) (store.NewEvent, Result) {
	ev := in.Event
	if ev.EventID = strings.TrimSpace(ev.EventID); ev.EventID == "" {
		ev.EventID = NewEventID()
	}
	res := Result{EventID: ev.EventID}
	if len(ev.EventID) > metarules.MaxEventIDLen {
		res.Status, res.Err = Rejected, &event.FieldError{Field: event.JoinPath(in.Path, "event_id"),
			Message: "is longer than " + strconv.Itoa(metarules.MaxEventIDLen) + " characters"}
		return store.NewEvent{}, res
	}
	src, ref := ev.EventSourceURL, ev.ReferrerURL
	if err := ev.PrepareSeen(now, in.Path, &sh.seen); err != nil {
		res.Status, res.Err = Rejected, err
		return store.NewEvent{}, res
	}
	if p.Scrubbed != nil && (ev.EventSourceURL != src || ev.ReferrerURL != ref) {
		p.Scrubbed.Inc()
	}
	if p.CustomScrubbed != nil && ev.CustomDataScrubbed {
		p.CustomScrubbed.Inc()
	}
	site := in.Site
	held := false
	if site.Consent == store.ConsentRequired && in.Source == SourceBrowser {
		switch in.Consent {
		case ConsentDenied:
			res.Status = Dropped
			return store.NewEvent{}, res
		case ConsentGranted:
		default:
			held = true
		}
	}
	// A site in LDU mode limits every event: an event's own [] (which
	// Meta reads as "not limited") does not undo the operator's choice.
	if site.Consent == store.ConsentLDU && len(ev.DataProcessingOptions) == 0 {
		ev.DataProcessingOptions = []string{"LDU"}
		zero := 0
		if ev.DPOCountry == nil {
			ev.DPOCountry = &zero
		}
		if ev.DPOState == nil {
			ev.DPOState = &zero
		}
	}
	region := site.DefaultRegion
	if region == "" {
		region = in.Region
	}
	opts := normalize.Options{Region: region, DateOrder: p.DateOrder, Now: now, Memo: &sh.memo}
	raw := ev.UserData.Hashable()
	hashed := normalize.HashUserData(&raw, opts)
	if p.Enricher != nil {
		if err := p.Enricher.Enrich(ctx, in, &hashed); err != nil {
			// Enrichment is best effort: an event is never lost for it.
			_ = err
		}
		hashEnriched(&hashed, &raw, ev.UserData.Hashable(), opts)
	}
	ev.UserData.SetHashable(hashed)
	ev.UserData.HashExtras()
	if err := ev.CheckMatch(in.Path); err != nil {
		res.Status, res.Err = Rejected, err
		return store.NewEvent{}, res
	}
	payload, sealed := sh.payload(ev)
	return store.NewEvent{
		SiteKey: site.Key, EventName: ev.EventName, EventID: ev.EventID,
		EventTime: time.Unix(int64(ev.EventTime), 0), Payload: payload, Sealed: sealed,
		VisitorID: in.VisitorID, Held: held, Source: in.Source, TestEventCode: in.TestEventCode, Enriched: in.Enriched,
		Params: in.Params,
	}, res
}

// hashEnriched makes hashed, the hashes of raw, those of enriched, the
// user_data after enrichment: the same as HashUserData(&enriched, o), but
// hashing only the keys enrichment filled.
func hashEnriched(hashed, raw *normalize.UserData, enriched normalize.UserData, o normalize.Options) {
	var filled normalize.UserData
	var changed [16]bool // by index in normalize.Fields
	some := false
	for i, f := range normalize.Fields {
		if after := enriched.Get(f); !slices.Equal(raw.Get(f), after) {
			filled.Set(f, after)
			changed[i], some = true, true
		}
	}
	if !some {
		return
	}
	if changed[slices.Index(normalize.Fields, normalize.Country)] &&
		normalize.Region(enriched.Country, o.Region) != normalize.Region(raw.Country, o.Region) {
		// A new region changes the event's own hashes too.
		*hashed = normalize.HashUserData(&enriched, o)
		return
	}
	// Each key's hashes depend only on its values and the region, which
	// the first valid country gives: hash the filled keys beside the
	// event's countries, and take the filled keys.
	filled.Country = enriched.Country
	h := normalize.HashUserData(&filled, o)
	for i, f := range normalize.Fields {
		if changed[i] {
			hashed.Set(f, h.Get(f))
		}
	}
}

// Marshal encodes an event as Meta receives it (no HTML escaping).
func Marshal(ev *event.Event) ([]byte, error) {
	return ev.AppendJSON(make([]byte, 0, encodedSize(ev))), nil
}

// encodedSize is what AppendJSON likely needs for ev: the values and a
// generous allowance for the keys and punctuation (growing the buffer
// copies it; a little slack costs nothing).
func encodedSize(ev *event.Event) int {
	n := 768 + len(ev.EventName) + len(ev.EventID) + len(ev.ActionSource) + len(ev.EventSourceURL) +
		len(ev.ReferrerURL) + len(ev.CustomData) + len(ev.CustomerSegmentation) + len(ev.OriginalEventData) +
		len(ev.AttributionData) + len(ev.AppData) + len(ev.MessagingChannel) +
		len(ev.AdvertiserTrackingEnabled) + len(ev.AdvancedMeasurementTable)
	return n + ev.UserData.ValueBytes()
}

// NewEventID returns a random 128-bit id as 32 hex characters.
func NewEventID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}
