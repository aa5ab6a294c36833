package health_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/capitest"
	"github.com/capirelay/capirelay/internal/health"
	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/store"
	"github.com/capirelay/capirelay/internal/store/sqlite"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

type bundle struct {
	st      *sqlite.DB
	graph   *capitest.Server
	metrics *metrics.Metrics
	logs    *bytes.Buffer
	checker *health.TokenChecker
}

func setup(t *testing.T) *bundle {
	t.Helper()
	st := storetest.OpenSQLite(t)
	graph := capitest.New()
	t.Cleanup(graph.Close)
	b := &bundle{st: st, graph: graph, metrics: metrics.New(), logs: &bytes.Buffer{}}
	b.checker = &health.TokenChecker{
		Sites:   st,
		Graph:   &capi.Client{BaseURL: graph.URL, Version: "v25.0", Timeout: 2 * time.Second},
		Metrics: b.metrics,
		Logger:  slog.New(slog.NewTextHandler(b.logs, nil)),
		Now:     func() time.Time { return time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC) },
	}
	return b
}

func (b *bundle) addSite(t *testing.T, key, pixel, token string) {
	t.Helper()
	s := &store.Site{Key: key, Name: key, PixelID: pixel, AccessToken: token, APIKeyHash: "hash-" + key}
	store.SiteDefaults(s)
	if err := b.st.CreateSite(t.Context(), s); err != nil {
		t.Fatal(err)
	}
}

func (b *bundle) site(t *testing.T, key string) *store.Site {
	t.Helper()
	s, err := b.st.Site(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (b *bundle) tokenInvalid(key string) float64 {
	return testutil.ToFloat64(b.metrics.TokenInvalid.WithLabelValues(key))
}

const badToken = "EAAbadtoken-secret-1234567890"

func TestCheckAllPausesInvalidToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.graph.SetToken("111", "good")
	b.graph.SetToken("222", "good")
	b.addSite(t, "bad", "111", badToken)
	b.addSite(t, "good", "222", "good")
	b.addSite(t, "sandbox", "", "")

	if err := b.checker.CheckAll(t.Context()); err != nil {
		t.Fatalf("CheckAll = %v", err)
	}

	bad := b.site(t, "bad")
	if !bad.Paused {
		t.Fatal("site with a refused token is not paused")
	}
	for _, want := range []string{health.PauseReasonPrefix, "190", "capirelay site set-token --site bad --access-token"} {
		if !strings.Contains(bad.PauseReason, want) {
			t.Errorf("PauseReason = %q, want it to contain %q", bad.PauseReason, want)
		}
	}
	if got := b.tokenInvalid("bad"); got != 1 {
		t.Errorf("token_invalid{bad} = %v, want 1", got)
	}
	if good := b.site(t, "good"); good.Paused {
		t.Errorf("site with a working token paused: %q", good.PauseReason)
	}
	if got := b.tokenInvalid("good"); got != 0 {
		t.Errorf("token_invalid{good} = %v, want 0", got)
	}
	logs := b.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "site=bad") {
		t.Errorf("no warning logged for the bad site:\n%s", logs)
	}
	if strings.Contains(logs, badToken) || strings.Contains(bad.PauseReason, badToken) {
		t.Error("the token leaked into logs or the pause reason")
	}
	// Sandbox sites cost no Graph call; the two others one each.
	if n := b.graph.Stats().Requests; n != 2 {
		t.Errorf("Graph requests = %d, want 2", n)
	}
}

func TestCheckAllTransientChangesNothing(t *testing.T) {
	t.Parallel()
	for _, f := range []capitest.Fault{capitest.Fault500, capitest.FaultRateLimit, capitest.Fault503} {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.addSite(t, "s", "111", "tok")
			b.graph.FailNext(1, f)
			if err := b.checker.CheckAll(t.Context()); err != nil {
				t.Fatalf("CheckAll = %v", err)
			}
			if s := b.site(t, "s"); s.Paused {
				t.Errorf("paused on a transient failure: %q", s.PauseReason)
			}
			if got := b.tokenInvalid("s"); got != 0 {
				t.Errorf("token_invalid = %v, want 0", got)
			}
		})
	}
}

func TestCheckAllResumesOnlyItsOwnPause(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.graph.SetToken("111", "good")
	b.addSite(t, "own", "111", "good")
	b.addSite(t, "other", "111", "good")
	ctx := t.Context()
	if err := b.st.SetPaused(ctx, "own", true, health.PauseReasonPrefix+"Meta refused the access token"); err != nil {
		t.Fatal(err)
	}
	if err := b.st.SetPaused(ctx, "other", true, "Meta refused the access token or permissions: code 200"); err != nil {
		t.Fatal(err)
	}
	if err := b.checker.CheckAll(ctx); err != nil {
		t.Fatalf("CheckAll = %v", err)
	}
	if s := b.site(t, "own"); s.Paused {
		t.Error("the checker's own pause was not lifted once the token worked")
	}
	if s := b.site(t, "other"); !s.Paused {
		t.Error("a pause from the dispatcher was lifted by the token checker")
	}
}

func TestRunChecksAtStart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.graph.RevokeToken("111")
	b.addSite(t, "s", "111", "tok")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.checker.Run(ctx)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !b.site(t, "s").Paused {
		if time.Now().After(deadline) {
			t.Fatal("Run did not pause the site at start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}
