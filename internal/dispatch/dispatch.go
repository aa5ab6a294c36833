// Package dispatch delivers the outbox: per site, it claims up to 1000 due
// events, sends them to the site's destination (Meta's Graph API or the
// local sandbox) and records an outcome for each: delivered, retry at a time
// (exponential backoff with full jitter), or dead with a readable reason. A
// batch Meta rejects for bad events is bisected so only the bad events are
// dead-lettered; an invalid token pauses that site and keeps its queue. One
// site's trouble never slows another: each due site has its own worker,
// with up to Parallel batches in flight while its delivery lags.
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capirelay/capirelay/internal/capi"
	"github.com/capirelay/capirelay/internal/metrics"
	"github.com/capirelay/capirelay/internal/store"
)

// Batch is what one request to a destination carries.
type Batch struct {
	Events        []json.RawMessage
	TestEventCode string
	// Params are the requests' own top-level parameters
	// (capi.RequestParams, encoded), the same for every event of a batch.
	Params string
}

// Destination delivers one batch for a site. Errors should be *capi.Error
// (or network errors) so capi.Classify can tell what to do.
type Destination interface {
	Send(ctx context.Context, site *store.Site, b *Batch) (*capi.Response, error)
}

// Store is what the dispatcher needs from storage.
type Store interface {
	Site(ctx context.Context, key string) (*store.Site, error)
	SetPaused(ctx context.Context, key string, paused bool, reason string) error
	Claim(ctx context.Context, siteKey, owner string, limit int, now time.Time, lease time.Duration) ([]store.Item, error)
	Complete(ctx context.Context, owner string, outs []store.Outcome, now time.Time) error
	DueSites(ctx context.Context, now time.Time) ([]string, time.Time, error)
	Release(ctx context.Context, owner string) error
	Depth(ctx context.Context) (map[string]int, error)
}

// Defaults.
const (
	DefaultBatchSize   = capi.MaxEventsPerRequest
	DefaultParallel    = 4
	DefaultLag         = 2 * time.Second
	DefaultLinger      = time.Second
	DefaultLease       = 2 * time.Minute
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = 5 * time.Minute
	// ExpiryMargin: an event this close to Meta's 7-day limit is not sent
	// (it would be rejected on arrival) but dead-lettered as expired.
	ExpiryMargin = 2 * time.Minute
)

// Dispatcher runs delivery. Configure the exported fields before Start.
type Dispatcher struct {
	Store   Store
	Meta    Destination // sites with a pixel id and access token
	Sandbox Destination // sites without
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	Owner   string // lease owner; unique per process

	BatchSize   int
	Parallel    int           // batches of one site in flight at once while it lags; default DefaultParallel
	Lag         time.Duration // how long a claimed event may have waited before more batches go at once; default DefaultLag
	Linger      time.Duration
	Lease       time.Duration
	BackoffBase time.Duration // see Backoff.Next
	BackoffMax  time.Duration
	Now         func() time.Time
	Rand        func() float64 // in [0,1); the jitter Backoff.Next is given

	mu       sync.Mutex
	running  map[string]bool
	queued   map[string]int  // events queued per site since its last drain started (Notify)
	ctx      context.Context // the loop's, for drains Notify starts
	stopping bool
	sites    sync.Map // site key → *sync.Mutex held across a RunOnce
	wg       sync.WaitGroup
	cancel   context.CancelFunc
	done     chan struct{}
	stopped  sync.Once
}

func (d *Dispatcher) defaults() {
	if d.BatchSize <= 0 || d.BatchSize > capi.MaxEventsPerRequest {
		d.BatchSize = DefaultBatchSize
	}
	if d.Parallel <= 0 {
		d.Parallel = DefaultParallel
	}
	if d.Lag <= 0 {
		d.Lag = DefaultLag
	}
	if d.Linger <= 0 {
		d.Linger = DefaultLinger
	}
	if d.Lease <= 0 {
		d.Lease = DefaultLease
	}
	if d.BackoffBase <= 0 {
		d.BackoffBase = DefaultBackoffBase
	}
	if d.BackoffMax <= 0 {
		d.BackoffMax = DefaultBackoffMax
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Rand == nil {
		d.Rand = rand.Float64
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Owner == "" {
		d.Owner = fmt.Sprintf("node-%x", rand.Uint64())
	}
}

// Start begins delivering in the background until Stop.
func (d *Dispatcher) Start(ctx context.Context) {
	d.defaults()
	d.done = make(chan struct{})
	ctx, d.cancel = context.WithCancel(ctx)
	d.mu.Lock() // Notify may already be called
	d.running = map[string]bool{}
	d.queued = map[string]int{}
	d.ctx = ctx
	d.mu.Unlock()
	go d.loop(ctx)
}

// Notify tells the dispatcher that a site queued n events. Once a batch's
// worth has queued since the site's last drain started, the site is
// drained at once instead of at the next linger tick: batches go out as
// they fill, spread over the second, rather than all at once each tick,
// which held up ingest (the store's writer and the CPUs) in bursts.
func (d *Dispatcher) Notify(site string, n int) {
	d.mu.Lock()
	if d.queued == nil { // not started
		d.mu.Unlock()
		return
	}
	d.queued[site] += n
	full := d.queued[site] >= d.BatchSize
	d.mu.Unlock()
	if full {
		d.startDrain(site)
	}
}

// Stop finishes the batches in flight, gives back unstarted claims and
// returns. It is idempotent.
func (d *Dispatcher) Stop() {
	d.stopped.Do(func() {
		if d.cancel == nil {
			return
		}
		d.cancel()
		<-d.done
		d.mu.Lock()
		d.stopping = true // no drain starts after this
		d.mu.Unlock()
		d.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Store.Release(ctx, d.Owner)
	})
}

func (d *Dispatcher) loop(ctx context.Context) {
	defer close(d.done)
	t := time.NewTicker(d.Linger)
	defer t.Stop()
	gauge := time.NewTicker(5 * time.Second)
	defer gauge.Stop()
	d.tick(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-gauge.C:
			d.updateDepth(ctx)
			continue
		}
		d.tick(ctx)
	}
}

func (d *Dispatcher) tick(ctx context.Context) {
	due, _, err := d.Store.DueSites(ctx, d.Now())
	if err != nil {
		if ctx.Err() == nil {
			d.Logger.Error("list due sites", "err", err)
		}
		return
	}
	for _, key := range due {
		d.startDrain(key)
	}
}

// startDrain drains a site on its own goroutine unless one already does.
func (d *Dispatcher) startDrain(key string) {
	d.mu.Lock()
	if d.running[key] || d.stopping || d.ctx.Err() != nil {
		d.mu.Unlock()
		return
	}
	d.running[key] = true
	d.queued[key] = 0
	d.wg.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.wg.Done()
		defer func() {
			d.mu.Lock()
			delete(d.running, key)
			d.mu.Unlock()
		}()
		d.drain(d.ctx, key)
	}()
}

func (d *Dispatcher) updateDepth(ctx context.Context) {
	if d.Metrics == nil {
		return
	}
	depth, err := d.Store.Depth(ctx)
	if err != nil {
		return
	}
	d.Metrics.QueueDepth.Reset()
	for k, n := range depth {
		d.Metrics.QueueDepth.WithLabelValues(k).Set(float64(n))
	}
}

// drain sends batches for one site until nothing is due or it is paused.
// One batch at a time while delivery keeps up; while batches come back
// full of events that waited longer than d.Lag (delivery is behind), up to
// d.Parallel batches of the site are in flight at once. More batches at
// once cost ingest CPU and the store's writer, so a relay that keeps up
// with one does not pay for them. A batch's round trip to Meta takes hundreds of milliseconds, and a
// busy relay's CPUs are shared with ingest: one batch at a time capped a
// pixel at a few thousand events/s however long its queue. Items a batch
// holds are leased, so the batches in flight never share an event.
func (d *Dispatcher) drain(ctx context.Context, key string) {
	var wg sync.WaitGroup
	var active atomic.Int32
	var worker func()
	// more starts another worker when a claim shows delivery behind, so a
	// backlog has Parallel batches in flight as soon as it is seen.
	more := func() {
		if a := active.Load(); int(a) < d.Parallel && active.CompareAndSwap(a, a+1) {
			wg.Add(1)
			go worker()
		}
	}
	worker = func() {
		defer wg.Done()
		defer active.Add(-1)
		for ctx.Err() == nil {
			n, err := d.runBatch(ctx, key, more)
			if err != nil {
				if ctx.Err() == nil {
					d.Logger.Error("dispatch", "site", key, "err", err)
				}
				return
			}
			if n < d.BatchSize {
				return
			}
		}
	}
	active.Add(1)
	wg.Add(1)
	worker()
	wg.Wait()
}

// RunOnce claims and delivers one batch of a site; it returns how many
// events it claimed. Calls of RunOnce for one site run one at a time: a
// second caller waits for the batch in flight (the drain loop runs its own
// batches, up to Parallel at once).
func (d *Dispatcher) RunOnce(ctx context.Context, key string) (int, error) {
	mu, ok := d.sites.Load(key)
	if !ok {
		mu, _ = d.sites.LoadOrStore(key, new(sync.Mutex))
	}
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	return d.runBatch(ctx, key, nil)
}

// runBatch claims and delivers one batch of a site; full, if not nil, is
// called before the batch is sent when the claim came back full and its
// oldest event has waited longer than d.Lag: delivery is behind.
func (d *Dispatcher) runBatch(ctx context.Context, key string, full func()) (int, error) {
	site, err := d.Store.Site(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if d.Metrics != nil {
		d.Metrics.SitePaused.WithLabelValues(key).Set(b2f(site.Paused))
	}
	if site.Paused {
		return 0, nil
	}
	now := d.Now()
	items, err := d.Store.Claim(ctx, key, d.Owner, d.BatchSize, now, d.Lease)
	if err != nil || len(items) == 0 {
		return 0, err
	}
	if full != nil && len(items) == d.BatchSize && now.Sub(oldest(items)) > d.Lag {
		full()
	}
	// The batch runs to completion even if ctx is cancelled (shutdown
	// finishes the current batch), bounded by the request timeout.
	sendCtx := context.WithoutCancel(ctx)
	outs := d.deliver(sendCtx, site, items)
	if err := d.Store.Complete(sendCtx, d.Owner, outs, d.Now()); err != nil {
		return len(items), fmt.Errorf("record outcomes: %w", err)
	}
	d.count(key, outs)
	return len(items), nil
}

func (d *Dispatcher) count(key string, outs []store.Outcome) {
	if d.Metrics == nil {
		return
	}
	var del, retry int
	for _, o := range outs {
		switch o.Kind {
		case store.OutcomeDelivered:
			del++
		case store.OutcomeRetry:
			retry++
		case store.OutcomeDead:
			d.Metrics.DeadLettered.WithLabelValues(key, string(o.Class)).Inc()
		}
	}
	d.Metrics.Delivered.WithLabelValues(key).Add(float64(del))
	d.Metrics.Retried.WithLabelValues(key).Add(float64(retry))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// oldest is the earliest creation time of items.
func oldest(items []store.Item) time.Time {
	t := items[0].CreatedAt
	for _, it := range items[1:] {
		if it.CreatedAt.Before(t) {
			t = it.CreatedAt
		}
	}
	return t
}
