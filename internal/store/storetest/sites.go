package storetest

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// fullSite returns a site with every field set to a non-default value.
func fullSite(key string) *store.Site {
	return &store.Site{
		Key:                 key,
		Name:                "Shop " + key,
		Domains:             []string{"example.com", "shop.example.org"},
		PixelID:             "1234567890",
		AccessToken:         "EAAtoken-" + key,
		APIKeyHash:          "hash-" + key,
		TestEventCode:       "TEST123",
		Consent:             store.ConsentLDU,
		DefaultRegion:       "DE",
		PartialLeads:        true,
		PartialLeadTimeout:  7 * time.Minute,
		PartialLeadForward:  true,
		PartialLeadEvent:    "Abandoned",
		WebhookURL:          "https://hooks.example.com/lead",
		WebhookAllowHTTP:    true,
		WebhookAllowPrivate: true,
		Retention:           10 * 24 * time.Hour,
		Identity:            store.IdentityVisitor,
		ClickWindow:         3 * 24 * time.Hour,
		Paused:              true,
		PauseReason:         "token expired",
		Demo:                true,
	}
}

func mustCreateSite(t testing.TB, s store.Store, site *store.Site) {
	t.Helper()
	if err := s.CreateSite(context.Background(), site); err != nil {
		t.Fatalf("CreateSite(%s) = %v", site.Key, err)
	}
}

func mustSite(t testing.TB, s store.Store, key string) *store.Site {
	t.Helper()
	got, err := s.Site(context.Background(), key)
	if err != nil {
		t.Fatalf("Site(%s) = %v", key, err)
	}
	return got
}

// wantSite compares every field but the timestamps.
func wantSite(t testing.TB, got, want *store.Site) {
	t.Helper()
	g, w := *got, *want
	g.CreatedAt, g.UpdatedAt, w.CreatedAt, w.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !slices.Equal(g.Domains, w.Domains) {
		t.Errorf("Site(%s).Domains = %q, want %q", want.Key, g.Domains, w.Domains)
	}
	g.Domains, w.Domains = nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("Site(%s) =\n%+v\nwant\n%+v", want.Key, g, w)
	}
}

func testSiteRoundTrip(t *testing.T, s store.Store) {
	before := time.Now().Add(-time.Second)
	want := fullSite("a")
	mustCreateSite(t, s, want)
	if want.CreatedAt.IsZero() || want.UpdatedAt.IsZero() {
		t.Fatalf("CreateSite did not set CreatedAt/UpdatedAt: %v, %v", want.CreatedAt, want.UpdatedAt)
	}
	got := mustSite(t, s, "a")
	wantSite(t, got, want)
	wantTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt = %v, want about now", got.CreatedAt)
	}

	// A site with no token is a sandbox site, and "" round trips.
	sb := fullSite("b")
	sb.AccessToken = ""
	mustCreateSite(t, s, sb)
	got = mustSite(t, s, "b")
	wantSite(t, got, sb)
	if !got.Sandbox() {
		t.Errorf("Site(b).Sandbox() = false for a site without a token")
	}
}

func testSiteDefaults(t *testing.T, s store.Store) {
	mustCreateSite(t, s, &store.Site{Key: "min", Name: "Minimal", APIKeyHash: "h"})
	got := mustSite(t, s, "min")
	if got.Consent != store.ConsentNone || got.PartialLeadTimeout != store.DefaultPartialLeadTimeout ||
		got.PartialLeadEvent != store.DefaultPartialLeadEvent || got.Retention != store.DefaultRetention ||
		got.Identity != store.IdentityFull || got.ClickWindow != store.DefaultClickWindow {
		t.Errorf("Site(min) defaults = consent %q, timeout %v, event %q, retention %v, identity %q, click window %v", got.Consent,
			got.PartialLeadTimeout, got.PartialLeadEvent, got.Retention, got.Identity, got.ClickWindow)
	}
	if len(got.Domains) != 0 || got.AccessToken != "" || got.Paused || got.Demo {
		t.Errorf("Site(min) = %+v, want no domains, no token, not paused, not demo", got)
	}
}

func testSiteDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateSite(t, s, fullSite("a"))

	sameKey := fullSite("a")
	sameKey.APIKeyHash = "other-hash"
	wantErr(t, "CreateSite(same key)", s.CreateSite(ctx, sameKey), store.ErrDuplicate)

	sameAPIKey := fullSite("b")
	sameAPIKey.APIKeyHash = "hash-a"
	wantErr(t, "CreateSite(same api key hash)", s.CreateSite(ctx, sameAPIKey), store.ErrDuplicate)

	// The failed attempts changed nothing.
	wantSite(t, mustSite(t, s, "a"), fullSite("a"))
	_, err := s.Site(ctx, "b")
	wantErr(t, "Site(b)", err, store.ErrNotFound)

	// Rotating b onto a's api key clashes too.
	mustCreateSite(t, s, fullSite("b"))
	wantErr(t, "SetAPIKeyHash(b, a's hash)", s.SetAPIKeyHash(ctx, "b", "hash-a"), store.ErrDuplicate)
}

func testSiteNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.Site(ctx, "nope")
	wantErr(t, "Site(nope)", err, store.ErrNotFound)
	_, err = s.SiteByAPIKeyHash(ctx, "nope")
	wantErr(t, "SiteByAPIKeyHash(nope)", err, store.ErrNotFound)
	wantErr(t, "UpdateSite(nope)", s.UpdateSite(ctx, fullSite("nope")), store.ErrNotFound)
	wantErr(t, "SetAccessToken(nope)", s.SetAccessToken(ctx, "nope", "t"), store.ErrNotFound)
	wantErr(t, "SetAPIKeyHash(nope)", s.SetAPIKeyHash(ctx, "nope", "h"), store.ErrNotFound)
	wantErr(t, "SetPaused(nope)", s.SetPaused(ctx, "nope", true, "x"), store.ErrNotFound)
	wantErr(t, "DeleteSite(nope)", s.DeleteSite(ctx, "nope"), store.ErrNotFound)
}

func testSiteByAPIKeyHash(t *testing.T, s store.Store) {
	mustCreateSite(t, s, fullSite("a"))
	mustCreateSite(t, s, fullSite("b"))
	got, err := s.SiteByAPIKeyHash(t.Context(), "hash-b")
	if err != nil {
		t.Fatalf("SiteByAPIKeyHash(hash-b) = %v", err)
	}
	wantSite(t, got, fullSite("b"))
}

func testListSites(t *testing.T, s store.Store) {
	got, err := s.ListSites(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("ListSites() on an empty store = %d sites, %v; want none", len(got), err)
	}
	// Created in key order, so oldest first and key order agree even when
	// the clock does not advance between calls.
	for _, k := range []string{"a", "b", "c"} {
		mustCreateSite(t, s, fullSite(k))
	}
	got, err = s.ListSites(t.Context())
	if err != nil {
		t.Fatalf("ListSites() = %v", err)
	}
	var keys []string
	for _, site := range got {
		keys = append(keys, site.Key)
	}
	if !slices.Equal(keys, []string{"a", "b", "c"}) {
		t.Fatalf("ListSites() keys = %q, want [a b c]", keys)
	}
	wantSite(t, got[1], fullSite("b"))
}

func testUpdateSite(t *testing.T, s store.Store) {
	orig := fullSite("a")
	mustCreateSite(t, s, orig)
	created := mustSite(t, s, "a").CreatedAt

	up := &store.Site{
		Key:                "a",
		Name:               "Renamed",
		Domains:            []string{"new.example"},
		PixelID:            "999",
		TestEventCode:      "",
		Consent:            store.ConsentRequired,
		DefaultRegion:      "FR",
		PartialLeads:       false,
		PartialLeadTimeout: time.Hour,
		PartialLeadForward: false,
		PartialLeadEvent:   "Lead2",
		WebhookURL:         "",
		Retention:          time.Hour,
		Identity:           store.IdentityOff,
		ClickWindow:        24 * time.Hour,
		Demo:               false,
		// Fields UpdateSite must not write:
		AccessToken: "other-token",
		APIKeyHash:  "other-hash",
		Paused:      false,
		PauseReason: "",
	}
	if err := s.UpdateSite(t.Context(), up); err != nil {
		t.Fatalf("UpdateSite(a) = %v", err)
	}
	got := mustSite(t, s, "a")
	want := *up
	want.AccessToken, want.APIKeyHash, want.Paused, want.PauseReason = orig.AccessToken, orig.APIKeyHash, orig.Paused, orig.PauseReason
	wantSite(t, got, &want)
	wantTime(t, "CreatedAt after update", got.CreatedAt, created)
	if got.UpdatedAt.Before(got.CreatedAt) {
		t.Errorf("UpdatedAt %v before CreatedAt %v", got.UpdatedAt, got.CreatedAt)
	}
}

func testSetAccessToken(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateSite(t, s, fullSite("a")) // created paused
	if err := s.SetAccessToken(ctx, "a", "EAAnew-token"); err != nil {
		t.Fatalf("SetAccessToken(a) = %v", err)
	}
	got := mustSite(t, s, "a")
	if got.AccessToken != "EAAnew-token" {
		t.Errorf("AccessToken = %q, want EAAnew-token", got.AccessToken)
	}
	if got.Paused || got.PauseReason != "" {
		t.Errorf("after SetAccessToken Paused, PauseReason = %v, %q; want false, \"\"", got.Paused, got.PauseReason)
	}
	// Clearing the token makes the site a sandbox site.
	if err := s.SetAccessToken(ctx, "a", ""); err != nil {
		t.Fatalf("SetAccessToken(a, \"\") = %v", err)
	}
	if got := mustSite(t, s, "a"); got.AccessToken != "" || !got.Sandbox() {
		t.Errorf("after clearing AccessToken = %q, Sandbox() = %v", got.AccessToken, got.Sandbox())
	}
}

func testSetAPIKeyHash(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateSite(t, s, fullSite("a"))
	if err := s.SetAPIKeyHash(ctx, "a", "rotated"); err != nil {
		t.Fatalf("SetAPIKeyHash(a) = %v", err)
	}
	got, err := s.SiteByAPIKeyHash(ctx, "rotated")
	if err != nil || got.Key != "a" {
		t.Fatalf("SiteByAPIKeyHash(rotated) = %v, %v; want site a", got, err)
	}
	_, err = s.SiteByAPIKeyHash(ctx, "hash-a")
	wantErr(t, "SiteByAPIKeyHash(old hash)", err, store.ErrNotFound)
}

func testSetPaused(t *testing.T, s store.Store) {
	ctx := t.Context()
	site := fullSite("a")
	site.Paused, site.PauseReason = false, ""
	mustCreateSite(t, s, site)
	if err := s.SetPaused(ctx, "a", true, "invalid token (190)"); err != nil {
		t.Fatalf("SetPaused(a, true) = %v", err)
	}
	if got := mustSite(t, s, "a"); !got.Paused || got.PauseReason != "invalid token (190)" {
		t.Errorf("after pause: Paused, PauseReason = %v, %q", got.Paused, got.PauseReason)
	}
	if got := mustSite(t, s, "a"); got.AccessToken != site.AccessToken {
		t.Errorf("pausing changed the token to %q", got.AccessToken)
	}
	if err := s.SetPaused(ctx, "a", false, "ignored"); err != nil {
		t.Fatalf("SetPaused(a, false) = %v", err)
	}
	if got := mustSite(t, s, "a"); got.Paused || got.PauseReason != "" {
		t.Errorf("after resume: Paused, PauseReason = %v, %q; want false, \"\"", got.Paused, got.PauseReason)
	}
}

func testDeleteSite(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreateSite(t, s, fullSite("a"))
	mustCreateSite(t, s, fullSite("b"))
	idsA := mustEnqueue(t, s, ev("a", "Purchase", "1"))
	idsB := mustEnqueue(t, s, ev("b", "Purchase", "1"))
	if err := s.RecordSandbox(ctx, "a", time.Now(), []byte("{}")); err != nil {
		t.Fatalf("RecordSandbox = %v", err)
	}

	if err := s.DeleteSite(ctx, "a"); err != nil {
		t.Fatalf("DeleteSite(a) = %v", err)
	}
	_, err := s.Site(ctx, "a")
	wantErr(t, "Site(a) after delete", err, store.ErrNotFound)
	_, err = s.Item(ctx, idsA[0])
	wantErr(t, "Item of deleted site", err, store.ErrNotFound)
	if recs, err := s.SandboxRecords(ctx, "a", 0, 10); err != nil || len(recs) != 0 {
		t.Errorf("SandboxRecords(a) after delete = %d, %v; want none", len(recs), err)
	}
	// Other sites keep their data.
	mustSite(t, s, "b")
	wantState(t, s, idsB[0], store.StatePending)
	// The dedup keys went with the site: a re-created site starts afresh.
	mustCreateSite(t, s, fullSite("a"))
	mustEnqueue(t, s, ev("a", "Purchase", "1"))
	if err := s.DeleteSite(ctx, "a"); err != nil {
		t.Fatalf("DeleteSite(a) again = %v", err)
	}
	wantErr(t, "DeleteSite(a) twice", s.DeleteSite(ctx, "a"), store.ErrNotFound)
}
