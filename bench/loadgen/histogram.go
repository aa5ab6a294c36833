package loadgen

import (
	"math/bits"
	"time"
)

// subBuckets per power of two: a recorded latency is kept to within 1/64
// (1.6 %) of its value, whatever its size, in a fixed 32 KiB.
const (
	subBits    = 6
	subBuckets = 1 << subBits
	nBuckets   = (64 - subBits + 1) * subBuckets
)

// Histogram counts durations in log-linear buckets. The zero value is ready
// to use. It is not safe for concurrent use: give each worker its own and
// Merge them.
type Histogram struct {
	counts [nBuckets]uint64
	n      uint64
	max    time.Duration
}

func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)*subBuckets + int(v>>shift) - subBuckets
}

// lowest value of bucket i.
func valueOf(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	shift := i/subBuckets - 1
	return uint64(i%subBuckets+subBuckets) << shift
}

// Record adds one duration; negative ones count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	h.max = max(h.max, d)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count is the number of recorded durations.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded duration.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the duration below which a fraction q of the recorded
// ones fall (q in [0,1]); 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			// Report the bucket's upper edge, capped by the maximum: a
			// percentile is never optimistic by more than one bucket.
			return min(time.Duration(valueOf(i+1)), h.max)
		}
	}
	return h.max
}
