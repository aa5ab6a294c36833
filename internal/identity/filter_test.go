package identity

import (
	"fmt"
	"sync"
	"testing"
)

func TestFilter(t *testing.T) {
	t.Parallel()
	f := newFilter()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				v := fmt.Sprintf("%d-%d", w, i)
				f.add("s", "em", v)
				if !f.has("s", "em", v) {
					t.Errorf("has(%s) = false right after add", v)
					return
				}
			}
		}()
	}
	wg.Wait()
	false1 := 0
	for i := range 20000 {
		if f.has("s", "em", fmt.Sprintf("x%d", i)) {
			false1++
		}
		if !f.has("s", "em", fmt.Sprintf("%d-%d", i%4, i/4)) {
			t.Fatalf("%d-%d added but not found", i%4, i/4)
		}
	}
	if false1 > 20 {
		t.Errorf("%d false positives in 20000 with 20000 entries", false1)
	}
	if f.has("t", "em", "0-0") || f.has("s", "ph", "0-0") {
		t.Error("found under another site or kind")
	}
}

// TestFilterFalsePositivesAtCapacity: filled to the capacity of all its
// layers (12 bits per key each), the filter lets through at most 2% of
// never-added values, and it grew by doubling to its bound, no further.
func TestFilterFalsePositivesAtCapacity(t *testing.T) {
	t.Parallel()
	const first = 1 << 18
	f := newFilterBits(first, 15*first)
	keys := 15 * first / filterBitsKey
	for i := range keys {
		f.add("s", "em", fmt.Sprintf("%064x", i))
	}
	layers := *f.layers.Load()
	if len(layers) != 4 || f.bytes() != 15*first/8 {
		t.Errorf("%d layers of %d bytes in all, want 4 of %d (1+2+4+8 × the first)", len(layers), f.bytes(), 15*first/8)
	}
	for i, b := range layers {
		if got := 64 * len(b.bits); got != first<<i {
			t.Errorf("layer %d has %d bits, want %d", i, got, first<<i)
		}
	}
	for i := range keys {
		if !f.has("s", "em", fmt.Sprintf("%064x", i)) {
			t.Fatalf("key %d added but not found", i)
		}
	}
	fp := 0
	const probes = 200_000
	for i := range probes {
		if f.has("s", "em", fmt.Sprintf("%064x", keys+i)) {
			fp++
		}
	}
	rate := float64(fp) / probes
	t.Logf("%d keys in %d bits: %.2f%% false positives, newest layer %.0f%% set", keys, 15*first, 100*rate, 100*f.fill())
	if rate > 0.02 {
		t.Errorf("false positives %.2f%% at capacity, want at most 2%%", 100*rate)
	}
	// Past its bound it takes more keys without growing.
	for i := range keys / 4 {
		f.add("s", "em", fmt.Sprintf("more%d", i))
	}
	if f.bytes() != 15*first/8 {
		t.Errorf("%d bytes past capacity, want the bound %d", f.bytes(), 15*first/8)
	}
}

// TestFilterStaysSmall: a filter that holds a few hundred thousand keys
// keeps its first layer (1 MiB), and adding a key again does not count
// towards growing.
func TestFilterStaysSmall(t *testing.T) {
	t.Parallel()
	f := newFilter()
	for range 3 {
		for i := range 300_000 {
			f.add("s", "em", fmt.Sprintf("%064x", i))
		}
	}
	if f.bytes() != filterFirstBits/8 {
		t.Errorf("%d bytes for 300,000 keys added three times, want %d", f.bytes(), filterFirstBits/8)
	}
	for i := range 500_000 {
		f.add("s", "em", fmt.Sprintf("new%d", i))
	}
	if f.bytes() != 3*filterFirstBits/8 {
		t.Errorf("%d bytes for 800,000 keys, want %d (a second layer)", f.bytes(), 3*filterFirstBits/8)
	}
}

func BenchmarkFilterHas(b *testing.B) {
	f := newFilter()
	vals := make([]string, 1<<16)
	for i := range vals {
		vals[i] = fmt.Sprintf("%064x", i)
		if i%2 == 0 {
			f.add("site", "em", vals[i])
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		f.has("site", "em", vals[i&(len(vals)-1)])
	}
}
