package identity_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/identity"
	"github.com/capirelay/capirelay/internal/leads"
	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/secret"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
)

const (
	rawEmail = "Jane.Doe@Example.com"
	rawPhone = "+1 (650) 555-1212"
	fbp      = "fb.1.1700000000000.1234567890"
	fbc      = "fb.1.1700000000000.IwAR-click"
	ua       = "Mozilla/5.0 (X11; Linux x86_64) test"
)

type bundle struct {
	dir  string
	db   *sqlite.DB
	ids  *identity.Service
	pipe *pipeline.Pipeline
	site *store.Site
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
	b.site = &store.Site{Key: "shop", Name: "Shop", APIKeyHash: "h", DefaultRegion: "US", PartialLeads: true}
	if err := b.db.CreateSite(t.Context(), b.site); err != nil {
		t.Fatal(err)
	}
	b.ids = identity.New(b.db, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.ids.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	b.pipe = pipeline.New(b.db)
	b.pipe.Enricher, b.pipe.Observer = b.ids, b.ids
	return b
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
	it, err := b.db.Item(t.Context(), res[0].ID)
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
	if got.Fbp != fbp || got.Fbc != fbc || got.ClientUserAgent != ua {
		t.Errorf("fbp/fbc/ua = %q/%q/%q, want the browser's", got.Fbp, got.Fbc, got.ClientUserAgent)
	}
	if !slices.Equal(got.Em, []string{hash(t, normalize.Email, rawEmail)}) ||
		!slices.Equal(got.Ph, []string{hash(t, normalize.Phone, rawPhone)}) ||
		!slices.Equal(got.Fn, []string{hash(t, normalize.FirstName, "Jane")}) {
		t.Errorf("em/ph/fn = %v/%v/%v, want the hashes learned before", got.Em, got.Ph, got.Fn)
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

func TestServerEventEnrichedByPhoneAndVisitor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.browserEvent(t)
	got := b.submit(t, serverEvent(event.UserData{Ph: event.List{"650-555-1212"}}))
	if got.Fbp != fbp || len(got.Em) != 1 {
		t.Errorf("by phone: fbp %q, em %v; want enriched", got.Fbp, got.Em)
	}
	in := serverEvent(event.UserData{ClientIPAddress: "198.51.100.1"})
	in.VisitorID = "v-1"
	got = b.submit(t, in)
	if got.Fbp != fbp || len(got.Em) != 1 || got.ClientIPAddress != "198.51.100.1" {
		t.Errorf("by visitor id: %+v; want enriched, own IP kept", got)
	}
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
	want := store.ForgetResult{Visitors: 1, Identities: 1, IdentityKeys: 3, Leads: 1, Sessions: 1, WebhookJobs: 1, OutboxEvents: 2}
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
