package sqlite

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// recent keeps the items the writer just committed, so that a claim of
// them reads only their ids from the file: reading a batch's rows and
// payloads back was most of a claim's work, though the writer had every
// byte of it moments before. Payloads are kept sealed, as stored (Seal
// made each its own slice), and opened by the claim.
//
// The file stays the truth: a claim asks it which items are due, takes
// from here those it finds, and reads the rest. An entry is only ever an
// item exactly as inserted (pending, first attempt), so it is dropped when
// claimed; an item due again later (a retry, an expired lease) has changed
// and is read from the file. Once the byte budget is used, new items are
// not kept: a dispatcher that lags claims the oldest items first, so the
// kept ones are claimed in their turn and the newer ones are read from the
// file, as they were before; nothing is copied for nothing meanwhile.
// Entries waiting longer than recentAge are dropped, and erasure drops
// them all.
type recent struct {
	mu     sync.Mutex
	m      map[int64]*recentItem
	order  []int64      // ids in insertion order; some already dropped
	head   int          // order[:head] is gone
	bytes  atomic.Int64 // payload bytes held
	budget int
	sites  map[string]int // entries per site
}

type recentItem struct {
	site, name, eventID, source, visitor, testCode, params string
	eventTime, created                                     int64 // ms
	payload                                                []byte
}

// recentBudget bounds the payload bytes held: about 2,500 server events,
// a tenth of a second of ingest at full speed and more than the lag of a
// dispatcher that keeps up (it claims once a batch of 1,000 has queued).
const recentBudget = 4 << 20

// recentAge is how long an entry may wait for its claim.
const recentAge = 30 * time.Second

func newRecent(budget int) *recent {
	return &recent{m: map[int64]*recentItem{}, sites: map[string]int{}, budget: budget}
}

// newItem makes the entry of ev, whose payload is sealed, or returns nil
// for an item not to keep. Enqueue makes them on the callers' goroutines,
// off the writer's.
func (rc *recent) newItem(ev *store.NewEvent) *recentItem {
	if ev.Held || len(ev.Payload) > rc.budget/64 || rc.bytes.Load()+int64(len(ev.Payload)) > int64(rc.budget) {
		return nil
	}
	// The strings may be cut from a whole request body: one copy of them,
	// so that an entry does not keep its request alive.
	all := strings.Join([]string{ev.EventName, ev.EventID, ev.VisitorID, ev.TestEventCode, ev.Params}, "")
	cut := func(s string) string { v := all[:len(s)]; all = all[len(s):]; return v }
	return &recentItem{site: ev.SiteKey, name: cut(ev.EventName), eventID: cut(ev.EventID), visitor: cut(ev.VisitorID),
		testCode: cut(ev.TestEventCode), params: cut(ev.Params), source: ev.Source, eventTime: ms(ev.EventTime), payload: ev.Payload}
}

// add records the items of a transaction about to commit; the writer
// calls it before the commit, so no claim can read one of them from the
// file first and leave its entry behind, and calls remove if the commit
// fails.
func (rc *recent) add(ids []int64, items []*recentItem, created int64) {
	if len(ids) == 0 {
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, it := range items {
		if it == nil || rc.bytes.Load()+int64(len(it.payload)) > int64(rc.budget) {
			continue // full: newer items are read from the file
		}
		it.created = created
		rc.m[ids[i]] = it
		rc.order = append(rc.order, ids[i])
		rc.sites[it.site]++
		rc.bytes.Add(int64(len(it.payload)))
	}
}

// expire drops entries older than recentAge: a dispatcher that keeps up
// claims an item within a linger or two, so an older entry is an item that
// is not coming (its pixel is paused, or it was erased by another process)
// and it should not hold its payload in memory. The checkpointer calls it.
func (rc *recent) expire(nowMS int64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for ; rc.head < len(rc.order); rc.head++ {
		id := rc.order[rc.head]
		it, ok := rc.m[id] // else claimed or removed already
		if ok && it.created >= nowMS-recentAge.Milliseconds() {
			break
		}
		if ok {
			rc.drop(id, it)
		}
	}
	rc.compact()
}

// remove drops the entries of ids (a transaction that did not commit).
func (rc *recent) remove(ids []int64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, id := range ids {
		if it, ok := rc.m[id]; ok {
			rc.drop(id, it)
		}
	}
	rc.compact()
}

// drop forgets one entry; mu is held.
func (rc *recent) drop(id int64, it *recentItem) {
	delete(rc.m, id)
	rc.bytes.Add(-int64(len(it.payload)))
	if rc.sites[it.site]--; rc.sites[it.site] <= 0 {
		delete(rc.sites, it.site)
	}
}

// compact reclaims the dropped front of order once it is most of it.
func (rc *recent) compact() {
	if rc.head > 1024 && rc.head*2 > len(rc.order) {
		rc.order = append(rc.order[:0], rc.order[rc.head:]...)
		rc.head = 0
	}
	if len(rc.m) == 0 {
		rc.order, rc.head = rc.order[:0], 0
	}
}

// has reports whether some entry belongs to site.
func (rc *recent) has(site string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.sites[site] > 0
}

// take removes and returns the entries of site among ids as items, their
// payloads still sealed, and the ids it has no entry for.
func (rc *recent) take(site string, ids []int64) (items []store.Item, missing []int64) {
	items = make([]store.Item, 0, len(ids))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, id := range ids {
		it, ok := rc.m[id]
		if !ok || it.site != site {
			missing = append(missing, id)
			continue
		}
		rc.drop(id, it)
		items = append(items, store.Item{ID: id, SiteKey: site, EventName: it.name, EventID: it.eventID,
			EventTime: fromMS(it.eventTime), Payload: it.payload, State: store.StatePending, Source: it.source,
			VisitorID: it.visitor, TestEventCode: it.testCode, Params: it.params, CreatedAt: fromMS(it.created)})
	}
	rc.compact()
	return items, missing
}

// clear drops every entry (erasure, a site's removal).
func (rc *recent) clear() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	clear(rc.m)
	clear(rc.sites)
	rc.order, rc.head = nil, 0
	rc.bytes.Store(0)
}
