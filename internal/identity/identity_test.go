package identity_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/identity"
	"github.com/capirelay/capirelay/internal/leads"
	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/postgres"
	"github.com/capirelay/capirelay/internal/store/sqlite"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

const (
	rawEmail = "Jane.Doe@Example.com"
	rawPhone = "+1 (650) 555-1212"
	fbp      = "fb.1.1700000000000.1234567890"
	ua       = "Mozilla/5.0 (X11; Linux x86_64) test"
)

// fbc is a click of an hour ago: inside the default click window.
var fbc = fmt.Sprintf("fb.1.%d.IwAR-click", time.Now().Add(-time.Hour).UnixMilli())

type bundle struct {
	dir  string
	db   *sqlite.DB  // nil on PostgreSQL
	st   store.Store // the store in use: db, or PostgreSQL's
	ids  *identity.Service
	pipe *pipeline.Pipeline
	site *store.Site
	reg  *prometheus.Registry
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{dir: t.TempDir()}
	box, err := secret.New(bytes.Repeat([]byte{3}, secret.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	if b.db, err = sqlite.Open(t.Context(), filepath.Join(b.dir, sqlite.FileName), box); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.db.Close() })
	b.start(t, b.db)
	return b
}

// setupPostgres is setup on a new PostgreSQL database (skipped without
// one, except in CI).
func setupPostgres(t *testing.T) *bundle {
	t.Helper()
	db, err := postgres.Open(t.Context(), storetest.PostgresDatabase(t), storetest.Box(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := &bundle{dir: t.TempDir()}
	b.start(t, db)
	return b
}

// start creates the site on st and runs identity and the pipeline over it.
func (b *bundle) start(t *testing.T, st store.Store) {
	t.Helper()
	b.st = st
	b.site = &store.Site{Key: "shop", Name: "Shop", APIKeyHash: "h", DefaultRegion: "US", PartialLeads: true}
	if err := st.CreateSite(t.Context(), b.site); err != nil {
		t.Fatal(err)
	}
	b.ids = identity.New(st, slog.New(slog.DiscardHandler))
	b.reg = prometheus.NewRegistry()
	b.ids.Register(b.reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.ids.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	b.pipe = pipeline.New(st)
	b.pipe.Enricher, b.pipe.Observer = b.ids, b.ids
}

func hash(t *testing.T, f normalize.Field, raw string) string {
	t.Helper()
	h, err := normalize.Hash(f, raw, normalize.Options{Region: "US"})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// submit sends one event through the pipeline and returns its stored
// user_data.
func (b *bundle) submit(t *testing.T, in pipeline.Input) event.UserData {
	t.Helper()
	in.Site = b.site
	if in.Event.EventTime == 0 {
		in.Event.EventTime = event.Time(time.Now().Unix())
	}
	res, err := b.pipe.Submit(t.Context(), []pipeline.Input{in})
	if err != nil {
		t.Fatal(err)
	}
	// Learning is asynchronous; wait for it as a later request would.
	if err := b.ids.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if res[0].Status != pipeline.Accepted {
		t.Fatalf("Submit = %s (%v), want accepted", res[0].Status, res[0].Err)
	}
	it, err := b.st.Item(t.Context(), res[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var ev event.Event
	if err := json.Unmarshal(it.Payload, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.UserData
}

// browserEvent is a page view of visitor v-1 who typed their email and
// phone, with a customer id.
func (b *bundle) browserEvent(t *testing.T) {
	b.submit(t, pipeline.Input{Source: pipeline.SourceBrowser, VisitorID: "v-1", Event: &event.Event{
		EventName: "Lead", ActionSource: "website", EventSourceURL: "https://shop.example/",
		UserData: event.UserData{Em: event.List{rawEmail}, Ph: event.List{rawPhone}, Fn: event.List{"Jane"},
			ExternalID: event.List{"cust-42"}, Fbp: fbp, Fbc: fbc, ClientIPAddress: "203.0.113.7", ClientUserAgent: ua},
	}})
}

func serverEvent(ud event.UserData) pipeline.Input {
	return pipeline.Input{Source: pipeline.SourceServer, Event: &event.Event{
		EventName: "Purchase", ActionSource: "system_generated", UserData: ud,
		CustomData: json.RawMessage(`{"currency":"USD","value":10}`),
	}}
}

func TestServerEventEnrichedByExternalID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	got := b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-42"}}))
	if got.Fbp != fbp || got.Fbc != fbc {
		t.Errorf("fbp/fbc = %q/%q, want the browser's", got.Fbp, got.Fbc)
	}
	if got.ClientIPAddress != "" || got.ClientUserAgent != "" {
		t.Errorf("ip/ua = %q/%q on a system_generated event, want none: a browser's address describes its visits only",
			got.ClientIPAddress, got.ClientUserAgent)
	}
	if !slices.Equal(got.Em, []string{hash(t, normalize.Email, rawEmail)}) ||
		!slices.Equal(got.Ph, []string{hash(t, normalize.Phone, rawPhone)}) ||
		!slices.Equal(got.Fn, []string{hash(t, normalize.FirstName, "Jane")}) {
		t.Errorf("em/ph/fn = %v/%v/%v, want the hashes learned before", got.Em, got.Ph, got.Fn)
	}
}

func TestWebsiteServerEventGetsBrowser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	// A website event carries its user agent (Meta requires it).
	in := serverEvent(event.UserData{ExternalID: event.List{"cust-42"}, ClientUserAgent: "Other/1.0"})
	in.Event.ActionSource, in.Event.EventSourceURL = "website", "https://shop.example/thanks"
	got := b.submit(t, in)
	if got.ClientIPAddress != "203.0.113.7" || got.ClientUserAgent != "Other/1.0" {
		t.Errorf("ip/ua = %q/%q, want the browser's address and the event's own agent", got.ClientIPAddress, got.ClientUserAgent)
	}
}

func TestServerEventEnrichedByEmail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	// A different spelling of the same address normalizes the same.
	got := b.submit(t, serverEvent(event.UserData{Em: event.List{"  jane.doe@example.COM "}}))
	if got.Fbp != fbp || got.Fbc != fbc {
		t.Errorf("fbp/fbc = %q/%q, want the browser's", got.Fbp, got.Fbc)
	}
	if !slices.Equal(got.Ph, []string{hash(t, normalize.Phone, rawPhone)}) {
		t.Errorf("ph = %v, want the learned hash", got.Ph)
	}
	if !slices.Equal(got.ExternalID, []string{hash(t, normalize.ExternalID, "cust-42")}) {
		t.Errorf("external_id = %v, want the learned hash", got.ExternalID)
	}
	if !slices.Equal(got.Em, []string{hash(t, normalize.Email, rawEmail)}) {
		t.Errorf("em = %v, want its own", got.Em)
	}
}

func TestServerEventEnrichedByVisitor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	in := serverEvent(event.UserData{ClientIPAddress: "198.51.100.1"})
	in.VisitorID = "v-1"
	got := b.submit(t, in)
	if got.Fbp != fbp || len(got.Em) != 1 || got.ClientIPAddress != "198.51.100.1" {
		t.Errorf("by visitor id: %+v; want enriched, own IP kept", got)
	}
}

// wantBare fails unless got carries nothing of Jane's browser event.
func wantBare(t *testing.T, got event.UserData) {
	t.Helper()
	if len(got.Em) > 0 || got.Fbp != "" || got.Fbc != "" || got.ClientIPAddress != "" || got.ClientUserAgent != "" {
		t.Errorf("user_data = %+v, want nothing added", got)
	}
}

// TestPhoneAloneNeverLinks is the first case: a website event with
// phone P, external_id, fbc, fbp, IP and UA, then a physical_store
// purchase carrying only phone P and a first name. Before, the store sale
// reached Meta with the web visitor's em, external_id, IP, UA, fbc, fbp.
func TestPhoneAloneNeverLinks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.submit(t, pipeline.Input{Source: pipeline.SourceServer, Event: &event.Event{
		EventName: "Lead", ActionSource: "website", EventSourceURL: "https://shop.example/",
		UserData: event.UserData{Em: event.List{rawEmail}, Ph: event.List{rawPhone}, ExternalID: event.List{"cust-42"},
			Fbp: fbp, Fbc: fbc, ClientIPAddress: "203.0.113.7", ClientUserAgent: ua},
	}})
	in := serverEvent(event.UserData{Ph: event.List{rawPhone}, Fn: event.List{"Lee"}})
	in.Event.ActionSource = "physical_store"
	got := b.submit(t, in)
	wantBare(t, got)
	if !slices.Equal(got.Fn, []string{hash(t, normalize.FirstName, "Lee")}) {
		t.Errorf("fn = %v, want only the event's own", got.Fn)
	}
	// The name learned nothing into the web visitor's record either.
	got = b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-42"}}))
	if len(got.Fn) != 0 {
		t.Errorf("fn = %v on the web visitor's next event, want none: Lee's name was merged into the record", got.Fn)
	}
}

// TestSharedPhoneNeverMixesPeople is the second case: two people
// share a phone; an event with only hashed em/ph/external_id of one of
// them arrived carrying both first names.
func TestSharedPhoneNeverMixesPeople(t *testing.T) {
	t.Parallel()
	b := setup(t)
	person := func(em, ext, fn string) event.UserData {
		return event.UserData{Em: event.List{em}, Ph: event.List{rawPhone}, ExternalID: event.List{ext}, Fn: event.List{fn}}
	}
	b.submit(t, serverEvent(person("ann@example.com", "cust-ann", "Ann")))
	b.submit(t, serverEvent(person("jane@example.com", "cust-jane", "Jane")))
	got := b.submit(t, serverEvent(event.UserData{Em: event.List{hash(t, normalize.Email, "ann@example.com")},
		Ph: event.List{hash(t, normalize.Phone, rawPhone)}, ExternalID: event.List{hash(t, normalize.ExternalID, "cust-ann")}}))
	if !slices.Equal(got.Fn, []string{hash(t, normalize.FirstName, "Ann")}) {
		t.Errorf("fn = %v, want Ann's alone (Jane's is %s)", got.Fn, hash(t, normalize.FirstName, "Jane"))
	}
	if !slices.Equal(got.Em, []string{hash(t, normalize.Email, "ann@example.com")}) {
		t.Errorf("em = %v, want Ann's alone", got.Em)
	}
}

// TestAmbiguousAddsNothing: an event whose strong keys point at two
// people gets nothing from either, and is counted.
func TestAmbiguousAddsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t) // Jane: cust-42, her email
	b.submit(t, serverEvent(event.UserData{Em: event.List{"bob@example.com"}, ExternalID: event.List{"cust-7"},
		Ln: event.List{"Bobson"}, Fbp: "fb.1.1700000000000.777"}))
	got := b.submit(t, serverEvent(event.UserData{Em: event.List{rawEmail}, ExternalID: event.List{"cust-7"}}))
	if len(got.Ln) != 0 || len(got.Fn) != 0 || len(got.Ph) != 0 || got.Fbp != "" {
		t.Errorf("user_data = %+v, want nothing added from either person", got)
	}
	wantAmbiguous(t, b.reg, 1)
}

// TestConflictingKeyAddsNothing: the record found by external_id holds
// another email than the event's: it is someone else's (or mixes people).
func TestConflictingKeyAddsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	got := b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-42"}, Em: event.List{"someone@else.example"}}))
	if len(got.Fn) != 0 || len(got.Ph) != 0 || got.Fbp != "" || got.Fbc != "" {
		t.Errorf("user_data = %+v, want nothing added", got)
	}
	wantAmbiguous(t, b.reg, 1)
	// Nor was the other email learned into Jane's record.
	got = b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-42"}}))
	if !slices.Equal(got.Em, []string{hash(t, normalize.Email, rawEmail)}) {
		t.Errorf("em = %v, want Jane's alone", got.Em)
	}
}

// TestOtherBrowserAddsNothing: a second browser naming Jane's email gets
// nothing of the first browser's.
func TestOtherBrowserAddsNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	got := b.submit(t, pipeline.Input{Source: pipeline.SourceBrowser, VisitorID: "v-2", Event: &event.Event{
		EventName: "PageView", ActionSource: "website", EventSourceURL: "https://shop.example/",
		UserData: event.UserData{Em: event.List{rawEmail}, ClientUserAgent: "Other/1.0"},
	}})
	if got.Fbp != "" || got.ClientIPAddress != "" || len(got.Ph) != 0 {
		t.Errorf("user_data = %+v, want nothing of browser v-1", got)
	}
}

// TestServerFirstThenBrowser: a customer known first from the shop's
// backend (a pseudo record by external_id) then from a browser naming the
// same external_id is one person, not an ambiguity.
func TestServerFirstThenBrowser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-42"}, Ln: event.List{"Doe"}}))
	b.browserEvent(t)
	got := b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-42"}}))
	if got.Fbp != fbp || !slices.Equal(got.Em, []string{hash(t, normalize.Email, rawEmail)}) {
		t.Errorf("user_data = %+v, want the browser's record", got)
	}
	wantAmbiguous(t, b.reg, 0)
}

func TestClickWindow(t *testing.T) {
	t.Parallel()
	old := fmt.Sprintf("fb.1.%d.IwAR-old", time.Now().Add(-8*24*time.Hour).UnixMilli())
	for _, tc := range []struct {
		window time.Duration
		want   string
	}{
		{0, ""},                    // default 7 days: an 8-day-old click is stale
		{30 * 24 * time.Hour, old}, // a site's wider window
	} {
		b := setup(t)
		b.site.ClickWindow = tc.window
		b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-1"}, Fbc: old, Fbp: fbp}))
		got := b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-1"}}))
		if got.Fbc != tc.want || got.Fbp != fbp {
			t.Errorf("window %v: fbc/fbp = %q/%q, want %q/%q", tc.window, got.Fbc, got.Fbp, tc.want, fbp)
		}
	}
}

func TestIdentityModes(t *testing.T) {
	t.Parallel()
	browserAgain := func(t *testing.T, b *bundle) event.UserData {
		return b.submit(t, pipeline.Input{Source: pipeline.SourceBrowser, VisitorID: "v-1", Event: &event.Event{
			EventName: "PageView", ActionSource: "website", EventSourceURL: "https://shop.example/",
			UserData: event.UserData{ClientUserAgent: ua, ClientIPAddress: "198.51.100.9"}}})
	}
	t.Run("off", func(t *testing.T) {
		b := setup(t)
		b.site.Identity = store.IdentityOff
		b.browserEvent(t)
		if _, err := b.db.Identity(t.Context(), "shop", "v-1"); err == nil {
			t.Error("identity learned with identity off")
		}
		b.site.Identity = store.IdentityFull // what off learned (nothing) shows
		wantBare(t, b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-42"}})))
		b.browserEvent(t)
		b.site.Identity = store.IdentityOff
		if got := browserAgain(t, b); got.Fbp != "" || len(got.Em) != 0 {
			t.Errorf("user_data = %+v with identity off, want nothing added", got)
		}
	})
	t.Run("visitor", func(t *testing.T) {
		b := setup(t)
		b.site.Identity = store.IdentityVisitor
		b.browserEvent(t)
		wantBare(t, b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-42"}})))
		if got := browserAgain(t, b); got.Fbp != fbp || len(got.Em) != 1 {
			t.Errorf("same browser: user_data = %+v, want enriched", got)
		}
	})
}

// ambiguous reads capirelay_identity_ambiguous_total from reg.
// wantAmbiguous checks capirelay_identity_ambiguous_total.
func wantAmbiguous(t *testing.T, reg *prometheus.Registry, want float64) {
	t.Helper()
	if n := ambiguous(t, reg); n != want {
		t.Errorf("capirelay_identity_ambiguous_total = %v, want %v", n, want)
	}
}

func ambiguous(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "capirelay_identity_ambiguous_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("capirelay_identity_ambiguous_total is not registered")
	return 0
}

func TestEnrichmentNeverOverwrites(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	own := event.UserData{Em: event.List{rawEmail}, Ph: event.List{"+44 20 7946 0958"}, Fbp: "fb.1.1700000000001.999",
		ClientUserAgent: "Other/1.0"}
	got := b.submit(t, serverEvent(own))
	if got.Fbp != own.Fbp || got.ClientUserAgent != own.ClientUserAgent {
		t.Errorf("fbp/ua = %q/%q, want the event's own", got.Fbp, got.ClientUserAgent)
	}
	if !slices.Equal(got.Ph, []string{hash(t, normalize.Phone, "+44 20 7946 0958")}) {
		t.Errorf("ph = %v, want only the event's own", got.Ph)
	}
	if got.Fbc != fbc {
		t.Errorf("fbc = %q, want the learned one (the event lacked it)", got.Fbc)
	}
}

func TestUnknownPersonNotEnriched(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	got := b.submit(t, serverEvent(event.UserData{Em: event.List{"someone@else.example"}}))
	if got.Fbp != "" || len(got.Ph) != 0 {
		t.Errorf("user_data = %+v, want nothing added for a stranger", got)
	}
}

func TestIdentityHoldsOnlyHashes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	id, err := b.db.Identity(t.Context(), "shop", "v-1")
	if err != nil {
		t.Fatal(err)
	}
	for k, hs := range id.Hashes {
		for _, h := range hs {
			if len(h) != 64 {
				t.Errorf("identity %s = %q, want a SHA-256 hash", k, h)
			}
		}
	}
	if id.Fbp != fbp || id.UA != ua {
		t.Errorf("identity device = %q/%q", id.Fbp, id.UA)
	}
	if err := b.db.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"jane.doe@example.com", "cust-42", fbp} {
		if filesContain(t, b.dir, raw) {
			t.Errorf("database files contain %q in plain text", raw)
		}
	}
}

func TestHeldEventsTeachNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.site.Consent = store.ConsentRequired
	b.submit(t, pipeline.Input{Source: pipeline.SourceBrowser, VisitorID: "v-9", Event: &event.Event{
		EventName: "PageView", ActionSource: "website", EventSourceURL: "https://shop.example/",
		UserData: event.UserData{Em: event.List{rawEmail}, ClientUserAgent: ua},
	}})
	if _, err := b.db.Identity(t.Context(), "shop", "v-9"); err == nil {
		t.Error("identity learned from an event held for consent")
	}
}

func filesContain(t *testing.T, dir, s string) bool {
	t.Helper()
	for _, name := range []string{sqlite.FileName, sqlite.FileName + "-wal"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		if bytes.Contains(data, []byte(s)) {
			return true
		}
	}
	return false
}

func TestForget(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	emHash := hash(t, normalize.Email, rawEmail)

	// What the relay knows of Jane: an identity from a browser event, a
	// partial lead, a server event waiting in the outbox without a visitor
	// id, and a held browser event.
	b.browserEvent(t)
	b.site.PartialLeadTimeout = time.Minute
	svc := leads.New(b.db, nil, slog.New(slog.DiscardHandler))
	now := time.Now()
	if err := svc.Capture(ctx, b.site, leads.Capture{VisitorID: "v-1", FormID: "f", At: now,
		Fields: map[string]string{"em": rawEmail, "fn": "Jane"}, PageURL: "https://shop.example/"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Sweep(ctx, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := svc.Capture(ctx, b.site, leads.Capture{VisitorID: "v-1", FormID: "g", At: now,
		Fields: map[string]string{"ph": rawPhone}}); err != nil {
		t.Fatal(err)
	}
	b.pipe.Enricher = nil // keep this one unlinked: found by its payload
	b.submit(t, serverEvent(event.UserData{Em: event.List{rawEmail}}))
	// Someone else stays.
	b.submit(t, pipeline.Input{Source: pipeline.SourceBrowser, VisitorID: "v-2", Event: &event.Event{
		EventName: "Lead", ActionSource: "website", EventSourceURL: "https://shop.example/",
		UserData: event.UserData{Em: event.List{"other@example.com"}, ClientUserAgent: ua},
	}})

	if err := b.db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if !filesContain(t, b.dir, emHash) {
		t.Fatal("the email hash is not in the database files before forget; the test proves nothing")
	}

	res, err := b.db.Forget(ctx, store.ForgetRequest{Hashes: []string{emHash}})
	if err != nil {
		t.Fatal(err)
	}
	want := store.ForgetResult{Visitors: 1, Identities: 1, IdentityKeys: 2, Leads: 1, Sessions: 1, WebhookJobs: 1, OutboxEvents: 2, DedupKeys: 2}
	if res != want {
		t.Errorf("Forget = %+v, want %+v", res, want)
	}
	for _, s := range []string{emHash, rawEmail, "jane.doe@example.com", hash(t, normalize.Phone, rawPhone)} {
		if filesContain(t, b.dir, s) {
			t.Errorf("database files still contain %q after forget", s)
		}
	}
	if _, err := b.db.Identity(ctx, "shop", "v-2"); err != nil {
		t.Errorf("another visitor's identity: %v, want kept", err)
	}
	items, _ := b.db.Items(ctx, "shop", "", 10)
	if len(items) != 1 || items[0].VisitorID != "v-2" {
		t.Errorf("outbox after forget = %d items, want only v-2's", len(items))
	}
	if err := b.db.Close(); err != nil {
		t.Fatal(err)
	}
	if filesContain(t, b.dir, emHash) {
		t.Error("database files contain the email hash after close")
	}
}

func TestForgetVisitor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	res, err := b.db.Forget(t.Context(), store.ForgetRequest{VisitorIDs: []string{"v-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Identities != 1 || res.OutboxEvents != 1 {
		t.Errorf("Forget = %+v, want the identity and the pending event", res)
	}
	got := b.submit(t, serverEvent(event.UserData{ExternalID: event.List{"cust-42"}}))
	if got.Fbp != "" {
		t.Errorf("enriched from a forgotten identity: fbp %q", got.Fbp)
	}
}

// TestEnrichedKeysRecorded: the outbox item names the keys enrichment
// added, for the live-event page; an event enrichment left alone names
// none.
func TestEnrichedKeysRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	in := serverEvent(event.UserData{ExternalID: event.List{"cust-42"}})
	b.submit(t, in)
	items, err := b.db.Items(t.Context(), "shop", "", 1)
	if err != nil || len(items) != 1 {
		t.Fatalf("Items = %d, %v", len(items), err)
	}
	if want := []string{"em", "ph", "fn", "fbp", "fbc"}; !slices.Equal(items[0].Enriched, want) {
		t.Errorf("Enriched = %q, want %q (the event's own external_id is not added)", items[0].Enriched, want)
	}
	b.submit(t, serverEvent(event.UserData{Em: event.List{"someone@else.example"}}))
	if items, _ = b.db.Items(t.Context(), "shop", "", 1); len(items[0].Enriched) != 0 {
		t.Errorf("Enriched = %q for an event nothing was added to", items[0].Enriched)
	}
}
