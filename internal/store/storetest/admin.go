package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// testAdminTokens: a token keeps its scope and expiry; revoking keeps it
// listed with the first revocation time; only an active token's use is
// recorded.
func testAdminTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	exp := now.Add(90 * 24 * time.Hour)
	ro := &store.AdminToken{Name: "grafana", Hash: "h-ro", Scope: "read", ExpiresAt: exp}
	def := &store.AdminToken{Name: "ci", Hash: "h-def"}
	for _, tok := range []*store.AdminToken{ro, def} {
		if err := s.CreateAdminToken(ctx, tok); err != nil || tok.ID == 0 {
			t.Fatalf("CreateAdminToken(%s) = %v, id %d", tok.Name, err, tok.ID)
		}
	}
	got, err := s.AdminTokenByHash(ctx, "h-ro", now)
	if err != nil || got.Scope != "read" || !sameTime(got.ExpiresAt, exp) || !got.RevokedAt.IsZero() || !got.Active(now) {
		t.Fatalf("AdminTokenByHash = %+v, %v; want scope read, expiring %v, active", got, err, exp)
	}
	if got.Active(exp) {
		t.Error("a token is active at its expiry")
	}
	if got, _ := s.AdminTokenByHash(ctx, "h-def", now); got == nil || got.Scope != "write" || !got.ExpiresAt.IsZero() {
		t.Fatalf("default token = %+v; want scope write, no expiry", got)
	}
	if err := s.RevokeAdminToken(ctx, ro.ID, now); err != nil {
		t.Fatalf("RevokeAdminToken = %v", err)
	}
	if err := s.RevokeAdminToken(ctx, ro.ID, now.Add(time.Hour)); err != nil {
		t.Fatalf("RevokeAdminToken again = %v", err)
	}
	if err := s.RevokeAdminToken(ctx, 999_999, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeAdminToken(unknown) = %v, want ErrNotFound", err)
	}
	later := now.Add(2 * time.Hour)
	got, err = s.AdminTokenByHash(ctx, "h-ro", later)
	if err != nil || !sameTime(got.RevokedAt, now) || got.Active(later) {
		t.Fatalf("revoked token = %+v, %v; want revoked at %v (the first time), not active", got, err, now)
	}
	if !sameTime(got.LastUsedAt, now) {
		t.Errorf("a revoked token's use was recorded: last used %v", got.LastUsedAt)
	}
	list, err := s.ListAdminTokens(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "grafana" || list[0].RevokedAt.IsZero() || !list[1].RevokedAt.IsZero() {
		t.Fatalf("ListAdminTokens = %+v, %v; want both, the first revoked", list, err)
	}
}
