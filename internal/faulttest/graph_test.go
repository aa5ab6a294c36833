package faulttest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capitest"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/store"
)

// TestGraphFaultsLoseNothing runs load while the fake Graph API misbehaves
// in one way at a time, then checks that every acknowledged event arrived.
func TestGraphFaultsLoseNothing(t *testing.T) {
	cases := []struct {
		name    string
		timeout time.Duration // GraphTimeout; default 2s
		inject  func(g *capitest.Server)
		clear   func(g *capitest.Server)
	}{
		{name: "latency spikes", inject: func(g *capitest.Server) { g.SetLatency(400 * time.Millisecond) },
			clear: func(g *capitest.Server) { g.SetLatency(0) }},
		{name: "5xx storm", inject: func(g *capitest.Server) {
			g.SetFaultRate(1, capitest.Fault500, capitest.Fault503)
		}},
		{name: "rate limit codes", inject: func(g *capitest.Server) {
			g.SetRetryAfter(time.Second)
			g.SetFaultRate(0.7, capitest.FaultRateLimit, capitest.FaultThrottle613)
		}},
		{name: "connection resets", inject: func(g *capitest.Server) { g.SetFaultRate(0.6, capitest.FaultReset) }},
		{name: "hung connections", timeout: 300 * time.Millisecond, inject: func(g *capitest.Server) {
			g.SetFaultRate(0.6, capitest.FaultTimeout)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRelay(t, options{graphTimeout: tc.timeout})
			_, key := r.addSite(t, "10700", "tok")
			r.graph.SetSeed(42)
			// Phase 1: healthy; 2: faulty; 3: healthy again. Load runs
			// across all three.
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				r.load(t, key, "f", 4, 20, 1000, stop)
			}()
			time.Sleep(300 * time.Millisecond)
			tc.inject(r.graph)
			time.Sleep(1500 * time.Millisecond)
			if tc.clear != nil {
				tc.clear(r.graph)
			}
			r.graph.SetFaultRate(0)
			time.Sleep(300 * time.Millisecond)
			close(stop)
			<-done
			r.assertNoLoss(t, "10700", 30*time.Second)
			if st := r.graph.Stats(); tc.clear == nil && st.Faults == 0 {
				t.Fatalf("no fault was injected: %+v", st)
			}
		})
	}
}

// TestTokenRevokedMidRun: a revoked token pauses the site and keeps its
// queue; after a new token is set everything arrives.
func TestTokenRevokedMidRun(t *testing.T) {
	t.Parallel()
	r := newRelay(t, options{})
	site, key := r.addSite(t, "10701", "old-token")
	r.graph.SetToken("10701", "old-token")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.load(t, key, "tok", 2, 20, 1000, stop)
	}()
	time.Sleep(300 * time.Millisecond)
	r.graph.RevokeToken("10701")
	sharedtest.WaitFor(t, 10*time.Second, "site paused", func() bool {
		s, err := r.app.Store.Site(context.Background(), site.Key)
		return err == nil && s.Paused
	})
	// Ingest goes on while paused: wait for events to queue up.
	sharedtest.WaitFor(t, 10*time.Second, "events queued while paused", func() bool {
		depth, err := r.app.Store.Depth(context.Background())
		return err == nil && depth[site.Key] > 0
	})
	close(stop)
	<-done
	s, err := r.app.Store.Site(context.Background(), site.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.PauseReason, "set-token") {
		t.Errorf("pause reason does not say what to do: %q", s.PauseReason)
	}
	depth, err := r.app.Store.Depth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if depth[site.Key] == 0 {
		t.Fatalf("paused site has an empty queue; events acknowledged during the pause went where? depth %v", depth)
	}
	r.graph.SetToken("10701", "new-token")
	if err := r.app.Store.SetAccessToken(context.Background(), site.Key, "new-token"); err != nil {
		t.Fatal(err)
	}
	r.assertNoLoss(t, "10701", 30*time.Second)
	dead, err := r.app.Store.Items(context.Background(), site.Key, store.StateDead, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) > 0 {
		t.Fatalf("a token problem dead-lettered events: %+v", dead[0])
	}
}
