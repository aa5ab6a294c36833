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
//
// It is blocked: a value's filterK bits all lie in one 512-bit block (a
// cache line), so has and add touch one line of the 16 MiB, not filterK
// lines each a likely cache miss. That costs a few false positives more
// than spreading the bits over the whole filter.
type filter struct {
	bits []uint64
	seed maphash.Seed
}

// The filter's size is fixed (docs/scaling.md): it holds the visitors of
// browsers and the emails and external_ids of everyone learned, about two
// keys per customer. Past its capacity it lets through more never-seen
// keys, each a store read, never more memory.
const (
	filterBits = 1 << 27 // 16 MiB: ~1.5% false positives at 14M keys, 0.2% at 9M
	filterK    = 7
	blockWords = 8 // 512 bits
)

func newFilter() *filter { return newFilterBits(filterBits) }

// newFilterBits makes a filter of n bits, a multiple of 512.
func newFilterBits(n int) *filter {
	return &filter{bits: make([]uint64, n/64), seed: maphash.MakeSeed()}
}

// locate returns the words of a value's block and the bits within it: 9
// bits of h per position, each naming one of the block's 512.
func (f *filter) locate(site, kind, value string) (block []uint64, h uint64) {
	// Three string hashes, mixed: cheaper than streaming the three
	// through a maphash.Hash, and as good for a filter.
	sum := maphash.String(f.seed, value) ^ bits.RotateLeft64(maphash.String(f.seed, kind), 21) ^
		bits.RotateLeft64(maphash.String(f.seed, site), 42)*0xff51afd7ed558ccd
	// The block from the high bits (by multiply-shift, no division), the
	// positions from a remix of the whole sum.
	blocks := uint64(len(f.bits) / blockWords)
	hi, _ := bits.Mul64(sum, blocks)
	at := int(hi) * blockWords
	h = sum * 0x9e3779b97f4a7c15
	h ^= h >> 29
	return f.bits[at : at+blockWords : at+blockWords], h
}

func (f *filter) add(site, kind, value string) {
	block, h := f.locate(site, kind, value)
	for i := 0; i < filterK; i++ {
		b := h >> (9 * i) & 511
		if m := uint64(1) << (b % 64); atomic.LoadUint64(&block[b/64])&m == 0 {
			atomic.OrUint64(&block[b/64], m)
		}
	}
}

func (f *filter) has(site, kind, value string) bool {
	block, h := f.locate(site, kind, value)
	for i := 0; i < filterK; i++ {
		b := h >> (9 * i) & 511
		if atomic.LoadUint64(&block[b/64])&(1<<(b%64)) == 0 {
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
	return float64(n) / float64(64*len(f.bits))
}
