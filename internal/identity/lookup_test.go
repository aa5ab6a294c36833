package identity

import (
	"bufio"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/event"
	"github.com/capirelay/capirelay/internal/normalize"
	"github.com/capirelay/capirelay/internal/pipeline"
	"github.com/capirelay/capirelay/internal/sharedtest"
	"github.com/capirelay/capirelay/internal/store"
)

// peerInputs returns the raw inputs of the peer vectors by field.
func peerInputs(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(sharedtest.Dir(t), "testdata", "peer-normalization.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct{ Field, Input string }
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out[r.Field] = append(out[r.Field], r.Input)
	}
	return out
}

// TestOwnLookupsAgreeWithLookupHashes checks that Enrich finds the same
// hashes in the pipeline's hashed user_data as by hashing the raw values
// itself (up to repeats, which resolve skips anyway).
func TestOwnLookupsAgreeWithLookupHashes(t *testing.T) {
	t.Parallel()
	in := peerInputs(t)
	hexes := []string{strings.Repeat("AB", 32), strings.Repeat("0f", 32), strings.Repeat("0f", 32) + ".Ab", strings.Repeat("c", 64) + ".abcdEF-_", strings.Repeat("d", 63)}
	for _, f := range []string{"em", "ph", "external_id"} {
		in[f] = append(in[f], hexes...)
	}
	in["country"] = append(in["country"], "", "zz", "United Kingdom", " de ")
	r := rand.New(rand.NewPCG(5, 6))
	pick := func(f string) event.List {
		l := make(event.List, r.IntN(3))
		for i := range l {
			l[i] = in[f][r.IntN(len(in[f]))]
		}
		return l
	}
	regions := []string{"", "US", "gb", "DE", "fr", "in", "br"}
	for i := 0; i < 20_000; i++ {
		ud := event.UserData{Em: pick("em"), Ph: pick("ph"), ExternalID: pick("external_id"), Country: pick("country")}
		p := &pipeline.Input{Site: &store.Site{Key: "s", DefaultRegion: regions[r.IntN(len(regions))]}, Region: regions[r.IntN(len(regions))]}
		want := lookupHashes(nil, p, &ud)
		region := p.Site.DefaultRegion
		if region == "" {
			region = p.Region
		}
		raw := ud.Hashable()
		own := normalize.HashUserData(&raw, normalize.Options{Region: region})
		got := ownLookups(nil, &own)
		var dedup []lookup
		for _, l := range want {
			if !slices.Contains(dedup, l) {
				dedup = append(dedup, l)
			}
		}
		if !slices.Equal(got, dedup) {
			t.Fatalf("user_data %+v (region %q): own lookups %v, lookupHashes %v", ud, region, got, dedup)
		}
	}
}
