package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Gate bounds how many goroutines do CPU-bound ingest work at once. With
// dozens of requests decoding and hashing together, the single store
// writer waited behind them in the run queues and every commit took
// several times its CPU cost; with about one request per CPU, the writer
// runs as soon as it is ready and throughput goes up. Waiting requests hold
// only their raw bodies. A nil *Gate admits everyone.
//
// The slots are shared fairly between sites: waiting requests queue per
// site, and a freed slot goes to the sites in turn, so one api key sending
// many large requests delays another site's request by about one turn, not
// by its whole backlog. A turn is short: a request holding a slot hands it
// over between events (Yield) once it has worked for a quantum while
// another site waits.
type Gate struct {
	mu     sync.Mutex
	free   int
	queues map[string][]*waiter // per site, in arrival order
	ring   []string             // sites with waiters, next turn first
	// waiting counts the waiters, for Yield's check without the lock.
	waiting atomic.Int32
	quantum time.Duration
}

type waiter struct {
	ready   chan struct{}
	granted bool // under Gate.mu
}

// DefaultQuantum is how long a request keeps its slot while other sites
// wait: a few hundred ordinary events.
const DefaultQuantum = 2 * time.Millisecond

// NewGate admits n at once.
func NewGate(n int) *Gate {
	return &Gate{free: max(n, 1), queues: map[string][]*waiter{}, quantum: DefaultQuantum}
}

// Waiting is how many requests wait for a slot now (0 for a nil Gate).
func (g *Gate) Waiting() int {
	if g == nil {
		return 0
	}
	return int(g.waiting.Load())
}

// Enter waits for a slot for a request of site.
func (g *Gate) Enter(ctx context.Context, site string) error {
	if g == nil {
		return nil
	}
	w := g.enqueue(site, false)
	if w == nil {
		return nil
	}
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	if w.granted { // the slot came as ctx ended: pass it on
		g.mu.Unlock()
		g.Leave()
		return ctx.Err()
	}
	q := g.queues[site]
	for i, x := range q {
		if x == w {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	g.setQueue(site, q)
	g.waiting.Add(-1)
	g.mu.Unlock()
	return ctx.Err()
}

// enqueue takes a free slot (nil) or queues a waiter for site, at the
// front of its queue when first.
func (g *Gate) enqueue(site string, first bool) *waiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.free > 0 { // slots are free only while no one waits
		g.free--
		return nil
	}
	return g.enqueueLocked(site, first)
}

// enqueueLocked queues a waiter for site; g.mu is held.
func (g *Gate) enqueueLocked(site string, first bool) *waiter {
	w := &waiter{ready: make(chan struct{})}
	q := g.queues[site]
	if len(q) == 0 {
		g.ring = append(g.ring, site)
	}
	if first {
		q = append([]*waiter{w}, q...)
	} else {
		q = append(q, w)
	}
	g.queues[site] = q
	g.waiting.Add(1)
	return w
}

// setQueue stores site's queue, taking the site out of the ring when it
// is empty. g.mu is held.
func (g *Gate) setQueue(site string, q []*waiter) {
	if len(q) > 0 {
		g.queues[site] = q
		return
	}
	delete(g.queues, site)
	for i, s := range g.ring {
		if s == site {
			g.ring = append(g.ring[:i:i], g.ring[i+1:]...)
			break
		}
	}
}

// Leave frees a slot taken by Enter: it goes to the first waiter of the
// site whose turn it is, and that site's turn comes again after the others'.
func (g *Gate) Leave() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.handOverLocked("")
}

// handOverLocked frees a slot as Leave does, passing over the site skip
// while another site waits; g.mu is held.
func (g *Gate) handOverLocked(skip string) {
	if len(g.ring) == 0 {
		g.free++
		return
	}
	i := 0
	if g.ring[0] == skip && len(g.ring) > 1 {
		i = 1
	}
	site := g.ring[i]
	q := g.queues[site]
	w := q[0]
	rest := append(g.ring[:i:i], g.ring[i+1:]...)
	if len(q) == 1 {
		delete(g.queues, site)
		g.ring = rest
	} else {
		g.queues[site] = q[1:]
		g.ring = append(rest, site)
	}
	g.waiting.Add(-1)
	w.granted = true
	close(w.ready)
}

// Yield is for a request of site holding a slot since *since, between
// units of its work: once it has held the slot for a quantum while
// requests of other sites wait, it hands the slot over and waits for it
// again (ahead of its own site's other requests), and *since restarts.
// It returns holding the slot; it is cheap when no one waits.
func (g *Gate) Yield(site string, since *time.Time) {
	if g == nil || g.waiting.Load() == 0 {
		return
	}
	if time.Since(*since) < g.quantum {
		return
	}
	g.mu.Lock()
	if len(g.ring) == 0 || len(g.ring) == 1 && g.ring[0] == site {
		g.mu.Unlock() // only its own site waits
		return
	}
	// In one step, so that no request of its own site slips in between.
	g.handOverLocked(site)
	w := g.enqueueLocked(site, true)
	g.mu.Unlock()
	// Not cancellable: the caller holds half-done work and expects the
	// slot back; its wait is about one turn of each waiting site.
	<-w.ready
	*since = time.Now()
}
