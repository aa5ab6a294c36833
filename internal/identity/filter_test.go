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
