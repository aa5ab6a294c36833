package main

import (
	"testing"

	"github.com/capirelay/capirelay/internal/config"
)

// A dedup index set larger than the default raises serve's soft heap limit
// by its memory, so the GC does not run against the limit all the time.
func TestMemoryLimitGrowsWithTheDedupIndex(t *testing.T) {
	def := config.Config{DedupIndexKeys: config.DefaultDedupIndexKeys}
	if got := memoryLimit(def); got != defaultMemoryLimit {
		t.Errorf("default: %d, want %d", got, defaultMemoryLimit)
	}
	small := config.Config{DedupIndexKeys: 1000}
	if got := memoryLimit(small); got != defaultMemoryLimit {
		t.Errorf("smaller index: %d, want %d", got, defaultMemoryLimit)
	}
	big := config.Config{DedupIndexKeys: config.DefaultDedupIndexKeys + 10<<20}
	if got, want := memoryLimit(big), int64(defaultMemoryLimit+10<<20*14); got != want {
		t.Errorf("10 Mi more keys: %d, want %d", got, want)
	}
	big.DatabaseURL = "postgres://u@h/db" // no index in memory
	if got := memoryLimit(big); got != defaultMemoryLimit {
		t.Errorf("PostgreSQL: %d, want %d", got, defaultMemoryLimit)
	}
}
