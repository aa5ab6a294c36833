package identity

import (
	"encoding/binary"
	"encoding/hex"
	"unsafe"

	"github.com/capirelay/capirelay/internal/store"
)

// packed is an observation (what an accepted event teaches) packed into one
// pointer-free string, from its event's commit until the writer takes it
// from the queue. Under load thousands wait at once (the events of every
// request in its commit, then the queue): as *store.Identity each was five
// allocations and 2.4 KB of pointers for the GC to trace; packed it is one
// allocation of about 600 bytes that the GC never scans, hashes held as
// their 32 bytes rather than 64 hex digits. "" is no observation.
//
// Layout: site key, visitor id, fbp, fbc, IP address and user agent, each
// as a uvarint length and its bytes; then for each of store.IdentityKeys a
// uvarint count and that many 32-byte hashes.
type packed string

// pack packs what an event teaches: hashes must be pure hashes (isHash:
// 64 lowercase hex digits), distinct within a key, listed per key in the
// order of store.IdentityKeys.
func pack(site, visitor, fbp, fbc, ip, ua string, hashes *[numIdentityKeys][]string) packed {
	n := 0
	for _, s := range [...]string{site, visitor, fbp, fbc, ip, ua} {
		n += binary.MaxVarintLen64 + len(s)
	}
	for _, hs := range hashes {
		n += binary.MaxVarintLen64 + 32*len(hs)
	}
	b := make([]byte, 0, n)
	for _, s := range [...]string{site, visitor, fbp, fbc, ip, ua} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, hs := range hashes {
		b = binary.AppendUvarint(b, uint64(len(hs)))
		for _, h := range hs {
			// A pure hash always decodes: hex.Decode cannot fail here.
			n, _ := hex.Decode(b[len(b):len(b)+32], bytesOf(h))
			b = b[:len(b)+n]
		}
	}
	return packed(unsafe.String(unsafe.SliceData(b), len(b)))
}

// numIdentityKeys is len(store.IdentityKeys), checked at start-up.
const numIdentityKeys = 11

func init() {
	if len(store.IdentityKeys) != numIdentityKeys {
		panic("identity: numIdentityKeys is not len(store.IdentityKeys)")
	}
}

// identity unpacks p (nil for ""). Its strings share p's memory, but for
// the hashes, written out as hex in one allocation.
func (p packed) identity() *store.Identity {
	if p == "" {
		return nil
	}
	r := string(p)
	next := func() int {
		v, w := binary.Uvarint(bytesOf(r))
		r = r[w:]
		return int(v)
	}
	str := func() string {
		n := next()
		s := r[:n]
		r = r[n:]
		return s
	}
	id := &store.Identity{SiteKey: str(), VisitorID: str(), Fbp: str(), Fbc: str(), IP: str(), UA: str()}
	counts := [numIdentityKeys]int{}
	raw := [numIdentityKeys]string{}
	total, keys := 0, 0
	for i := range counts {
		counts[i] = next()
		raw[i], r = r[:32*counts[i]], r[32*counts[i]:]
		total += counts[i]
		if counts[i] > 0 {
			keys++
		}
	}
	id.Hashes = make(map[string][]string, keys)
	if total == 0 {
		return id
	}
	text := make([]byte, 0, 64*total)
	vals := make([]string, total)
	for _, rw := range raw {
		text = hex.AppendEncode(text, bytesOf(rw))
	}
	all := unsafe.String(unsafe.SliceData(text), len(text))
	at := 0
	for i, k := range store.IdentityKeys {
		if counts[i] == 0 {
			continue
		}
		hs := vals[at : at+counts[i] : at+counts[i]]
		for j := range hs {
			hs[j], all = all[:64], all[64:]
		}
		id.Hashes[k] = hs
		at += counts[i]
	}
	return id
}

// bytesOf is s's bytes, without a copy, for functions that only read them
// (a string's bytes must never be written).
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
