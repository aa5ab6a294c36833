// Package identitytest holds an in-memory identity store for benchmarks
// that measure the identity service's own CPU, not a database's.
package identitytest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/capirelay/capirelay/internal/store"
)

// Mem keeps identities in memory, as a store would. The zero value is ready.
type Mem struct {
	mu  sync.Mutex
	ids map[[2]string]*store.Identity
}

func (m *Mem) Identity(_ context.Context, site, visitor string) (*store.Identity, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.ids[[2]string{site, visitor}]
	if id == nil {
		return nil, store.ErrNotFound
	}
	c := &store.Identity{SiteKey: site, VisitorID: visitor}
	c.Merge(id)
	return c, nil
}

func (m *Mem) VisitorsByHash(_ context.Context, site, key, hash string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var vs []string
	for k, id := range m.ids {
		if k[0] == site && slices.Contains(id.Hashes[key], hash) {
			vs = append(vs, k[1])
		}
	}
	return vs, nil
}

func (m *Mem) LearnIdentity(ctx context.Context, id *store.Identity) error {
	return m.LearnIdentities(ctx, []*store.Identity{id})
}

func (m *Mem) LearnIdentities(_ context.Context, ids []*store.Identity) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids == nil {
		m.ids = map[[2]string]*store.Identity{}
	}
	for _, id := range ids {
		k := [2]string{id.SiteKey, id.VisitorID}
		if m.ids[k] == nil {
			m.ids[k] = &store.Identity{SiteKey: id.SiteKey, VisitorID: id.VisitorID}
		}
		m.ids[k].Merge(id)
	}
	return nil
}

// KnownKeys reports nothing: Mem has no index of keys to load.
func (m *Mem) KnownKeys(_ context.Context, since time.Time, _ func(site, kind, value string)) (time.Time, error) {
	return since, nil
}
