package normalize

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestHashUserDataDropsRepeats: whatever the number of values, each hash
// is kept once, in the order first seen, per key (a set takes over from
// the scan past dedupScan values).
func TestHashUserDataDropsRepeats(t *testing.T) {
	for _, n := range []int{1, dedupScan - 1, dedupScan, dedupScan + 1, 3 * dedupScan, 500} {
		var in UserData
		for i := range n {
			in.Em = append(in.Em, fmt.Sprintf("user%d@example.com", i))
		}
		// Each again, spelled so that it normalizes to the same, and
		// interleaved with new ones.
		for i := range n {
			in.Em = append(in.Em, fmt.Sprintf(" USER%d@Example.com ", i), fmt.Sprintf("other%d@example.com", i))
			in.Fn = append(in.Fn, "Mary", []string{"Ann", "Bea", "Cid"}[i%3])
		}
		out := HashUserData(&in, Options{})
		var want []string
		for _, v := range in.Em {
			h, err := Hash(Email, v, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(want, h) {
				want = append(want, h)
			}
		}
		if !slices.Equal(out.Em, want) {
			t.Errorf("n=%d: %d em hashes, want %d", n, len(out.Em), len(want))
		}
		if len(out.Fn) != min(n, 3)+1 {
			t.Errorf("n=%d: fn %d hashes, want %d", n, len(out.Fn), min(n, 3)+1)
		}
		for _, h := range out.Em {
			if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
				t.Fatalf("not a hash: %q", h)
			}
		}
	}
}
