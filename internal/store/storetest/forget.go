package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/store"
)

// ForgetMarks are the person's identifiers that ForgetScenario stores and
// then erases; a store's own test looks for them in its files or rows.
type ForgetMarks struct {
	Visitor  string   // the browser visitor id
	Hash     string   // the email hash the request names
	EventIDs []string // the person's event ids (dedup keys)
	// Kept are the other person's event ids, which must survive.
	Kept []string
}

// All lists every mark.
func (m ForgetMarks) All() []string {
	return append([]string{m.Visitor, m.Hash}, m.EventIDs...)
}

// forgetSite is the scenario's site.
const forgetSite = "forget-site"

// ForgetScenario stores one person's identity and events in every outbox
// state (delivered, dead, held, pending) plus a sandbox record shared with
// another person, calls before (when not nil) so a store's test can see
// them at rest, forgets the person by email hash and returns what must be
// gone.
func ForgetScenario(t *testing.T, s store.Store, before func(ForgetMarks)) ForgetMarks {
	t.Helper()
	ctx := t.Context()
	sum := sha256.Sum256([]byte("jane.forget@example.com"))
	m := ForgetMarks{
		Visitor:  "vis-4b7f09c2d1e8a3",
		Hash:     hex.EncodeToString(sum[:]),
		EventIDs: []string{"ev-jane-delivered-91c3", "ev-jane-dead-5a2e", "ev-jane-held-77d0", "ev-jane-pending-3f8b"},
		Kept:     []string{"ev-other-delivered-c41d"},
	}
	extID, err := normalize.Hash(normalize.ExternalID, m.Visitor, normalize.Options{})
	if err != nil {
		t.Fatal(err)
	}
	otherHash := fmt.Sprintf("%064x", 7)
	payload := func(name, id, ud string) []byte {
		return fmt.Appendf(nil, `{"event_name":%q,"event_id":%q,"event_time":%d,"action_source":"website","user_data":%s}`,
			name, id, time.Now().Unix(), ud)
	}
	browserUD := fmt.Sprintf(`{"external_id":[%q],"client_user_agent":"Mozilla/5.0"}`, extID)
	serverUD := fmt.Sprintf(`{"em":[%q]}`, m.Hash)
	evs := []store.NewEvent{
		{EventName: "PageView", EventID: m.EventIDs[0], VisitorID: m.Visitor, Source: "browser", Payload: payload("PageView", m.EventIDs[0], browserUD)},
		{EventName: "Purchase", EventID: m.EventIDs[1], Source: "server", Payload: payload("Purchase", m.EventIDs[1], serverUD)},
		{EventName: "Lead", EventID: m.EventIDs[2], VisitorID: m.Visitor, Source: "browser", Held: true, Payload: payload("Lead", m.EventIDs[2], browserUD)},
		{EventName: "Purchase", EventID: m.EventIDs[3], Source: "server", Payload: payload("Purchase", m.EventIDs[3], serverUD)},
		{EventName: "PageView", EventID: m.Kept[0], VisitorID: "vis-other", Source: "browser",
			Payload: payload("PageView", m.Kept[0], fmt.Sprintf(`{"em":[%q]}`, otherHash))},
	}
	for i := range evs {
		evs[i].SiteKey, evs[i].EventTime = forgetSite, time.Now().Add(-time.Minute).Truncate(time.Second)
	}
	ids := mustEnqueue(t, s, evs...)
	if err := s.LearnIdentities(ctx, []*store.Identity{{SiteKey: forgetSite, VisitorID: m.Visitor,
		Hashes: map[string][]string{store.KeyEmail: {m.Hash}}, IP: "203.0.113.77"}}); err != nil {
		t.Fatal(err)
	}
	// Deliver the first and the other's, kill the second; the fourth stays
	// pending (the third is held).
	now := time.Now()
	claimed := mustClaim(t, s, forgetSite, "node", 10, now, time.Minute)
	if len(claimed) != 4 {
		t.Fatalf("claimed %d items, want 4 (all but the held one)", len(claimed))
	}
	mustComplete(t, s, "node", now,
		store.Outcome{ID: ids[0], Kind: store.OutcomeDelivered},
		store.Outcome{ID: ids[1], Kind: store.OutcomeDead, Reason: "refused"},
		store.Outcome{ID: ids[3], Kind: store.OutcomeRelease},
		store.Outcome{ID: ids[4], Kind: store.OutcomeDelivered})
	// The sandbox received the delivered ones in one request body, and the
	// dead one alone.
	shared := fmt.Appendf(nil, `{"data":[%s,%s],"partner_agent":"capirelay"}`, evs[0].Payload, evs[4].Payload)
	if err := s.RecordSandbox(ctx, forgetSite, now, shared); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSandbox(ctx, forgetSite, now, fmt.Appendf(nil, `{"data":[%s]}`, evs[1].Payload)); err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(m)
	}

	res, err := s.Forget(ctx, store.ForgetRequest{Hashes: []string{m.Hash}})
	if err != nil {
		t.Fatalf("Forget = %v", err)
	}
	want := store.ForgetResult{Visitors: 1, Identities: 1, IdentityKeys: 1, OutboxEvents: 4, DedupKeys: 4, SandboxEvents: 2}
	if res != want {
		t.Errorf("Forget = %+v, want %+v", res, want)
	}
	return m
}

// testForgetEverywhere checks through the store's own API that nothing of
// the person is left: no outbox item in any state, no identity, no event in
// a sandbox record (the other person's stays), and no dedup key (the same
// event ids are accepted again).
func testForgetEverywhere(t *testing.T, s store.Store) {
	ctx := t.Context()
	m := ForgetScenario(t, s, nil)
	items, err := s.Items(ctx, forgetSite, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].EventID != m.Kept[0] {
		t.Errorf("items after forget = %d (%v), want only %s", len(items), itemIDs(items), m.Kept[0])
	}
	if _, err := s.Identity(ctx, forgetSite, m.Visitor); err == nil {
		t.Error("identity still there after forget")
	}
	recs, err := s.SandboxRecords(ctx, forgetSite, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || !bytes.Contains(recs[0].Payload, []byte(m.Kept[0])) {
		t.Fatalf("sandbox after forget = %d records, want the shared one with the other's event", len(recs))
	}
	for _, mark := range m.All() {
		if bytes.Contains(recs[0].Payload, []byte(mark)) {
			t.Errorf("sandbox record still holds %q: %s", mark, recs[0].Payload)
		}
	}
	again := make([]store.NewEvent, 0, len(m.EventIDs)+1)
	names := []string{"PageView", "Purchase", "Lead", "Purchase"}
	for i, id := range m.EventIDs {
		again = append(again, ev(forgetSite, names[i], id))
	}
	again = append(again, ev(forgetSite, "PageView", m.Kept[0]))
	res, err := s.Enqueue(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := store.Accepted
		if i == len(res)-1 {
			want = store.Duplicate // the other person's key is kept
		}
		if r.Status != want {
			t.Errorf("re-enqueue %s = %s, want %s (dedup keys of the forgotten person are erased)", again[i].EventID, r.Status, want)
		}
	}
}
