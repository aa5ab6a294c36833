package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestGrowing(t *testing.T) {
	const mb = 1 << 20
	cases := []struct {
		name    string
		samples []int64
		want    bool
	}{
		{"flat", []int64{50 * mb, 60 * mb, 61 * mb, 60 * mb, 61 * mb, 60 * mb, 61 * mb, 60 * mb, 61 * mb, 60 * mb}, false},
		{"leak", []int64{50 * mb, 60 * mb, 70 * mb, 80 * mb, 90 * mb, 100 * mb, 110 * mb, 120 * mb, 130 * mb, 140 * mb}, true},
		{"warm-up then flat", []int64{10 * mb, 80 * mb, 90 * mb, 90 * mb, 91 * mb, 90 * mb, 91 * mb, 90 * mb, 91 * mb, 90 * mb}, false},
		{"slow creep under the threshold", []int64{100 * mb, 100 * mb, 101 * mb, 101 * mb, 102 * mb, 102 * mb, 103 * mb, 103 * mb, 104 * mb, 104 * mb}, false},
		{"too few samples", []int64{1, 2}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, why := Growing(tc.samples, 0.10); got != tc.want {
				t.Errorf("Growing = %v (%s), want %v", got, why, tc.want)
			}
		})
	}
}

func TestIdentityMemory(t *testing.T) {
	const mb = 1 << 20
	cases := []struct {
		name    string
		scrapes []map[string]float64
		bound   float64
		ok      bool
		says    string
	}{
		{"no metrics", []map[string]float64{{"go_goroutines": 5}}, 0, true, "not measured"},
		{"under the relay's limit", []map[string]float64{
			{"capirelay_identity_memory_bytes": 10 * mb, "capirelay_identity_memory_limit_bytes": 64 * mb},
			{"capirelay_identity_memory_bytes": 20 * mb, "capirelay_identity_memory_limit_bytes": 64 * mb}}, 0, true, "peaked at 20.0 MiB"},
		{"over the flag's bound", []map[string]float64{
			{"capirelay_identity_memory_bytes": 10 * mb},
			{"capirelay_identity_memory_bytes": 40 * mb}}, 32 * mb, false, "1 of 2 samples"},
		{"parts summed", []map[string]float64{
			{"capirelay_identity_cache_bytes": 30 * mb, "capirelay_identity_filter_bytes": 10 * mb}}, 32 * mb, false, "peaked at 40.0 MiB"},
		{"no byte bound", []map[string]float64{{"capirelay_identity_filter_bytes": 16 * mb}}, 0, true, "no bound"},
		{"cache entries under the documented bound", []map[string]float64{
			{"capirelay_identity_cache_entries": DefaultIdentityCacheEntries - 1, "capirelay_identity_filter_fill_ratio": 0.1}}, 0, true,
			fmt.Sprintf("under its bound of %.1f", float64(DefaultIdentityCacheEntries))},
		{"cache entries over", []map[string]float64{
			{"capirelay_identity_cache_entries": DefaultIdentityCacheEntries / 2}, {"capirelay_identity_cache_entries": DefaultIdentityCacheEntries + 1}}, 0, false, "1 of 2 samples"},
		{"neither", []map[string]float64{{"capirelay_identity_filter_fill_ratio": 0.1}}, 0, true, "neither its bytes nor its cache entries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var im identityMemory
			for _, m := range tc.scrapes {
				im.sample(m, tc.bound, DefaultIdentityCacheEntries)
			}
			got, ok := im.verdict()
			if ok != tc.ok || !strings.Contains(got, tc.says) {
				t.Errorf("verdict %q, %v; want %v and %q", got, ok, tc.ok, tc.says)
			}
		})
	}
}
