package identity

import (
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// filter is a Bloom filter of the visitors and indexed hashes the store
// knows, so that an event naming nobody known costs no store reads. A false
// positive only costs a read; there are no false negatives for what this
// process loaded or learned. It is safe for concurrent use without a lock:
// bits are only ever set, each atomically, so a value is found by every has
// that starts after its add returned.
type filter struct {
	bits []uint64
	seed maphash.Seed
}

// The filter's size is fixed (docs/scaling.md): it holds the visitors of
// browsers and the emails and external_ids of everyone learned, about two
// keys per customer. Past its capacity it lets through more never-seen
// keys, each a store read, never more memory.
const (
	filterBits = 1 << 27 // 16 MiB: ~1% false positives at 14M keys, 0.1% at 9M
	filterK    = 7
)

func newFilter() *filter {
	return &filter{bits: make([]uint64, filterBits/64), seed: maphash.MakeSeed()}
}

func (f *filter) positions(site, kind, value string) (h1, h2 uint64) {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(site)
	h.WriteByte(0)
	h.WriteString(kind)
	h.WriteByte(0)
	h.WriteString(value)
	sum := h.Sum64()
	return sum, sum>>33 | sum<<31 | 1
}

func (f *filter) add(site, kind, value string) {
	h1, h2 := f.positions(site, kind, value)
	for i := uint64(0); i < filterK; i++ {
		b := (h1 + i*h2) % filterBits
		if m := uint64(1) << (b % 64); atomic.LoadUint64(&f.bits[b/64])&m == 0 {
			atomic.OrUint64(&f.bits[b/64], m)
		}
	}
}

func (f *filter) has(site, kind, value string) bool {
	h1, h2 := f.positions(site, kind, value)
	for i := uint64(0); i < filterK; i++ {
		b := (h1 + i*h2) % filterBits
		if atomic.LoadUint64(&f.bits[b/64])&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// fill is the share of the filter's bits that are set.
func (f *filter) fill() float64 {
	n := 0
	for i := range f.bits {
		n += bits.OnesCount64(atomic.LoadUint64(&f.bits[i]))
	}
	return float64(n) / filterBits
}
