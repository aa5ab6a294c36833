package main

import "testing"

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
