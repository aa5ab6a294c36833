package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// mergeSimple is Merge as first written, a slice per key: the reference.
func mergeSimple(id, o *Identity) bool {
	if id.ConflictsWith(o) {
		return false
	}
	changed := false
	for _, k := range IdentityKeys {
		if len(o.Hashes[k]) == 0 {
			continue
		}
		cur := id.Hashes[k]
		var next []string
		for _, h := range slices.Concat(o.Hashes[k], cur) {
			if len(next) < MaxIdentityValues && !slices.Contains(next, h) {
				next = append(next, h)
			}
		}
		if !slices.Equal(next, cur) {
			if id.Hashes == nil {
				id.Hashes = map[string][]string{}
			}
			id.Hashes[k] = next
			changed = true
		}
	}
	for _, p := range [][2]*string{{&id.Fbp, &o.Fbp}, {&id.Fbc, &o.Fbc}, {&id.IP, &o.IP}, {&id.UA, &o.UA}} {
		if *p[1] != "" && *p[0] != *p[1] {
			*p[0], changed = *p[1], true
		}
	}
	return changed
}

func randomIdentity(r *rand.Rand) *Identity {
	id := &Identity{SiteKey: "s", VisitorID: "v"}
	if r.IntN(5) > 0 {
		id.Hashes = map[string][]string{}
	}
	for _, k := range IdentityKeys {
		if id.Hashes == nil || r.IntN(3) == 0 {
			continue
		}
		for range r.IntN(7) {
			id.Hashes[k] = append(id.Hashes[k], fmt.Sprint(r.IntN(8)))
		}
	}
	if r.IntN(2) == 0 {
		id.Fbp = fmt.Sprint("fbp", r.IntN(3))
	}
	return id
}

func cloneHashes(h map[string][]string) map[string][]string {
	if h == nil {
		return nil
	}
	c := map[string][]string{}
	for k, v := range h {
		c[k] = slices.Clone(v)
	}
	return c
}

// TestMergeMatchesReference: Merge, whose lists share one allocation,
// gives what a slice per key gave, and an append to one merged list never
// changes another.
func TestMergeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		id, o := randomIdentity(r), randomIdentity(r)
		want := &Identity{SiteKey: id.SiteKey, VisitorID: id.VisitorID, Hashes: cloneHashes(id.Hashes), Fbp: id.Fbp}
		wantChanged := mergeSimple(want, o)
		if got := id.Merge(o); got != wantChanged {
			t.Fatalf("case %d: Merge = %v, reference %v", i, got, wantChanged)
		}
		for _, k := range IdentityKeys {
			if !slices.Equal(id.Hashes[k], want.Hashes[k]) {
				t.Fatalf("case %d: %s = %q, reference %q", i, k, id.Hashes[k], want.Hashes[k])
			}
		}
		before := cloneHashes(id.Hashes)
		for _, k := range IdentityKeys {
			if len(id.Hashes[k]) > 0 {
				_ = append(id.Hashes[k], "appended")
			}
		}
		for _, k := range IdentityKeys {
			if !slices.Equal(id.Hashes[k], before[k]) {
				t.Fatalf("case %d: appending to a merged list changed %s: %q, was %q", i, k, id.Hashes[k], before[k])
			}
		}
	}
}
