package sqlite

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// The outbox, by concern: this file is the group commit (Enqueue, the
// writer that batches callers into one transaction, the syncer that fsyncs
// the WAL before answering them); outbox_insert.go builds a group's
// statements (dedup, inserts); outbox_items.go reads items and due sites;
// outbox_held.go releases consent-held and orphaned items; outbox_prune.go
// deletes delivered rows and old dedup keys; outbox_sandbox.go keeps what
// the sandbox destination received.

type enqueueReq struct {
	ctx   context.Context
	evs   []store.NewEvent // payloads sealed
	fresh []*recentItem    // for claims (recent.go); nil: not kept
	res   []store.EnqueueResult
	err   error
	done  chan struct{}
}

// maxGroup bounds the events one group-commit transaction takes.
const maxGroup = 20000

// SealPayload seals an outbox payload as Enqueue stores it.
func (db *DB) SealPayload(plaintext []byte) []byte {
	return db.box.Seal(plaintext, []byte(store.PayloadAD))
}

// Enqueue dedups and stores evs; it returns once the transaction holding them
// has committed durably. Concurrent callers share transactions.
func (db *DB) Enqueue(ctx context.Context, evs []store.NewEvent) ([]store.EnqueueResult, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	// Seal outside the writer so that work runs in parallel.
	sealed := make([]store.NewEvent, len(evs))
	fresh := make([]*recentItem, len(evs))
	for i, ev := range evs {
		if !ev.Sealed {
			ev.Payload = db.SealPayload(ev.Payload)
		}
		sealed[i] = ev
		fresh[i] = db.recent.newItem(&sealed[i])
	}
	r := &enqueueReq{ctx: ctx, evs: sealed, fresh: fresh, done: make(chan struct{})}
	select {
	case db.reqs <- r:
	case <-db.stop:
		return nil, fmt.Errorf("enqueue: %w: store closed", store.ErrUnavailable)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Never abandon a request the writer may be committing: its result
	// says whether it was stored. If the writer has exited (Close raced
	// this send), nobody will.
	select {
	case <-r.done:
	case <-db.done:
		select {
		case <-r.done:
		default:
			return nil, fmt.Errorf("enqueue: %w: store closed", store.ErrUnavailable)
		}
	}
	return r.res, r.err
}

// The writer commits a group with synchronous=NORMAL, which writes the WAL
// without waiting for the disk, and hands the group to the syncer; the
// syncer fsyncs the WAL and only then answers the group's callers. So the
// next group is built while the disk flushes the last one, and one fsync
// covers every group committed before it. An answered event is on disk: a
// checkpoint (which could let the WAL be rewritten) syncs the WAL first.
func (db *DB) writer() {
	synced := make(chan []*enqueueReq, 64)
	syncDone := make(chan struct{})
	var syncing atomic.Int64       // groups handed to the syncer, not yet answered
	idle := make(chan struct{}, 1) // the syncer answered a group
	go db.syncer(synced, syncDone, &syncing, idle)
	defer func() {
		close(synced)
		<-syncDone
		close(db.done)
	}()
	commit := func(batch []*enqueueReq) {
		if live := db.commitGroup(batch); len(live) > 0 {
			syncing.Add(1)
			synced <- live
		}
	}
	outcomes := 0 // Complete calls recorded since the last group
	for {
		// Outcomes go first: each holds up a batch of delivery (its
		// worker waits for it before claiming the next), while ingest's
		// callers only wait for a group that is bigger a moment later.
		// Each is one short transaction; past maxOutcomesFirst in a row
		// (many sites delivering at once) a waiting group goes next.
		if outcomes < maxOutcomesFirst || len(db.reqs) == 0 {
			select {
			case c := <-db.completes:
				db.complete(c)
				outcomes++
				continue
			default:
			}
		}
		var batch []*enqueueReq
		select {
		case <-db.stop:
			// Drain what is already queued so no caller waits forever.
			for {
				select {
				case r := <-db.reqs:
					commit([]*enqueueReq{r})
				case c := <-db.completes:
					db.complete(c)
				default:
					return
				}
			}
		case r := <-db.reqs:
			batch = append(batch, r)
		default:
			// Nothing to write but outcomes, or nothing at all yet.
			select {
			case r := <-db.reqs:
				batch = append(batch, r)
			case c := <-db.completes:
				db.complete(c)
				outcomes++
				continue
			case <-db.stop:
				continue // the select above sees it and drains
			}
		}
		outcomes = 0
		n := len(batch[0].evs)
	gather:
		for n < maxGroup {
			select {
			case r := <-db.reqs:
				batch = append(batch, r)
				n += len(r.evs)
				continue
			default:
			}
			// While an fsync runs, a small group waits for it (or for
			// more events): committing it now would only add a commit's
			// fixed cost, since its callers wait for the next fsync anyway.
			if n >= minPipelined || syncing.Load() == 0 {
				break gather
			}
			select {
			case r := <-db.reqs:
				batch = append(batch, r)
				n += len(r.evs)
			case c := <-db.completes:
				db.complete(c)
			case <-idle:
			case <-db.stop:
				break gather
			}
		}
		commit(batch)
	}
}

// maxOutcomesFirst is how many Complete calls in a row the writer records
// before a waiting group of ingest. A site's batches in flight (up to the
// dispatcher's Parallel, 4) come back faster than the writer groups
// ingest: in process, realistic load, a bound of 4 let delivery fall to 78 %
// of ingest, 8 kept it at 91–94 % (unbounded: 93–96 %), while many sites
// delivering at once hold ingest up for at most 8 short transactions.
const maxOutcomesFirst = 8

// minPipelined is the smallest group committed while the previous one is
// still being synced.
const minPipelined = 1000

// commitGroup stores a group. Callers whose context ended, or whose group
// failed, are answered at once; the committed ones are returned, to be
// answered once the WAL is synced.
func (db *DB) commitGroup(batch []*enqueueReq) []*enqueueReq {
	live := batch[:0:0]
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.err = r.ctx.Err()
			close(r.done)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return nil
	}
	start := time.Now()
	if err := db.insertGroup(live); err != nil {
		for _, r := range live {
			r.res, r.err = nil, fmt.Errorf("enqueue: %w", err)
			close(r.done)
		}
		return nil
	}
	if o := db.observer.Load(); o != nil && o.Commit != nil {
		n := 0
		for _, r := range live {
			n += len(r.evs)
		}
		o.Commit(n, time.Since(start))
	}
	// Committed: the sealed payloads (and the strings that hold their
	// request bodies) need not wait for the fsync in memory.
	for _, r := range live {
		r.evs, r.fresh = nil, nil
	}
	return live
}

// syncer answers committed groups once an fsync of the WAL that started
// after their commit has returned.
func (db *DB) syncer(in <-chan []*enqueueReq, done chan<- struct{}, syncing *atomic.Int64, idle chan<- struct{}) {
	defer close(done)
	var wal *os.File
	defer func() {
		if wal != nil {
			wal.Close()
		}
	}()
	for first := range in {
		groups := [][]*enqueueReq{first}
	more:
		for {
			select {
			case g, ok := <-in:
				if !ok {
					break more
				}
				groups = append(groups, g)
			default:
				break more
			}
		}
		var err error
		if db.syncHook != nil {
			err = db.syncHook()
		}
		if err == nil {
			start := time.Now()
			wal, err = db.syncWAL(wal)
			if o := db.observer.Load(); o != nil && o.Sync != nil && err == nil {
				o.Sync(time.Since(start))
			}
		}
		for _, g := range groups {
			for _, r := range g {
				if err != nil {
					r.res, r.err = nil, fmt.Errorf("enqueue: %w: sync the WAL: %v", store.ErrUnavailable, err)
				}
				close(r.done)
			}
		}
		syncing.Add(-int64(len(groups)))
		select {
		case idle <- struct{}{}:
		default:
		}
	}
}

// syncWAL fsyncs the WAL file, (re)opening it if needed.
func (db *DB) syncWAL(f *os.File) (*os.File, error) {
	path := db.path + "-wal"
	if f != nil {
		// SQLite keeps the file while connections are open; if it was
		// replaced anyway, sync the new one.
		a, errA := f.Stat()
		b, errB := os.Stat(path)
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			f.Close()
			f = nil
		}
	}
	if f == nil {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
	}
	if err := datasync(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
