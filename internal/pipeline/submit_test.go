package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// openStore opens a real SQLite store in a temporary directory with one
// site of consent mode consent.
func openStore(t *testing.T, consent string) (*sqlite.DB, *store.Site) {
	t.Helper()
	db := storetest.OpenSQLite(t)
	site := &store.Site{Key: "shop", Name: "Shop", APIKeyHash: "h", DefaultRegion: "US", Consent: consent}
	if err := db.CreateSite(t.Context(), site); err != nil {
		t.Fatal(err)
	}
	return db, site
}

// input is a server event of site: valid, or with an event_id Meta
// refuses when id is "bad".
func input(site *store.Site, i int, id string) pipeline.Input {
	if id == "bad" {
		id = strings.Repeat("x", 201)
	}
	return pipeline.Input{Site: site, Source: pipeline.SourceServer, Path: fmt.Sprintf("data[%d]", i), Event: &event.Event{
		EventName: "Purchase", EventTime: event.Time(time.Now().Unix()), EventID: id, ActionSource: "website",
		EventSourceURL: "https://shop.example.com/checkout",
		CustomData:     []byte(`{"value":10,"currency":"USD"}`),
		UserData:       event.UserData{Em: event.List{"a@example.com"}, ClientUserAgent: "Mozilla/5.0"}}}
}

func inputs(site *store.Site, ids ...string) []pipeline.Input {
	ins := make([]pipeline.Input, len(ids))
	for i, id := range ids {
		ins[i] = input(site, i, id)
	}
	return ins
}

func statuses(rs pipeline.Results) []pipeline.Status {
	out := make([]pipeline.Status, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}

// items counts the site's outbox rows in state.
func items(t *testing.T, db *sqlite.DB, site, state string) []store.Item {
	t.Helper()
	its, err := db.Items(t.Context(), site, state, 100)
	if err != nil {
		t.Fatal(err)
	}
	return its
}

// TestSubmitSummarizes checks what Submit answers for each event, and its
// counts: accepted, duplicate of an event stored before, rejected with
// the field at fault; and, AllOrNothing, the valid events withheld and
// nothing stored.
func TestSubmitSummarizes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		ids    []string
		opts   []pipeline.Option
		want   []pipeline.Status
		sum    pipeline.Summary
		stored int // new rows
	}{
		{name: "accepted, duplicate and rejected", ids: []string{"a", "bad", "before", "b"},
			want:   []pipeline.Status{pipeline.Accepted, pipeline.Rejected, pipeline.Duplicate, pipeline.Accepted},
			sum:    pipeline.Summary{Accepted: 2, Duplicates: 1, Rejected: 1, FirstRejected: 1},
			stored: 2},
		{name: "all rejected", ids: []string{"bad", "bad"},
			want: []pipeline.Status{pipeline.Rejected, pipeline.Rejected},
			sum:  pipeline.Summary{Rejected: 2, FirstRejected: 0}},
		{name: "all or nothing, one rejected", ids: []string{"a", "b", "bad"}, opts: []pipeline.Option{pipeline.AllOrNothing(true)},
			want: []pipeline.Status{pipeline.Withheld, pipeline.Withheld, pipeline.Rejected},
			sum:  pipeline.Summary{Withheld: 2, Rejected: 1, FirstRejected: 2}},
		{name: "all or nothing, none rejected", ids: []string{"a", "before"}, opts: []pipeline.Option{pipeline.AllOrNothing(true)},
			want:   []pipeline.Status{pipeline.Accepted, pipeline.Duplicate},
			sum:    pipeline.Summary{Accepted: 1, Duplicates: 1, FirstRejected: -1},
			stored: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, site := openStore(t, "")
			p := pipeline.New(db)
			if _, err := p.Submit(t.Context(), inputs(site, "before")); err != nil {
				t.Fatal(err)
			}
			res, err := p.Submit(t.Context(), inputs(site, tc.ids...), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := statuses(res); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("statuses %v, want %v", got, tc.want)
			}
			if got := res.Summary(); got != tc.sum {
				t.Errorf("Summary() = %+v, want %+v", got, tc.sum)
			}
			for i, r := range res {
				var fe *event.FieldError
				switch {
				case r.Status != pipeline.Rejected && r.Err != nil:
					t.Errorf("event %d is %s with an error: %v", i, r.Status, r.Err)
				case r.Status == pipeline.Rejected && (!errors.As(r.Err, &fe) || fe.Field != fmt.Sprintf("data[%d].event_id", i)):
					t.Errorf("event %d rejected for %v, want a FieldError naming data[%d].event_id", i, r.Err, i)
				}
			}
			if got := len(items(t, db, site.Key, "")); got != 1+tc.stored {
				t.Errorf("%d rows stored, want %d", got, 1+tc.stored)
			}
		})
	}
}

// TestSubmitHoldsUntilConsent checks consent mode "required": a browser
// event before the visitor's answer is accepted but held, one after a
// denial dropped; releasing through the Releaser makes the held events of
// a visitor who grants deliverable (filled in), and deletes those of one
// who denies.
func TestSubmitHoldsUntilConsent(t *testing.T) {
	t.Parallel()
	db, site := openStore(t, store.ConsentRequired)
	p := pipeline.New(db)
	browser := func(i int, id, visitor, consent string) pipeline.Input {
		in := input(site, i, id)
		in.Source, in.VisitorID, in.Consent = pipeline.SourceBrowser, visitor, consent
		return in
	}
	res, err := p.Submit(t.Context(), []pipeline.Input{
		browser(0, "a", "v-grants", pipeline.ConsentUnknown),
		browser(1, "b", "v-denies", pipeline.ConsentUnknown),
		browser(2, "c", "v-denied", pipeline.ConsentDenied),
		browser(3, "d", "v-granted", pipeline.ConsentGranted),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := pipeline.Summary{Accepted: 3, Dropped: 1, FirstRejected: -1}
	if got := res.Summary(); got != want {
		t.Fatalf("Summary() = %+v (%v), want %+v", got, statuses(res), want)
	}
	if held, pending := len(items(t, db, site.Key, store.StateHeld)), len(items(t, db, site.Key, store.StatePending)); held != 2 || pending != 1 {
		t.Fatalf("%d held and %d pending, want 2 and 1", held, pending)
	}

	var rel pipeline.Releaser = p
	fill := func(payload []byte) []byte {
		return bytes.Replace(payload, []byte(`"Purchase"`), []byte(`"Purchase","filled":1`), 1)
	}
	if n, err := rel.ReleaseHeld(t.Context(), site.Key, "v-grants", true, fill); err != nil || n != 1 {
		t.Fatalf("grant released %d (%v), want 1", n, err)
	}
	if n, err := rel.ReleaseHeld(t.Context(), site.Key, "v-denies", false, nil); err != nil || n != 1 {
		t.Fatalf("denial released %d (%v), want 1", n, err)
	}
	if held := items(t, db, site.Key, store.StateHeld); len(held) != 0 {
		t.Errorf("%d events still held", len(held))
	}
	pending := items(t, db, site.Key, store.StatePending)
	ids := map[string]bool{}
	for _, it := range pending {
		ids[it.EventID] = true
		if it.EventID == "a" && !bytes.Contains(it.Payload, []byte(`"filled":1`)) {
			t.Errorf("released payload %s was not filled in", it.Payload)
		}
	}
	if len(pending) != 2 || !ids["a"] || !ids["d"] {
		t.Errorf("pending %v, want a (released) and d (granted at once)", ids)
	}
}

// TestSubmitGate checks that Submit waits for a slot of the gate and stores
// nothing when the wait ends, and that InSlot prepares in the caller's
// slot and gives it back, once.
func TestSubmitGate(t *testing.T) {
	t.Parallel()
	db, site := openStore(t, "")
	p := pipeline.New(db)
	p.Gate = pipeline.NewGate(1)
	ended, cancel := context.WithCancel(t.Context())
	cancel()

	slot, err := p.Enter(t.Context(), site.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Submit(ended, inputs(site, "a")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit with the gate full and its context ended = %v, want context.Canceled", err)
	}
	if n := len(items(t, db, site.Key, "")); n != 0 {
		t.Fatalf("%d rows stored by a Submit that never got into the gate", n)
	}

	res, err := p.Submit(t.Context(), inputs(site, "a"), pipeline.InSlot(slot))
	if err != nil || res.Summary().Accepted != 1 {
		t.Fatalf("Submit in the caller's slot = %v (%v), want accepted", statuses(res), err)
	}
	slot.Leave() // as a deferred Leave would: the slot is already given back
	// A free slot is taken without waiting, so an ended context only
	// fails the second Enter: exactly one slot is free.
	again, err := p.Enter(ended, site.Key)
	if err != nil {
		t.Fatalf("the slot Submit was given is still held: %v", err)
	}
	if _, err := p.Enter(ended, site.Key); !errors.Is(err, context.Canceled) {
		t.Fatalf("a second slot was free (%v): Leave after Submit gave one back twice", err)
	}
	again.Leave()
}

// TestEnterHoldsAWorkPlace checks that Enter takes a place of p.Work and
// keeps it while the gate's slot is left for the commit, until Submit
// returns; that a Leave without Submit (a request refused while decoding)
// gives both back, once; and that Submit's own entry takes no place.
func TestEnterHoldsAWorkPlace(t *testing.T) {
	t.Parallel()
	db, site := openStore(t, "")
	p := pipeline.New(db)
	p.Gate = pipeline.NewGate(2)
	p.Work = pipeline.NewGate(1)
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	// A free place is taken without waiting, so an ended context fails
	// Enter only when no place is free.
	full := func(what string) {
		t.Helper()
		if s, err := p.Enter(ended, site.Key); !errors.Is(err, context.Canceled) {
			s.Leave()
			t.Fatalf("%s: Enter got a place (%v), want none free", what, err)
		}
	}

	slot, err := p.Enter(t.Context(), site.Key)
	if err != nil {
		t.Fatal(err)
	}
	full("one request entered")
	if res, err := p.Submit(t.Context(), inputs(site, "browser")); err != nil || res.Summary().Accepted != 1 {
		t.Fatalf("Submit without a slot while Work is full = %v (%v), want accepted", statuses(res), err)
	}
	slot.Leave()
	slot.Leave()
	again, err := p.Enter(ended, site.Key)
	if err != nil {
		t.Fatalf("Leave did not give the place back: %v", err)
	}
	full("Leave gave the place back twice")

	commits := 0
	p.Writes = writeCounter(func() {
		commits++
		full("during the commit") // the gate's slot is left; the place is not
	})
	if res, err := p.Submit(t.Context(), inputs(site, "server"), pipeline.InSlot(again)); err != nil || res.Summary().Accepted != 1 {
		t.Fatalf("Submit in the slot = %v (%v), want accepted", statuses(res), err)
	}
	if commits != 1 {
		t.Fatalf("%d commits observed, want 1", commits)
	}
	again.Leave() // as a deferred Leave would: already given back
	last, err := p.Enter(ended, site.Key)
	if err != nil {
		t.Fatalf("Submit kept its place: %v", err)
	}
	full("Submit gave the place back twice")
	last.Leave()
}

// writeCounter is a WriteObserver calling itself for each stored commit.
type writeCounter func()

func (f writeCounter) Refused(error) {}
func (f writeCounter) Stored()       { f() }

// count is a Counter.
type count struct{ n atomic.Int64 }

func (c *count) Inc() { c.n.Add(1) }

// TestSubmitCountsScrubbedURLs: Submit stores events without the personal
// data of their URLs and counts each event that had some, also those that
// repeat the last event's URL.
func TestSubmitCountsScrubbedURLs(t *testing.T) {
	t.Parallel()
	db, site := openStore(t, "")
	p := pipeline.New(db)
	var c count
	p.Scrubbed = &c
	ins := inputs(site, "clean", "form-1", "form-2", "ref")
	ins[1].Event.EventSourceURL = "https://shop.example.com/thanks?email=a%40example.com&plan=pro"
	ins[2].Event.EventSourceURL = ins[1].Event.EventSourceURL
	ins[3].Event.ReferrerURL = "https://shop.example.com/offer?password=hunter2"
	res, err := p.Submit(t.Context(), ins)
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Summary(); s.Accepted != 4 {
		t.Fatalf("summary %+v", s)
	}
	if n := c.n.Load(); n != 3 {
		t.Errorf("counted %d events, want 3", n)
	}
	kept := 0
	for _, it := range items(t, db, site.Key, "") {
		if bytes.Contains(it.Payload, []byte("hunter2")) || bytes.Contains(it.Payload, []byte("email=")) {
			t.Errorf("item %s stored %s", it.EventID, it.Payload)
		}
		if bytes.Contains(it.Payload, []byte(`"event_source_url":"https://shop.example.com/thanks?plan=pro"`)) {
			kept++
		}
	}
	if kept != 2 {
		t.Errorf("%d items kept the page's other parameter, want 2", kept)
	}
}

// TestSubmitLimitsDataUseOnLDUSites: on a site in LDU mode every event
// goes with ["LDU"] (Meta geolocating, unless the event says where),
// also one that sent [] (Meta's "not limited"); a site in another mode
// sends what the event sent.
func TestSubmitLimitsDataUseOnLDUSites(t *testing.T) {
	t.Parallel()
	one, ca := 1, 1000
	for _, c := range []struct {
		consent string
		dpo     []string
		country *int
		want    string
	}{
		{store.ConsentLDU, nil, nil, `"data_processing_options":["LDU"],"data_processing_options_country":0,"data_processing_options_state":0`},
		{store.ConsentLDU, []string{}, nil, `"data_processing_options":["LDU"],"data_processing_options_country":0,"data_processing_options_state":0`},
		{store.ConsentLDU, []string{"LDU"}, &one, `"data_processing_options":["LDU"],"data_processing_options_country":1,"data_processing_options_state":1000`},
		{store.ConsentNone, nil, nil, ``},
		{store.ConsentNone, []string{}, nil, ``}, // omitted and [] are one to Meta
	} {
		db, site := openStore(t, c.consent)
		in := input(site, 0, "e")
		in.Event.DataProcessingOptions, in.Event.DPOCountry = c.dpo, c.country
		if c.country != nil {
			in.Event.DPOState = &ca
		}
		if _, err := pipeline.New(db).Submit(t.Context(), []pipeline.Input{in}); err != nil {
			t.Fatal(err)
		}
		its := items(t, db, site.Key, "")
		if len(its) != 1 {
			t.Fatalf("%d items", len(its))
		}
		p := string(its[0].Payload)
		if c.want == "" && strings.Contains(p, "data_processing") || !strings.Contains(p, c.want) {
			t.Errorf("%s site, options %v: stored %s, want %s", c.consent, c.dpo, p, c.want)
		}
	}
}
