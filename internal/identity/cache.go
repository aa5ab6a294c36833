package identity

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// The cache's bounds (docs/scaling.md): a record costs about 1 KiB with
// every key filled once (at most 4 KiB with five values of each), an owner
// entry about 150 bytes. Entries live cacheTTL, so the cache holds all it
// is given up to 200 records read or learned a second: the repeat events
// of a visitor or a lead within seconds, which is what it is for. Past
// that it clears itself every few seconds and its hits are few, while its
// memory is heap the GC marks under serve's soft limit. At 50,000 records
// and 100,000 owners it held 31 MB of the heap under realistic load, and
// after a burst delivery fell from 10,000 to 2,000 events/s within a
// minute (a one-minute soak at 10,000 events/s). At 20,000 and 40,000,
// realistic /v1/events at full load (the binary on 2 CPUs, three
// alternating pairs, twice) used 43.0–51.2 µs of relay CPU per event
// against 38.1–42.8 at these bounds, and ingested 27.4–33.2k against
// 32.2–37.0k events/s; at 5,000 and 10,000, 40.8–44.2 µs.
const (
	CacheRecords = 2_000
	CacheOwners  = 4_000
)

// cache keeps recently read or learned identities and hash owners, so a
// returning customer's events cost no store reads. Entries live cacheTTL:
// another node's learning shows after at most that long, and a stale entry
// can only add less, never overwrite (Enrich fills gaps only). Each map
// holds at most maxSize entries: when one is full, its expired entries go,
// and if that frees less than a quarter, all of them (evictions counts
// what goes before its time).
//
// A cached *store.Identity is never modified once cached (learned replaces
// it with a merged copy), so readers share it without a copy and must
// treat it as read-only.
type cache struct {
	mu        sync.Mutex
	ids       map[[2]string]cachedIdentity
	byHash    map[[3]string]cachedOwners
	maxIDs    int
	maxOwners int
	evictions uint64
}

type cachedIdentity struct {
	id *store.Identity // nil: known absent
	at time.Time
}

type cachedOwners struct {
	visitors []string // empty: known to have no owner
	at       time.Time
}

const cacheTTL = 10 * time.Second

func newCache(maxIDs, maxOwners int) *cache {
	return &cache{ids: map[[2]string]cachedIdentity{}, byHash: map[[3]string]cachedOwners{}, maxIDs: maxIDs, maxOwners: maxOwners}
}

// makeRoom frees room in m for one more entry when it holds max: the
// expired entries, or all of them if those are too few. c.mu is held.
func makeRoom[K comparable, V any](c *cache, m map[K]V, max int, at func(V) time.Time) {
	if len(m) < max {
		return
	}
	now := time.Now()
	for k, v := range m {
		if now.Sub(at(v)) > cacheTTL {
			delete(m, k)
		}
	}
	if len(m) > max*3/4 {
		c.evictions += uint64(len(m))
		clear(m)
	}
}

func (e cachedIdentity) time() time.Time { return e.at }
func (e cachedOwners) time() time.Time   { return e.at }

// sizes reports the entries of both maps and the evictions so far.
func (c *cache) sizes() (ids, owners int, evictions uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids), len(c.byHash), c.evictions
}

func cloneIdentity(id *store.Identity) *store.Identity {
	if id == nil {
		return nil
	}
	c := *id
	c.Hashes = make(map[string][]string, len(id.Hashes))
	for k, v := range id.Hashes {
		c.Hashes[k] = append([]string(nil), v...)
	}
	return &c
}

// identity returns a cached identity, shared and read-only; ok is false on
// a miss.
func (c *cache) identity(site, visitor string) (*store.Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.ids[[2]string{site, visitor}]
	if !ok || time.Since(e.at) > cacheTTL {
		return nil, false
	}
	return e.id, true
}

// putIdentity caches id, which the caller must not modify afterwards.
func (c *cache) putIdentity(site, visitor string, id *store.Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	makeRoom(c, c.ids, c.maxIDs, cachedIdentity.time)
	// Keys are copied: an event's strings may be cut from its whole
	// request body (event.DecodeBatch), which a key must not keep.
	c.ids[[2]string{site, strings.Clone(visitor)}] = cachedIdentity{id: id, at: time.Now()}
}

// learned records that obs was just merged into its record (the store did
// the same merge): a cached record is replaced by the merged copy; any
// other entry of the visitor goes, to be read again when needed. The
// visitor joins the cached owners of obs's strong hashes; a hash knew says
// the store did not know before has the visitor as its only owner.
func (c *cache) learned(obs *store.Identity, knew func(site, kind, value string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := [2]string{obs.SiteKey, obs.VisitorID}
	if e, ok := c.ids[k]; ok && e.id != nil && time.Since(e.at) <= cacheTTL {
		if mergeChanges(e.id, obs) {
			// Copy on write: readers may hold e.id.
			id := cloneIdentity(e.id)
			id.Merge(obs)
			c.ids[k] = cachedIdentity{id: id, at: e.at}
		}
	} else {
		delete(c.ids, k)
	}
	// What an owner entry keeps is copied: obs's strings share the memory
	// of all its values (packed.identity), which an entry must not keep.
	var visitor []string
	for _, kind := range store.StrongKeys {
		for _, h := range obs.Hashes[kind] {
			ok := [3]string{obs.SiteKey, kind, h}
			e, cached := c.byHash[ok]
			switch {
			case cached && time.Since(e.at) <= cacheTTL:
				if !slices.Contains(e.visitors, obs.VisitorID) {
					// Copy on write: readers may hold e.visitors.
					e.visitors = append(slices.Clip(e.visitors), strings.Clone(obs.VisitorID))
					c.byHash[ok] = e
				}
			case !knew(obs.SiteKey, kind, h):
				makeRoom(c, c.byHash, c.maxOwners, cachedOwners.time)
				if visitor == nil {
					visitor = []string{strings.Clone(obs.VisitorID)}
				}
				ok[0], ok[2] = strings.Clone(ok[0]), strings.Clone(h)
				c.byHash[ok] = cachedOwners{visitors: visitor, at: time.Now()}
			default:
				delete(c.byHash, ok)
			}
		}
	}
}

// owners returns the cached owners of a hash, shared and read-only.
func (c *cache) owners(site, kind, hash string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byHash[[3]string{site, kind, hash}]
	if !ok || time.Since(e.at) > cacheTTL {
		return nil, false
	}
	return e.visitors, true
}

func (c *cache) putOwners(site, kind, hash string, visitors []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	makeRoom(c, c.byHash, c.maxOwners, cachedOwners.time)
	// Copied for the reason putIdentity gives.
	vs := make([]string, len(visitors))
	for i, v := range visitors {
		vs[i] = strings.Clone(v)
	}
	c.byHash[[3]string{site, kind, strings.Clone(hash)}] = cachedOwners{visitors: vs, at: time.Now()}
}

// mergeChanges reports whether id.Merge(o) would change id, without
// changing it or allocating.
func mergeChanges(id, o *store.Identity) bool {
	if id.ConflictsWith(o) {
		return false
	}
	for _, k := range store.IdentityKeys {
		if keyChanges(id.Hashes[k], o.Hashes[k], false) {
			return true
		}
	}
	return deviceChanges(id, o.Fbp, o.Fbc, o.IP, o.UA)
}

// keyChanges reports whether Merge would change the hashes cur of a key
// given the hashes add for it; with onlyHashes, values of add that are not
// pure hashes are left out first, as observation does.
func keyChanges(cur, add []string, onlyHashes bool) bool {
	// Merge builds next from add then cur: distinct values, at most
	// MaxIdentityValues, and compares it with cur; it skips a key with no
	// value to add. While next equals a prefix of cur, next is cur[:n].
	n, adding := 0, false
	for pass, list := range [2][]string{add, cur} {
		if pass == 1 && !adding {
			return false
		}
		for _, h := range list {
			if pass == 0 {
				if onlyHashes && !isHash(h) {
					continue
				}
				adding = true
			}
			if n == store.MaxIdentityValues {
				break
			}
			if slices.Contains(cur[:n], h) {
				continue
			}
			if n >= len(cur) || cur[n] != h {
				return true
			}
			n++
		}
	}
	return n != len(cur)
}

// deviceChanges reports whether Merge would replace a browser identifier
// of id with one of these.
func deviceChanges(id *store.Identity, fbp, fbc, ip, ua string) bool {
	return fbp != "" && fbp != id.Fbp || fbc != "" && fbc != id.Fbc ||
		ip != "" && ip != id.IP || ua != "" && ua != id.UA
}

// lookupIdentity reads an identity through the cache; nil when none. The
// identity is shared with the cache: read-only.
func (s *Service) lookupIdentity(ctx context.Context, site, visitor string) (*store.Identity, error) {
	if id, ok := s.cache.identity(site, visitor); ok {
		return id, nil
	}
	id, err := s.Store.Identity(ctx, site, visitor)
	if errors.Is(err, store.ErrNotFound) {
		id, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.cache.putIdentity(site, visitor, id)
	return id, nil
}

// lookupOwners lists the records holding a hash through the cache (shared:
// read-only).
func (s *Service) lookupOwners(ctx context.Context, site, kind, hash string) ([]string, error) {
	if vs, ok := s.cache.owners(site, kind, hash); ok {
		return vs, nil
	}
	vs, err := s.Store.VisitorsByHash(ctx, site, kind, hash)
	if err != nil {
		return nil, err
	}
	s.cache.putOwners(site, kind, hash, vs)
	return vs, nil
}
