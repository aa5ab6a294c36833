package identity

import (
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
)

// filter is a Bloom filter of the visitors and indexed hashes the store
// knows, so that an event naming nobody known costs no store reads. A false
// positive only costs a read; there are no false negatives for what this
// process loaded or learned. It is safe for concurrent use without a lock
// on the read path: bits are only ever set, each atomically, and layers
// only ever added, so a value is found by every has that starts after its
// add returned.
//
// It grows with what it holds (a scalable Bloom filter): a first layer of
// 1 MiB, and when the newest layer holds its capacity of keys a new one
// of twice its size, up to filterMaxBits in all (1+2+4+8 MiB). A relay
// that knows a few hundred thousand keys keeps 1 MiB, which the CPU's
// caches hold, where one fixed 16 MiB filter cost a memory access per
// look-up and 16 MiB of heap from the start. A look-up of a never-seen key
// probes every layer; one of a known key stops at the layer holding it.
// Past the last layer's capacity it lets through more never-seen keys,
// each a store read, never more memory.
//
// Each layer is blocked: a value's filterK bits all lie in one 512-bit
// block (a cache line), so has and add touch one line per layer, not
// filterK lines each a likely cache miss. That costs a few false positives
// more than spreading the bits over the whole layer.
type filter struct {
	layers atomic.Pointer[[]*bloom] // oldest first; never shrinks
	seed   maphash.Seed
	mu     sync.Mutex // serializes growing
	max    int        // bits of all layers at most
}

// bloom is one layer.
type bloom struct {
	bits []uint64
	keys atomic.Int64 // keys added that were new to this layer
	cap  int64        // keys it takes before the next layer is added
}

const (
	filterFirstBits = 1 << 23              // 1 MiB
	filterMaxBits   = 15 * filterFirstBits // 1+2+4+8 MiB
	filterBitsKey   = 12                   // capacity: ~0.5% false positives per full layer
	filterK         = 7
	blockWords      = 8 // 512 bits
)

func newFilter() *filter { return newFilterBits(filterFirstBits, filterMaxBits) }

// newFilterBits makes a filter whose first layer has first bits (a
// multiple of 512) and whose layers have max bits in all.
func newFilterBits(first, max int) *filter {
	f := &filter{seed: maphash.MakeSeed(), max: max}
	layers := []*bloom{newBloom(first)}
	f.layers.Store(&layers)
	return f
}

func newBloom(n int) *bloom {
	return &bloom{bits: make([]uint64, n/64), cap: int64(n / filterBitsKey)}
}

// sum hashes a value: three string hashes, mixed (cheaper than streaming
// the three through a maphash.Hash, and as good for a filter).
func (f *filter) sum(site, kind, value string) uint64 {
	return maphash.String(f.seed, value) ^ bits.RotateLeft64(maphash.String(f.seed, kind), 21) ^
		bits.RotateLeft64(maphash.String(f.seed, site), 42)*0xff51afd7ed558ccd
}

// locate returns the words of a value's block in b and the bits within
// it: the block from the high bits of sum (by multiply-shift, no
// division), 9 bits of a remix of sum per position.
func (b *bloom) locate(sum uint64) (block []uint64, h uint64) {
	blocks := uint64(len(b.bits) / blockWords)
	hi, _ := bits.Mul64(sum, blocks)
	at := int(hi) * blockWords
	h = sum * 0x9e3779b97f4a7c15
	h ^= h >> 29
	return b.bits[at : at+blockWords : at+blockWords], h
}

// add sets a value's bits and reports whether one of them was unset.
func (b *bloom) add(sum uint64) (added bool) {
	block, h := b.locate(sum)
	for i := 0; i < filterK; i++ {
		bit := h >> (9 * i) & 511
		if m := uint64(1) << (bit % 64); atomic.LoadUint64(&block[bit/64])&m == 0 {
			atomic.OrUint64(&block[bit/64], m)
			added = true
		}
	}
	return added
}

func (b *bloom) has(sum uint64) bool {
	block, h := b.locate(sum)
	for i := 0; i < filterK; i++ {
		bit := h >> (9 * i) & 511
		if atomic.LoadUint64(&block[bit/64])&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

func (f *filter) add(site, kind, value string) {
	sum := f.sum(site, kind, value)
	layers := *f.layers.Load()
	for _, b := range layers[:len(layers)-1] {
		if b.has(sum) {
			return // an older layer holds it: adding it again would fill the newest
		}
	}
	last := layers[len(layers)-1]
	if last.add(sum) && last.keys.Add(1) == last.cap {
		f.grow(len(layers))
	}
}

// grow adds a layer twice the newest's size, unless one was added since
// the caller saw n layers or the bound would be passed.
func (f *filter) grow(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	layers := *f.layers.Load()
	if len(layers) != n {
		return
	}
	size := 2 * 64 * len(layers[n-1].bits)
	if f.bytes()*8+size > f.max {
		return
	}
	next := append(layers[:n:n], newBloom(size))
	f.layers.Store(&next)
}

func (f *filter) has(site, kind, value string) bool {
	sum := f.sum(site, kind, value)
	layers := *f.layers.Load()
	for i := len(layers) - 1; i >= 0; i-- {
		if layers[i].has(sum) {
			return true
		}
	}
	return false
}

// bytes is the memory of the filter's layers.
func (f *filter) bytes() int {
	n := 0
	for _, b := range *f.layers.Load() {
		n += 8 * len(b.bits)
	}
	return n
}

// fill is the share of the newest layer's bits that are set (the older
// ones are full to their capacity): past about 0.5, with no layer left to
// add, never-seen keys get through more often.
func (f *filter) fill() float64 {
	layers := *f.layers.Load()
	b := layers[len(layers)-1]
	n := 0
	for i := range b.bits {
		n += bits.OnesCount64(atomic.LoadUint64(&b.bits[i]))
	}
	return float64(n) / float64(64*len(b.bits))
}
