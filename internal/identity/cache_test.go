package identity

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// randomIdentity draws an identity from a small alphabet of hashes and
// browser ids, so that overlaps, repeats and full keys are common.
func randomIdentity(r *rand.Rand) *store.Identity {
	id := &store.Identity{SiteKey: "s", VisitorID: "v"}
	if r.IntN(4) > 0 {
		id.Hashes = map[string][]string{}
	}
	for _, k := range store.IdentityKeys[:3] {
		n := r.IntN(8)
		if n == 0 || id.Hashes == nil {
			if r.IntN(3) == 0 && id.Hashes != nil {
				id.Hashes[k] = []string{} // present but empty
			}
			continue
		}
		hs := make([]string, n)
		for i := range hs {
			hs[i] = string(rune('a' + r.IntN(7)))
		}
		id.Hashes[k] = hs
	}
	pick := func() string { return []string{"", "", "x", "y"}[r.IntN(4)] }
	id.Fbp, id.Fbc, id.IP, id.UA = pick(), pick(), pick(), pick()
	return id
}

// TestMergeChangesAgreesWithMerge checks the allocation-free check against
// what Merge reports on a copy.
func TestMergeChangesAgreesWithMerge(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200_000; i++ {
		id, o := randomIdentity(r), randomIdentity(r)
		if r.IntN(5) == 0 { // o already merged: often nothing new
			m := cloneIdentity(id)
			m.Merge(o)
			id = m
		}
		before := cloneIdentity(id)
		got := mergeChanges(id, o)
		if !reflect.DeepEqual(cloneIdentity(id), before) {
			t.Fatalf("mergeChanges modified id")
		}
		want := cloneIdentity(id).Merge(o)
		if got != want {
			t.Fatalf("mergeChanges(%+v, %+v) = %v, Merge reports %v", id, o, got, want)
		}
	}
}

// TestCachedIdentityNotModified checks that learning replaces a cached
// identity instead of changing the one readers may hold.
func TestCachedIdentityNotModified(t *testing.T) {
	t.Parallel()
	c := newCache(10, 10)
	c.putIdentity("s", "v", &store.Identity{SiteKey: "s", VisitorID: "v", Hashes: map[string][]string{"external_id": {"a"}}, Fbp: "p"})
	held, ok := c.identity("s", "v")
	if !ok {
		t.Fatal("miss")
	}
	snapshot := cloneIdentity(held)
	unknown := func(site, kind, value string) bool { return false }
	c.learned(&store.Identity{SiteKey: "s", VisitorID: "v", Hashes: map[string][]string{"external_id": {"a"}, "ph": {"c"}}, Fbp: "q"}, unknown)
	if !reflect.DeepEqual(held, snapshot) {
		t.Errorf("held identity changed to %+v", held)
	}
	now, _ := c.identity("s", "v")
	want := &store.Identity{SiteKey: "s", VisitorID: "v", Hashes: map[string][]string{"external_id": {"a"}, "ph": {"c"}}, Fbp: "q"}
	if !reflect.DeepEqual(now, want) {
		t.Errorf("cached after learning = %+v, want %+v", now, want)
	}
	if vs, ok := c.owners("s", "ph", "c"); ok {
		t.Errorf("owners of ph c = %q: a phone links no one", vs)
	}
}

// stubStore knows no one and records what is learned.
type stubStore struct {
	learned []*store.Identity
	reads   int
}

func (st *stubStore) Identity(ctx context.Context, site, visitor string) (*store.Identity, error) {
	st.reads++
	return nil, store.ErrNotFound
}

func (st *stubStore) VisitorsByHash(ctx context.Context, site, key, hash string) ([]string, error) {
	st.reads++
	return nil, nil
}

func (st *stubStore) LearnIdentity(ctx context.Context, id *store.Identity) error {
	return st.LearnIdentities(ctx, []*store.Identity{id})
}

func (st *stubStore) LearnIdentities(ctx context.Context, ids []*store.Identity) error {
	st.learned = append(st.learned, ids...)
	return nil
}

func (st *stubStore) KnownKeys(ctx context.Context, since time.Time, fn func(site, kind, value string)) (time.Time, error) {
	return since, nil
}

// TestKnownAlreadyAgreesWithWrite checks the shortcut of Learn against
// write: whenever knownAlready says an event teaches nothing, write,
// starting from the same cache, learns nothing from it either.
func TestKnownAlreadyAgreesWithWrite(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	hashes := make([]string, 6)
	for i := range hashes {
		hashes[i] = fmt.Sprintf("%064x", i+1)
	}
	pick := func() string {
		switch r.IntN(8) {
		case 0:
			return "not-a-hash"
		case 1:
			return ""
		}
		return hashes[r.IntN(len(hashes))]
	}
	list := func() event.List {
		l := make(event.List, r.IntN(3))
		for i := range l {
			l[i] = pick()
		}
		return l
	}
	dev := func() string { return []string{"", "d1", "d2"}[r.IntN(3)] }
	st := &stubStore{}
	s := New(st, slog.New(slog.DiscardHandler))
	var took, held int // held: with a person found
	for i := 0; i < 20_000; i++ {
		// A fresh cache, and a fresh site for the filter.
		st.learned, st.reads = nil, 0
		s.cache = newCache(100, 100)
		site := &store.Site{Key: fmt.Sprint("s", i)}
		s.ready.Store(r.IntN(2) == 0) // ready: the filter knows only what is added below
		// A cache state: some owners, some identities, some known absent.
		for range r.IntN(4) {
			k := store.StrongKeys[r.IntN(len(store.StrongKeys))]
			h := hashes[r.IntN(len(hashes))]
			em := EmailPrefix + hashes[r.IntN(len(hashes))]
			vs := [][]string{nil, {"v1"}, {"v2"}, {ExternalPrefix + hashes[r.IntN(len(hashes))]}, {"v1", "v2"},
				{em}, {"v1", em}}[r.IntN(7)]
			s.cache.putOwners(site.Key, k, h, vs)
			if r.IntN(3) > 0 {
				s.filter.add(site.Key, k, h)
			}
		}
		in := &pipeline.Input{Site: site, Source: pipeline.SourceServer, Event: &event.Event{UserData: event.UserData{
			Em: list(), Ph: list(), ExternalID: list(), Fn: list(),
			Fbp: dev(), Fbc: dev(), ClientIPAddress: dev(), ClientUserAgent: dev(),
		}}}
		if r.IntN(3) == 0 {
			in.VisitorID = []string{"v1", "v2", "v3"}[r.IntN(3)]
		}
		for _, v := range []string{"v1", "v2", "v3", ExternalPrefix + hashes[r.IntN(len(hashes))], EmailPrefix + hashes[r.IntN(len(hashes))]} {
			switch r.IntN(4) {
			case 0:
				s.cache.putIdentity(site.Key, v, nil)
			case 1:
				id := randomIdentity(r)
				id.SiteKey, id.VisitorID = site.Key, v
				s.cache.putIdentity(site.Key, v, id)
			case 2:
				// What the event teaches, perhaps a little less or more.
				id := &store.Identity{SiteKey: site.Key, VisitorID: v}
				if obs := observation(in).identity(); obs != nil {
					id.Merge(obs)
				}
				switch r.IntN(6) {
				case 0:
					id.UA = dev()
				case 1:
					id.IP = dev()
				case 2:
					id.Fbp = dev()
				case 3:
					if hs := id.Hashes["em"]; len(hs) > 0 {
						id.Hashes["em"] = append(hs, hashes[r.IntN(len(hashes))])
					}
				case 4:
					if hs := id.Hashes["ph"]; len(hs) > 1 {
						id.Hashes["ph"] = hs[1:]
					}
				}
				s.cache.putIdentity(site.Key, v, id)
			}
		}
		if !s.knownAlready(in) {
			continue
		}
		took++
		obs := observation(in).identity()
		if obs == nil {
			continue // Learn returns before write
		}
		if v := in.VisitorID; v != "" {
			held++
		} else if v, _ := s.cachedOwner(site.Key, &in.Event.UserData); v != "" {
			held++
		}
		s.write(context.Background(), []*store.Identity{obs})
		if len(st.learned) > 0 {
			t.Fatalf("knownAlready for %+v, but write learned %+v", in.Event.UserData, st.learned[0])
		}
		if st.reads > 0 {
			t.Fatalf("knownAlready for %+v, but write read the store", in.Event.UserData)
		}
	}
	if took < 1000 || held < 1000 {
		t.Errorf("knownAlready held in only %d of 20000 cases, %d with a person found: the test proves little", took, held)
	}
	t.Logf("knownAlready held in %d cases, %d with a person found", took, held)
}

// TestCacheStaysWithinBounds feeds the service's cache more records and
// owners than its bounds, as a long run of new customers does, and checks
// it holds no more than them, counts what it dropped and reports both.
func TestCacheStaysWithinBounds(t *testing.T) {
	t.Parallel()
	s := New(&stubStore{}, slog.New(slog.DiscardHandler))
	reg := prometheus.NewRegistry()
	s.Register(reg)
	unknown := func(site, kind, value string) bool { return false }
	for i := range 3 * CacheOwners {
		h := fmt.Sprintf("%064x", i)
		if i < 3*CacheRecords {
			s.cache.putIdentity("s", fmt.Sprint("v", i), &store.Identity{SiteKey: "s", VisitorID: fmt.Sprint("v", i)})
		}
		s.cache.learned(&store.Identity{SiteKey: "s", VisitorID: ExternalPrefix + h, LikelyNew: true,
			Hashes: map[string][]string{store.KeyEmail: {h}}}, unknown)
		if ids, owners, _ := s.cache.sizes(); ids > CacheRecords || owners > CacheOwners {
			t.Fatalf("after %d entries the cache holds %d records and %d owners, bounds %d and %d", i+1, ids, owners, CacheRecords, CacheOwners)
		}
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if got["capirelay_identity_cache_entries/records"] == 0 || got["capirelay_identity_cache_entries/records"] > CacheRecords ||
		got["capirelay_identity_cache_entries/owners"] == 0 || got["capirelay_identity_cache_entries/owners"] > CacheOwners {
		t.Errorf("cache entries metrics = %v", got)
	}
	if got["capirelay_identity_cache_evictions_total"] < 2*CacheRecords {
		t.Errorf("capirelay_identity_cache_evictions_total = %v, want at least %d", got["capirelay_identity_cache_evictions_total"], 2*CacheRecords)
	}
	if b := got["capirelay_identity_filter_bytes"]; b != float64(s.filter.bytes()) || b < filterFirstBits/8 || b > filterMaxBits/8 {
		t.Errorf("filter bytes = %v, want the filter's %d, from %d to %d", b, s.filter.bytes(), filterFirstBits/8, filterMaxBits/8)
	}
}

// TestOwnerEntriesKeepNoObservation: the cache's owner entries copy what
// they keep; an unpacked observation's strings share the memory of all its
// values, which tens of thousands of entries would otherwise keep alive.
func TestOwnerEntriesKeepNoObservation(t *testing.T) {
	in := &pipeline.Input{Site: &store.Site{Key: "site"}, VisitorID: "visitor", Event: &event.Event{ActionSource: "website"}}
	ud := &in.Event.UserData
	ud.Em, ud.ExternalID, ud.Fn = event.List{fmt.Sprintf("%064x", 1)}, event.List{fmt.Sprintf("%064x", 2)}, event.List{fmt.Sprintf("%064x", 3)}
	p := observation(in)
	obs := p.identity()
	c := newCache(10, 10)
	c.learned(obs, func(string, string, string) bool { return false })
	hex := obs.Hashes[store.KeyEmail][0]
	within := func(s, of string) bool {
		at, lo := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(of)))
		return len(s) > 0 && at >= lo && at < lo+uintptr(len(of))
	}
	if len(c.byHash) != 2 {
		t.Fatalf("cache holds %d owner entries, want 2 (em, external_id)", len(c.byHash))
	}
	for k, e := range c.byHash {
		for _, s := range append([]string{k[0], k[2]}, e.visitors...) {
			if within(s, string(p)) || within(s, unsafe.String(unsafe.StringData(hex), 64*3)) {
				t.Errorf("owner entry %v keeps %q inside the observation's memory", k, s)
			}
		}
	}
}
