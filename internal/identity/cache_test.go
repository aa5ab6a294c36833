package identity

import (
	"math/rand/v2"
	"reflect"
	"testing"

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
	c := newCache(10)
	c.putIdentity("s", "v", &store.Identity{SiteKey: "s", VisitorID: "v", Hashes: map[string][]string{"em": {"a"}}, Fbp: "p"})
	held, ok := c.identity("s", "v")
	if !ok {
		t.Fatal("miss")
	}
	snapshot := cloneIdentity(held)
	c.learned(&store.Identity{SiteKey: "s", VisitorID: "v", Hashes: map[string][]string{"em": {"b"}, "ph": {"c"}}, Fbp: "q"})
	if !reflect.DeepEqual(held, snapshot) {
		t.Errorf("held identity changed to %+v", held)
	}
	now, _ := c.identity("s", "v")
	want := &store.Identity{SiteKey: "s", VisitorID: "v", Hashes: map[string][]string{"em": {"b", "a"}, "ph": {"c"}}, Fbp: "q"}
	if !reflect.DeepEqual(now, want) {
		t.Errorf("cached after learning = %+v, want %+v", now, want)
	}
	if v, ok := c.owner("s", "ph", "c"); !ok || v != "v" {
		t.Errorf("owner of ph c = %q, %v", v, ok)
	}
}
