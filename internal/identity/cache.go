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

// cache keeps recently read or learned identities and hash owners, so a
// returning customer's events cost no store reads. Entries live cacheTTL:
// another node's learning shows after at most that long, and a stale entry
// can only add less, never overwrite (Enrich fills gaps only).
//
// A cached *store.Identity is never modified once cached (learned replaces
// it with a merged copy), so readers share it without a copy and must
// treat it as read-only.
type cache struct {
	mu      sync.Mutex
	ids     map[[2]string]cachedIdentity
	owners  map[[3]string]cachedOwner
	maxSize int
}

type cachedIdentity struct {
	id *store.Identity // nil: known absent
	at time.Time
}

type cachedOwner struct {
	visitor string // "": known to have no owner
	at      time.Time
}

const cacheTTL = 10 * time.Second

func newCache(max int) *cache {
	return &cache{ids: map[[2]string]cachedIdentity{}, owners: map[[3]string]cachedOwner{}, maxSize: max}
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
	if len(c.ids) >= c.maxSize {
		clear(c.ids)
	}
	// Keys are copied: an event's strings may be cut from its whole
	// request body (event.DecodeBatch), which a key must not keep.
	c.ids[[2]string{site, strings.Clone(visitor)}] = cachedIdentity{id: id, at: time.Now()}
}

// learned merges what was just written into a cached identity (the store
// did the same merge), and makes the visitor the owner of its hashes.
func (c *cache) learned(obs *store.Identity) {
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
	if len(c.owners) >= c.maxSize {
		clear(c.owners)
	}
	for _, kind := range store.IndexedKeys {
		for _, h := range obs.Hashes[kind] {
			c.owners[[3]string{obs.SiteKey, kind, h}] = cachedOwner{visitor: obs.VisitorID, at: time.Now()}
		}
	}
}

func (c *cache) owner(site, kind, hash string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.owners[[3]string{site, kind, hash}]
	if !ok || time.Since(e.at) > cacheTTL {
		return "", false
	}
	return e.visitor, true
}

func (c *cache) putOwner(site, kind, hash, visitor string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.owners) >= c.maxSize {
		clear(c.owners)
	}
	// Copied for the reason putIdentity gives.
	c.owners[[3]string{site, kind, strings.Clone(hash)}] = cachedOwner{visitor: strings.Clone(visitor), at: time.Now()}
}

// mergeChanges reports whether id.Merge(o) would change id, without
// changing it or allocating.
func mergeChanges(id, o *store.Identity) bool {
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

// lookupOwner finds the most recent owner of a hash through the cache.
func (s *Service) lookupOwner(ctx context.Context, site, kind, hash string) (string, error) {
	if v, ok := s.cache.owner(site, kind, hash); ok {
		return v, nil
	}
	vs, err := s.Store.VisitorsByHash(ctx, site, kind, hash)
	if err != nil {
		return "", err
	}
	v := ""
	if len(vs) > 0 {
		v = vs[0]
	}
	s.cache.putOwner(site, kind, hash, v)
	return v, nil
}
