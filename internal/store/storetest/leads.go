package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// openLead is an UpsertLead fn that starts (or refreshes) an open session
// due at due.
func openLead(now, due time.Time, em string) func(*store.Lead) error {
	return func(l *store.Lead) error {
		if l.ID == 0 {
			l.State, l.StartedAt = store.LeadOpen, now
		}
		l.UpdatedAt, l.DueAt, l.ExpiresAt = now, due, now.Add(24*time.Hour)
		if l.Data.Fields == nil {
			l.Data.Fields = map[string]string{}
		}
		l.Data.Fields["em"] = em
		l.Data.PageURL = "https://shop.example/form"
		l.EmailHash = "hash-" + em
		l.Consent = "granted"
		return nil
	}
}

func mustUpsertLead(t *testing.T, s store.Store, site, visitor, form string, fn func(*store.Lead) error) *store.Lead {
	t.Helper()
	l, err := s.UpsertLead(t.Context(), site, visitor, form, fn)
	if err != nil {
		t.Fatalf("UpsertLead(%s, %s, %s) = %v", site, visitor, form, err)
	}
	return l
}

// testLeadUpsert: one active session per (site, visitor, form); fn sees the
// stored lead; an error from fn writes nothing; the sealed data round-trips.
func testLeadUpsert(t *testing.T, s store.Store) {
	now := time.Now().Truncate(time.Millisecond)
	var sawNew bool
	first := mustUpsertLead(t, s, "a", "v1", "f", func(l *store.Lead) error {
		sawNew = l.ID == 0 && l.SessionID != "" && l.SiteKey == "a"
		return openLead(now, now.Add(time.Hour), "a@example.com")(l)
	})
	if !sawNew || first.ID == 0 {
		t.Fatalf("first UpsertLead: fn saw a new lead %v, id %d", sawNew, first.ID)
	}
	again := mustUpsertLead(t, s, "a", "v1", "f", func(l *store.Lead) error {
		if l.ID != first.ID || l.Data.Fields["em"] != "a@example.com" {
			t.Errorf("second UpsertLead: fn got %+v, want the stored lead %d", l, first.ID)
		}
		l.SiteKey = "other" // the key is not fn's to change
		return openLead(now, now.Add(time.Hour), "b@example.com")(l)
	})
	if again.ID != first.ID || again.SessionID != first.SessionID {
		t.Fatalf("second UpsertLead made lead %d (%s), want %d (%s)", again.ID, again.SessionID, first.ID, first.SessionID)
	}
	other := mustUpsertLead(t, s, "a", "v1", "other-form", openLead(now, now.Add(time.Hour), "c@example.com"))
	if other.ID == first.ID {
		t.Fatal("a second form of the same visitor shares the first form's lead")
	}
	boom := errors.New("boom")
	if _, err := s.UpsertLead(t.Context(), "a", "v1", "f", func(l *store.Lead) error {
		l.Data.Fields["em"] = "lost@example.com"
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("UpsertLead with a failing fn = %v, want its error", err)
	}
	got, err := s.Lead(t.Context(), first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SiteKey != "a" || got.VisitorID != "v1" || got.FormID != "f" || got.State != store.LeadOpen ||
		got.Data.Fields["em"] != "b@example.com" || got.Data.PageURL != "https://shop.example/form" ||
		got.EmailHash != "hash-b@example.com" || got.Consent != "granted" || !got.PartialAt.IsZero() || !got.ClosedAt.IsZero() {
		t.Fatalf("Lead(%d) = %+v", first.ID, got)
	}
	wantTime(t, "StartedAt", got.StartedAt, now)
	wantTime(t, "DueAt", got.DueAt, now.Add(time.Hour))
	if _, err := s.Lead(t.Context(), first.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Lead(missing) = %v, want ErrNotFound", err)
	}
}

// testLeadPartialLifecycle: a due open session becomes partial exactly
// once, with a pending forward and a pending webhook job; both are leased,
// completed and logged; expired leads are purged with their jobs.
func testLeadPartialLifecycle(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	due := mustUpsertLead(t, s, "a", "v1", "f", openLead(now.Add(-time.Hour), now.Add(-time.Minute), "a@example.com"))
	mustUpsertLead(t, s, "a", "v2", "f", openLead(now, now.Add(time.Hour), "b@example.com")) // not due yet

	claimed, err := s.ClaimDueLeads(ctx, now, 10)
	if err != nil || len(claimed) != 1 || claimed[0].ID != due.ID || claimed[0].State != store.LeadPartial ||
		claimed[0].ForwardState != store.ForwardPending {
		t.Fatalf("ClaimDueLeads = %+v, %v; want lead %d partial with a pending forward", claimed, err, due.ID)
	}
	if again, err := s.ClaimDueLeads(ctx, now, 10); err != nil || len(again) != 0 {
		t.Fatalf("second ClaimDueLeads = %d leads, %v; a lead becomes partial once", len(again), err)
	}

	fw, err := s.ClaimLeadForwards(ctx, now, time.Minute, 10)
	if err != nil || len(fw) != 1 || fw[0].ID != due.ID {
		t.Fatalf("ClaimLeadForwards = %+v, %v", fw, err)
	}
	if leased, err := s.ClaimLeadForwards(ctx, now, time.Minute, 10); err != nil || len(leased) != 0 {
		t.Fatalf("ClaimLeadForwards during the lease = %d, %v; want none", len(leased), err)
	}
	if err := s.CompleteLeadForward(ctx, due.ID, store.ForwardRejected, "event_name: is required"); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Lead(ctx, due.ID); err != nil || l.ForwardState != store.ForwardRejected || l.ForwardError != "event_name: is required" {
		t.Fatalf("after CompleteLeadForward: %+v, %v", l, err)
	}
	if after, err := s.ClaimLeadForwards(ctx, now.Add(time.Hour), time.Minute, 10); err != nil || len(after) != 0 {
		t.Fatalf("ClaimLeadForwards after completion = %d, %v; want none", len(after), err)
	}

	jobs, err := s.ClaimWebhooks(ctx, now, time.Minute, 10)
	if err != nil || len(jobs) != 1 || jobs[0].LeadID != due.ID || jobs[0].Attempts != 1 || jobs[0].Lead == nil ||
		jobs[0].Lead.Data.Fields["em"] != "a@example.com" {
		t.Fatalf("ClaimWebhooks = %+v, %v", jobs, err)
	}
	retryAt := now.Add(time.Minute)
	if err := s.CompleteWebhook(ctx, store.WebhookAttempt{JobID: jobs[0].ID, Attempt: 1, At: now, Status: 502,
		Error: "HTTP 502", Duration: 15 * time.Millisecond, State: store.WebhookPending, RetryAt: retryAt}); err != nil {
		t.Fatal(err)
	}
	if early, err := s.ClaimWebhooks(ctx, now, time.Minute, 10); err != nil || len(early) != 0 {
		t.Fatalf("ClaimWebhooks before the retry = %d, %v; want none", len(early), err)
	}
	jobs, err = s.ClaimWebhooks(ctx, retryAt, time.Minute, 10)
	if err != nil || len(jobs) != 1 || jobs[0].Attempts != 2 {
		t.Fatalf("ClaimWebhooks at the retry = %+v, %v; want the job at attempt 2", jobs, err)
	}
	if err := s.CompleteWebhook(ctx, store.WebhookAttempt{JobID: jobs[0].ID, Attempt: 2, At: retryAt, Status: 200,
		Duration: 5 * time.Millisecond, State: store.WebhookDelivered}); err != nil {
		t.Fatal(err)
	}
	log, err := s.WebhookAttempts(ctx, "a", 10)
	if err != nil || len(log) != 2 || log[0].Attempt != 2 || log[0].Status != 200 || log[1].Status != 502 ||
		log[1].Error != "HTTP 502" || log[1].Duration != 15*time.Millisecond {
		t.Fatalf("WebhookAttempts = %+v, %v; want attempt 2 then 1", log, err)
	}
	if none, err := s.WebhookAttempts(ctx, "b", 10); err != nil || len(none) != 0 {
		t.Fatalf("WebhookAttempts of another site = %d, %v", len(none), err)
	}

	partial, err := s.ListLeads(ctx, store.LeadFilter{SiteKey: "a", States: []string{store.LeadPartial}})
	if err != nil || len(partial) != 1 || partial[0].ID != due.ID {
		t.Fatalf("ListLeads(partial) = %+v, %v", partial, err)
	}
	all, err := s.ListLeads(ctx, store.LeadFilter{SiteKey: "a"})
	if err != nil || len(all) != 2 {
		t.Fatalf("ListLeads(all) = %d, %v; want 2", len(all), err)
	}
	if n, err := s.PurgeLeads(ctx, now); err != nil || n != 0 {
		t.Fatalf("PurgeLeads before expiry = %d, %v", n, err)
	}
	if n, err := s.PurgeLeads(ctx, now.Add(48*time.Hour)); err != nil || n != 2 {
		t.Fatalf("PurgeLeads after expiry = %d, %v; want 2", n, err)
	}
	if _, err := s.Lead(ctx, due.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Lead after purge = %v, want ErrNotFound", err)
	}
}

func testWebhookSecret(t *testing.T, s store.Store) {
	ctx := t.Context()
	if sec, err := s.WebhookSecret(ctx, "a", "first"); err != nil || sec != "first" {
		t.Fatalf("WebhookSecret = %q, %v; want the new secret stored", sec, err)
	}
	if sec, err := s.WebhookSecret(ctx, "a", "second"); err != nil || sec != "first" {
		t.Fatalf("WebhookSecret again = %q, %v; want the first kept", sec, err)
	}
	if sec, err := s.WebhookSecret(ctx, "b", "other"); err != nil || sec != "other" {
		t.Fatalf("WebhookSecret of site b = %q, %v", sec, err)
	}
}

// testIdentities: learning merges (newest hashes first, browser ids
// replaced when given), the index finds visitors, KnownKeys reports changes.
func testIdentities(t *testing.T, s store.Store) {
	ctx := t.Context()
	start := time.Now().Add(-time.Second)
	if _, err := s.Identity(ctx, "a", "v1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Identity(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.LearnIdentity(ctx, &store.Identity{SiteKey: "a", VisitorID: "v1",
		Hashes: map[string][]string{store.KeyEmail: {"em1"}, "fn": {"fn1"}}, Fbp: "fb.1.1.1", IP: "203.0.113.9", UA: "UA"}); err != nil {
		t.Fatal(err)
	}
	// A wrong LikelyNew hint costs time, never data.
	if err := s.LearnIdentities(ctx, []*store.Identity{
		{SiteKey: "a", VisitorID: "v1", Hashes: map[string][]string{"fn": {"fn2"}}, IP: "198.51.100.1", LikelyNew: true},
		{SiteKey: "a", VisitorID: "v2", Hashes: map[string][]string{store.KeyEmail: {"em2"}, store.KeyPhone: {"ph2"}}, LikelyNew: true},
		{SiteKey: "a", VisitorID: "v3", Hashes: map[string][]string{store.KeyEmail: {"em2"}}},
		{SiteKey: "b", VisitorID: "v1", Hashes: map[string][]string{store.KeyExternalID: {"x1"}}},
		{SiteKey: "b", VisitorID: store.PseudoPrefix + "x2", Hashes: map[string][]string{store.KeyExternalID: {"x2"}, store.KeyEmail: {"em9"}}},
	}); err != nil {
		t.Fatal(err)
	}
	// Another value of a strong key is someone else's: nothing merges.
	if err := s.LearnIdentity(ctx, &store.Identity{SiteKey: "a", VisitorID: "v1",
		Hashes: map[string][]string{store.KeyEmail: {"em3"}, "fn": {"fn3"}}, Fbp: "fb.1.2.2"}); err != nil {
		t.Fatal(err)
	}
	id, err := s.Identity(ctx, "a", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.Hashes[store.KeyEmail], []string{"em1"}) || !slices.Equal(id.Hashes["fn"], []string{"fn2", "fn1"}) ||
		id.Fbp != "fb.1.1.1" || id.IP != "198.51.100.1" || id.UA != "UA" {
		t.Fatalf("Identity(a, v1) = %+v; want em1 alone, fn2 before fn1, the new IP and the old fbp", id)
	}
	if vs, err := s.VisitorsByHash(ctx, "a", store.KeyEmail, "em3"); err != nil || len(vs) != 0 {
		t.Fatalf("VisitorsByHash(a, em, em3) = %v, %v; want none (the conflicting merge was refused)", vs, err)
	}
	vs, err := s.VisitorsByHash(ctx, "a", store.KeyEmail, "em2")
	if err != nil || !slices.Contains(vs, "v3") || !slices.Contains(vs, "v2") || len(vs) != 2 {
		t.Fatalf("VisitorsByHash(a, em, em2) = %v, %v; want v2 and v3", vs, err)
	}
	if vs, err := s.VisitorsByHash(ctx, "b", store.KeyExternalID, "x2"); err != nil || len(vs) != 0 {
		t.Fatalf("VisitorsByHash(b, external_id, x2) = %v, %v; want none: the pseudo visitor names it", vs, err)
	}
	if vs, err := s.VisitorsByHash(ctx, "b", store.KeyEmail, "em9"); err != nil || !slices.Equal(vs, []string{store.PseudoPrefix + "x2"}) {
		t.Fatalf("VisitorsByHash(b, em, em9) = %v, %v; want the pseudo visitor", vs, err)
	}
	if vs, err := s.VisitorsByHash(ctx, "b", store.KeyEmail, "em2"); err != nil || len(vs) != 0 {
		t.Fatalf("VisitorsByHash crosses sites: %v, %v", vs, err)
	}
	if vs, err := s.VisitorsByHash(ctx, "a", "fn", "fn1"); err != nil || len(vs) != 0 {
		t.Fatalf("VisitorsByHash of an unindexed key = %v, %v; want none", vs, err)
	}
	seen := map[string]bool{}
	latest, err := s.KnownKeys(ctx, start, func(site, kind, value string) { seen[site+"/"+kind+"/"+value] = true })
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a/visitor/v1", "a/visitor/v2", "a/visitor/v3", "a/em/em1", "a/em/em2", "b/visitor/v1",
		"b/external_id/x1", "b/visitor/" + store.PseudoPrefix + "x2", "b/em/em9"} {
		if !seen[want] {
			t.Errorf("KnownKeys did not report %s (got %v)", want, seen)
		}
	}
	if seen["a/fn/fn1"] || seen["a/ph/ph2"] {
		t.Error("KnownKeys reported an unindexed key (a name, a phone)")
	}
	if latest.Before(start) {
		t.Errorf("KnownKeys latest = %v, before the changes at %v", latest, start)
	}
	n := 0
	if _, err := s.KnownKeys(ctx, latest.Add(time.Second), func(_, _, _ string) { n++ }); err != nil || n != 0 {
		t.Fatalf("KnownKeys after the latest change = %d keys, %v; want none", n, err)
	}
}

// testForget erases one person everywhere and leaves another alone.
func testForget(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now()
	mine := mustUpsertLead(t, s, "a", "v1", "f", openLead(now, now.Add(-time.Minute), "me@example.com"))
	if _, err := s.ClaimDueLeads(ctx, now, 10); err != nil { // partial, with a webhook job
		t.Fatal(err)
	}
	theirs := mustUpsertLead(t, s, "a", "v9", "f", openLead(now, now.Add(time.Hour), "you@example.com"))
	if err := s.LearnIdentities(ctx, []*store.Identity{
		{SiteKey: "a", VisitorID: "v1", Hashes: map[string][]string{store.KeyEmail: {"hash-me@example.com"}}},
		{SiteKey: "a", VisitorID: "v9", Hashes: map[string][]string{store.KeyEmail: {"hash-you@example.com"}}},
	}); err != nil {
		t.Fatal(err)
	}
	held := ev("a", "Lead", "by-visitor")
	held.VisitorID, held.Held = "v1", true
	byHash := ev("a", "Purchase", "by-hash")
	byHash.Payload = []byte(`{"user_data":{"em":["hash-me@example.com"]}}`)
	keep := ev("a", "Purchase", "someone-else")
	keep.VisitorID = "v9"
	ids := mustEnqueue(t, s, held, byHash, keep)

	res, err := s.Forget(ctx, store.ForgetRequest{SiteKey: "a", Hashes: []string{"hash-me@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Visitors != 1 || res.Identities != 1 || res.Leads != 1 || res.WebhookJobs != 1 || res.OutboxEvents != 2 {
		t.Fatalf("Forget = %+v; want 1 visitor, identity, lead and webhook job, 2 outbox events", res)
	}
	if _, err := s.Lead(ctx, mine.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the forgotten lead remains: %v", err)
	}
	if _, err := s.Identity(ctx, "a", "v1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the forgotten identity remains: %v", err)
	}
	for _, id := range ids[:2] {
		if _, err := s.Item(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("forgotten outbox item %d remains: %v", id, err)
		}
	}
	if vs, _ := s.VisitorsByHash(ctx, "a", store.KeyEmail, "hash-me@example.com"); len(vs) != 0 {
		t.Errorf("the index still finds the forgotten visitor: %v", vs)
	}
	if _, err := s.Lead(ctx, theirs.ID); err != nil {
		t.Errorf("another person's lead was erased: %v", err)
	}
	if _, err := s.Identity(ctx, "a", "v9"); err != nil {
		t.Errorf("another person's identity was erased: %v", err)
	}
	mustItem(t, s, ids[2])

	// By visitor id, with no hash.
	res, err = s.Forget(ctx, store.ForgetRequest{VisitorIDs: []string{"v9"}})
	if err != nil || res.Visitors != 1 || res.Identities != 1 || res.Sessions != 1 || res.OutboxEvents != 1 {
		t.Fatalf("Forget(visitor v9) = %+v, %v; want its identity, open session and event", res, err)
	}
}

// testAdminAccess: the password hash, sessions (ended by a new password or
// by expiry) and API tokens.
func testAdminAccess(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	if _, err := s.AdminPasswordHash(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AdminPasswordHash before one is set = %v, want ErrNotFound", err)
	}
	if err := s.CreateAdminSession(ctx, &store.AdminSession{IDHash: "s1", CSRF: "c1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AdminSession(ctx, "s1", now); err != nil || got.CSRF != "c1" {
		t.Fatalf("AdminSession = %+v, %v", got, err)
	}
	if _, err := s.AdminSession(ctx, "s1", now.Add(2*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AdminSession after expiry = %v, want ErrNotFound", err)
	}
	if err := s.SetAdminPasswordHash(ctx, "hash-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdminSession(ctx, "s1", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AdminSession after a password change = %v, want ErrNotFound", err)
	}
	if err := s.SetAdminPasswordHash(ctx, "hash-2"); err != nil {
		t.Fatal(err)
	}
	if h, err := s.AdminPasswordHash(ctx); err != nil || h != "hash-2" {
		t.Fatalf("AdminPasswordHash = %q, %v; want the latest", h, err)
	}
	if err := s.CreateAdminSession(ctx, &store.AdminSession{IDHash: "s2", CSRF: "c2", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAdminSession(ctx, "s2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdminSession(ctx, "s2", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AdminSession after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteAdminSession(ctx, "never"); err != nil {
		t.Fatalf("DeleteAdminSession(unknown) = %v, want nil", err)
	}

	tok := &store.AdminToken{Name: "ci", Hash: "th"}
	if err := s.CreateAdminToken(ctx, tok); err != nil || tok.ID == 0 || tok.CreatedAt.IsZero() {
		t.Fatalf("CreateAdminToken = %+v, %v; want ID and CreatedAt set", tok, err)
	}
	if err := s.CreateAdminToken(ctx, &store.AdminToken{Name: "x", Hash: "th"}); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("CreateAdminToken(same hash) = %v, want ErrDuplicate", err)
	}
	got, err := s.AdminTokenByHash(ctx, "th", now)
	if err != nil || got.ID != tok.ID || got.Name != "ci" {
		t.Fatalf("AdminTokenByHash = %+v, %v", got, err)
	}
	list, err := s.ListAdminTokens(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListAdminTokens = %+v, %v", list, err)
	}
	wantTime(t, "LastUsedAt", list[0].LastUsedAt, now)
	if _, err := s.AdminTokenByHash(ctx, "nope", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AdminTokenByHash(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.RevokeAdminToken(ctx, tok.ID, now); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AdminTokenByHash(ctx, "th", now); err != nil || got.Active(now) {
		t.Fatalf("AdminTokenByHash after revoke = %+v, %v; want the token, no longer active", got, err)
	}
}

// testAdminAggregates: Activity, Errors and DeliveryLatencies read the
// outbox.
func testAdminAggregates(t *testing.T, s store.Store) {
	ctx := t.Context()
	before := time.Now().Add(-time.Minute)
	ids := mustEnqueue(t, s, events("a", 3)...)
	claimAt := time.Now()
	mustClaim(t, s, "a", "o", 10, claimAt, lease)
	done := time.Now()
	mustComplete(t, s, "o", done,
		store.Outcome{ID: ids[0], Kind: store.OutcomeDelivered},
		store.Outcome{ID: ids[1], Kind: store.OutcomeRetry, RetryAt: done.Add(time.Hour), Reason: "HTTP 500"},
		store.Outcome{ID: ids[2], Kind: store.OutcomeDead, Class: store.DeadRejected, Reason: "rejected: bad"})
	after := time.Now().Add(time.Minute)

	if got := ActivityTotal(t, s, before, after); got != (store.MinuteCount{In: 3, Delivered: 1, Dead: 1}) {
		t.Fatalf("Activity's total = %+v; want 3 in, 1 delivered, 1 dead", got)
	}
	errs, err := s.Errors(ctx, before, 10)
	if err != nil || len(errs) != 2 {
		t.Fatalf("Errors = %+v, %v; want the retry and the dead letter", errs, err)
	}
	byReason := map[string]store.ErrorCount{}
	for _, e := range errs {
		byReason[e.Reason] = e
	}
	if e := byReason["HTTP 500"]; e.State != store.StatePending || e.Count != 1 || e.SiteKey != "a" {
		t.Errorf("Errors[HTTP 500] = %+v", e)
	}
	if e := byReason["rejected: bad"]; e.State != store.StateDead || e.Count != 1 {
		t.Errorf("Errors[rejected: bad] = %+v", e)
	}
	lat, err := s.DeliveryLatencies(ctx, before, 10)
	if err != nil || len(lat) != 1 || lat[0] < 0 || lat[0] > after.Sub(before) {
		t.Fatalf("DeliveryLatencies = %v, %v; want one latency", lat, err)
	}
}

// ActivityTotal sums s's Activity over [since, until) (Minute left zero).
func ActivityTotal(t testing.TB, s store.Admin, since, until time.Time) store.MinuteCount {
	t.Helper()
	act, err := s.Activity(t.Context(), since, until)
	if err != nil {
		t.Fatal(err)
	}
	var sum store.MinuteCount
	for _, m := range act {
		sum.In, sum.Delivered, sum.Dead = sum.In+m.In, sum.Delivered+m.Delivered, sum.Dead+m.Dead
	}
	return sum
}

// testActivityMinutes: Activity puts each delivery and dead letter in the
// minute it happened, counts only [since, until) (to the millisecond, not
// to the minute), leaves out minutes with nothing, and no longer counts a
// dead letter once it is replayed.
func testActivityMinutes(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Outcomes an hour ahead, so no event stored now falls in the window.
	m0 := time.Now().Add(time.Hour).Truncate(time.Minute)
	ids := mustEnqueue(t, s, events("a", 4)...)
	mustClaim(t, s, "a", "o", 10, time.Now(), 3*time.Hour)
	mustComplete(t, s, "o", m0.Add(10*time.Second), store.Outcome{ID: ids[0], Kind: store.OutcomeDelivered})
	mustComplete(t, s, "o", m0.Add(20*time.Second), store.Outcome{ID: ids[1], Kind: store.OutcomeDead, Class: store.DeadRejected, Reason: "rejected: bad"})
	mustComplete(t, s, "o", m0.Add(70*time.Second), store.Outcome{ID: ids[2], Kind: store.OutcomeDelivered})
	mustComplete(t, s, "o", m0.Add(130*time.Second), store.Outcome{ID: ids[3], Kind: store.OutcomeDelivered})
	m1 := m0.Add(time.Minute)
	check := func(what string, since, until time.Time, want ...store.MinuteCount) {
		t.Helper()
		got, err := s.Activity(ctx, since, until)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: Activity = %+v, want %+v", what, got, want)
		}
		for i := range got {
			if !got[i].Minute.Equal(want[i].Minute) || got[i].In != want[i].In || got[i].Delivered != want[i].Delivered || got[i].Dead != want[i].Dead {
				t.Fatalf("%s: Activity = %+v, want %+v", what, got, want)
			}
		}
	}
	check("two minutes", m0.Add(5*time.Second), m0.Add(125*time.Second),
		store.MinuteCount{Minute: m0, Delivered: 1, Dead: 1}, store.MinuteCount{Minute: m1, Delivered: 1})
	check("from mid-minute", m0.Add(15*time.Second), m0.Add(125*time.Second),
		store.MinuteCount{Minute: m0, Dead: 1}, store.MinuteCount{Minute: m1, Delivered: 1})
	check("to mid-minute", m0, m0.Add(15*time.Second), store.MinuteCount{Minute: m0, Delivered: 1})
	check("an empty window", m0.Add(-10*time.Minute), m0)
	if err := s.Replay(ctx, ids[1], time.Now()); err != nil {
		t.Fatal(err)
	}
	check("after the replay", m0.Add(5*time.Second), m0.Add(125*time.Second),
		store.MinuteCount{Minute: m0, Delivered: 1}, store.MinuteCount{Minute: m1, Delivered: 1})
}

// testForgetByPhone erases a person known by a phone alone, which has no
// index row (a phone links no one), and leaves another alone.
func testForgetByPhone(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.LearnIdentities(ctx, []*store.Identity{
		{SiteKey: "a", VisitorID: "v5", Hashes: map[string][]string{store.KeyPhone: {"hash-ph-5"}, "fn": {"hash-fn-5"}}},
		{SiteKey: "a", VisitorID: "v6", Hashes: map[string][]string{store.KeyPhone: {"hash-ph-6"}}},
	}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Forget(ctx, store.ForgetRequest{Hashes: []string{"hash-ph-5"}})
	if err != nil || res.Visitors != 1 || res.Identities != 1 {
		t.Fatalf("Forget(phone) = %+v, %v; want the one identity", res, err)
	}
	if _, err := s.Identity(ctx, "a", "v5"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Identity(v5) after forget = %v, want ErrNotFound", err)
	}
	if _, err := s.Identity(ctx, "a", "v6"); err != nil {
		t.Errorf("Identity(v6) = %v, want kept", err)
	}
}
