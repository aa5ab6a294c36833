package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capirelay/capirelay/internal/capitest"
	"github.com/capirelay/capirelay/internal/store/storetest"
)

// TestTwoNodesOnePostgresKill9: two serve processes share one PostgreSQL;
// events go to both; one is killed with kill -9 mid-load. Every
// acknowledged event is delivered; the claims of the dead node come back
// after its lease, so duplicates are bounded by the batches it had in
// flight; the live nodes never send one event twice.
func TestTwoNodesOnePostgresKill9(t *testing.T) {
	dbURL := storetest.PostgresDatabase(t)
	graph := capitest.New()
	defer graph.Close()
	graph.SetLatency(20 * time.Millisecond)
	key := make([]byte, 32)
	rand.Read(key)
	envFor := func() []string {
		return append(relayEnv(t.TempDir(), graph.URL), "CAPIRELAY_DATABASE_URL="+dbURL,
			"CAPIRELAY_SECRET_KEY="+base64.StdEncoding.EncodeToString(key), "CAPIRELAY_DISPATCH_LEASE=3s", "CAPIRELAY_DEMO=false")
	}
	envA, envB := envFor(), envFor()
	_, apiKey := addSite(t, envA, "104242", "tok")
	a := startServe(t, envA)
	b := startServe(t, envB)

	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var aDead sync.WaitGroup
	aDead.Add(1)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				node := b
				if w%2 == 0 {
					node = a
				}
				evs := make([]map[string]any, 50)
				ids := make([]string, len(evs))
				for i := range evs {
					ids[i] = fmt.Sprintf("w%d-%d-%d", w, n, i)
					evs[i] = map[string]any{"event_name": "Lead", "event_time": time.Now().Unix(), "event_id": ids[i],
						"action_source": "system_generated", "user_data": map[string]any{"external_id": ids[i]}}
				}
				code, _, err := postEvents(node.addr, apiKey, evs)
				if err != nil || code != 200 {
					if node == a {
						time.Sleep(20 * time.Millisecond)
						continue // node A is gone: not acknowledged
					}
					t.Errorf("node B: %d %v", code, err)
					return
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				mu.Unlock()
			}
		}(w)
	}
	waitAcked(t, &mu, acked, 2000)
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	// Node B goes on alone for a while.
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	waitAcked(t, &mu, acked, before+1000)
	cancel()
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n == 0 {
		t.Fatal("nothing was acknowledged")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := graph.EventsByID("104242")
		missing := 0
		for id := range acked {
			if len(got[id]) == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events never delivered\nnode B log:\n%s", missing, n, b.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	dups := 0
	for _, copies := range graph.EventsByID("104242") {
		if len(copies) > 2 {
			t.Fatalf("an event was delivered %d times", len(copies))
		}
		dups += len(copies) - 1
	}
	// Only what node A had in flight when it died may go twice: at most one
	// batch of 1000 (it drains one batch at a time per site).
	if dups > 1000 {
		t.Fatalf("%d duplicates, more than the one batch node A had in flight", dups)
	}
	t.Logf("%d acknowledged events delivered by two nodes, %d sent twice after the kill", n, dups)
}
