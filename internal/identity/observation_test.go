package identity

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/store"
)

// observationMaps is observation as first written: a map grown per key.
func observationMaps(in *pipeline.Input) *store.Identity {
	ud := &in.Event.UserData
	obs := &store.Identity{SiteKey: in.Site.Key, VisitorID: in.VisitorID, Hashes: map[string][]string{},
		Fbp: ud.Fbp, Fbc: ud.Fbc}
	if in.Event.ActionSource == "website" {
		obs.IP, obs.UA = ud.ClientIPAddress, ud.ClientUserAgent
	}
	for _, k := range store.IdentityKeys {
		for _, v := range *ud.List(k) {
			if isHashRanges(v) && !slices.Contains(obs.Hashes[k], v) {
				obs.Hashes[k] = append(obs.Hashes[k], v)
			}
		}
	}
	for k, v := range obs.Hashes {
		if len(v) == 0 {
			delete(obs.Hashes, k)
		}
	}
	return obs
}

func isHashRanges(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func TestObservation(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(11, 12))
	vals := []string{fmt.Sprintf("%064x", 1), fmt.Sprintf("%064x", 2), fmt.Sprintf("%064X", 3), "raw", "", fmt.Sprintf("%064x", 4) + ".ab"}
	list := func() event.List {
		l := make(event.List, r.IntN(4))
		for i := range l {
			l[i] = vals[r.IntN(len(vals))]
		}
		return l
	}
	for i := 0; i < 20_000; i++ {
		in := &pipeline.Input{Site: &store.Site{Key: "s"}, VisitorID: "v", Event: &event.Event{ActionSource: []string{"website", "physical_store"}[r.IntN(2)]}}
		ud := &in.Event.UserData
		for _, k := range store.IdentityKeys {
			*ud.List(k) = list()
		}
		ud.Fbp, ud.ClientIPAddress = "p", "i"
		got, want := observation(in).identity(), observationMaps(in)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("observation(%+v) = %+v, want %+v", *ud, got, want)
		}
		// Appending to one key's hashes must leave the next key's alone.
		for k, hs := range got.Hashes {
			before := fmt.Sprint(got.Hashes)
			got.Hashes[k] = append(hs, "x")
			got.Hashes[k] = hs
			if fmt.Sprint(got.Hashes) != before {
				t.Fatalf("append to %s changed another key", k)
			}
		}
	}
}

func TestIsHash(t *testing.T) {
	t.Parallel()
	base := []byte(strings.Repeat("0123456789abcdef", 4))
	for c := range 256 {
		for _, at := range []int{0, 31, 63} {
			s := slices.Clone(base)
			s[at] = byte(c)
			if got, want := isHash(string(s)), isHashRanges(string(s)); got != want {
				t.Fatalf("isHash with %q at %d = %v, want %v", byte(c), at, got, want)
			}
		}
	}
	for _, s := range []string{"", string(base[:63]), string(base) + "0"} {
		if isHash(s) {
			t.Errorf("isHash(%q)", s)
		}
	}
}

// TestPackedObservation: an observation is one pointer-free allocation,
// and unpacks to what the event teaches, long values and many hashes
// included.
func TestPackedObservation(t *testing.T) {
	in := &pipeline.Input{Site: &store.Site{Key: "site"}, VisitorID: "visitor", Event: &event.Event{ActionSource: "website"}}
	ud := &in.Event.UserData
	ud.Fbp, ud.Fbc, ud.ClientIPAddress = "fb.1.1.2", "fb.1.1.AbC", "2001:db8::1"
	ud.ClientUserAgent = strings.Repeat("Mozilla/5.0 ", 40) // a two-byte length
	for i, k := range store.IdentityKeys {
		l := make(event.List, 3)
		for j := range l {
			l[j] = fmt.Sprintf("%064x", i*10+j)
		}
		*ud.List(k) = l
	}
	if got, want := observation(in).identity(), observationMaps(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("unpacked %+v, want %+v", got, want)
	}
	// Up to two hashes of each key (more are rare) cost nothing but the
	// packed string.
	for _, k := range store.IdentityKeys {
		*ud.List(k) = (*ud.List(k))[:2]
	}
	if n := testing.AllocsPerRun(100, func() { _ = observation(in) }); n != 1 {
		t.Errorf("observation made %v allocations, want 1", n)
	}
	in.VisitorID = ""
	for _, k := range store.IdentityKeys {
		*ud.List(k) = event.List{"not a hash"}
	}
	if p := observation(in); p != "" {
		t.Errorf("observation of an event with no visitor and no hash = %q, want none", p)
	}
}

func BenchmarkObservation(b *testing.B) {
	in := &pipeline.Input{Site: &store.Site{Key: "site"}, VisitorID: "visitor", Event: &event.Event{ActionSource: "website"}}
	ud := &in.Event.UserData
	ud.Fbp, ud.Fbc, ud.ClientIPAddress, ud.ClientUserAgent = "fb.1.1700000000000.123456789", "fb.1.1700000000000.AbC", "203.0.113.9", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	for i, k := range store.IdentityKeys {
		*ud.List(k) = event.List{fmt.Sprintf("%064x", i+1)}
	}
	for b.Loop() {
		_ = observation(in)
	}
}
