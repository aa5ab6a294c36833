package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"
)

// queue starts a goroutine that enters g for site and, once in, records
// name in order and leaves when release is closed. It returns once the
// goroutine waits in the gate.
func queue(t *testing.T, g *Gate, site, name string, order *[]string, mu *sync.Mutex, wg *sync.WaitGroup, release <-chan struct{}) {
	t.Helper()
	want := g.waiting.Load() + 1
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := g.Enter(context.Background(), site); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		*order = append(*order, name)
		mu.Unlock()
		<-release
		g.Leave()
	}()
	for g.waiting.Load() != want {
		time.Sleep(time.Millisecond)
	}
}

// TestGateTakesSitesInTurn: a site with a backlog of waiting requests
// does not keep another site's request waiting behind all of it.
func TestGateTakesSitesInTurn(t *testing.T) {
	g := NewGate(1)
	if err := g.Enter(context.Background(), "attacker"); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	release := make(chan struct{})
	close(release) // each leaves as soon as it is in
	hold := make(chan struct{})
	queue(t, g, "attacker", "a1", &order, &mu, &wg, hold)
	for _, n := range []string{"a2", "a3", "a4", "a5"} {
		queue(t, g, "attacker", n, &order, &mu, &wg, release)
	}
	queue(t, g, "victim", "v1", &order, &mu, &wg, release)
	g.Leave() // the first holder is done: a1 is in and holds
	waitLen := func(n int) {
		for {
			mu.Lock()
			l := len(order)
			mu.Unlock()
			if l >= n {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitLen(1)
	close(hold)
	wg.Wait()
	want := []string{"a1", "v1", "a2", "a3", "a4", "a5"}
	if len(order) != len(want) {
		t.Fatalf("order %v", order)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("slots went to %v, want %v (the victim's turn right after one attacker request)", order, want)
		}
	}
	// Every slot came back.
	for range 1 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := g.Enter(ctx, "x"); err != nil {
			t.Fatalf("slot lost: %v", err)
		}
		cancel()
	}
}

// TestGateYieldHandsOver: a holder past its quantum hands the slot to a
// waiting request of another site and gets it back before its own site's
// other requests; with only its own site waiting it keeps it.
func TestGateYieldHandsOver(t *testing.T) {
	g := NewGate(1)
	g.quantum = 0
	ctx := context.Background()
	if err := g.Enter(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	release := make(chan struct{})
	close(release)
	queue(t, g, "big", "big2", &order, &mu, &wg, release)
	since := time.Now().Add(-time.Second)
	g.Yield("big", &since) // only its own site waits: keeps the slot
	mu.Lock()
	if len(order) != 0 {
		t.Fatalf("yielded to its own site: %v", order)
	}
	mu.Unlock()
	queue(t, g, "small", "small1", &order, &mu, &wg, release)
	g.Yield("big", &since)
	mu.Lock()
	got := append([]string(nil), order...)
	mu.Unlock()
	if len(got) != 1 || got[0] != "small1" {
		t.Fatalf("after Yield the slot went to %v, want small1 first and the yielder back before big2", got)
	}
	if time.Since(since) > time.Minute {
		t.Error("Yield did not restart since")
	}
	g.Leave()
	wg.Wait()
	if len(order) != 2 || order[1] != "big2" {
		t.Fatalf("order %v", order)
	}
}

// TestGateEnterCancelled: a waiter whose context ends leaves the queue and
// loses no slot.
func TestGateEnterCancelled(t *testing.T) {
	g := NewGate(1)
	if err := g.Enter(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.Enter(ctx, "b"); err == nil {
		t.Fatal("entered a full gate")
	}
	if g.waiting.Load() != 0 || len(g.ring) != 0 || len(g.queues) != 0 {
		t.Fatalf("a cancelled waiter stayed queued: %d %v", g.waiting.Load(), g.ring)
	}
	g.Leave()
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if err := g.Enter(ctx2, "c"); err != nil {
		t.Fatalf("slot lost: %v", err)
	}
}
