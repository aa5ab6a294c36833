package sqlite

import (
	"crypto/sha256"
	"database/sql/driver"
	"encoding/binary"
	"fmt"

	"modernc.org/sqlite"
)

// lookupKey is the 64-bit key under which the identity file finds a pair of
// strings: (site_key, visitor_id) in identities.vk, (kind, hash) in
// identity_keys.k. It is the first 8 bytes of SHA-256 of the two, so no one
// can choose a value whose key another value already has. Two values that
// share a key by chance (about one pair in 10¹⁰ among 10⁶ of them) stay
// apart: readers compare the row's site, visitor and hashes, and a visitor
// whose key another holds is not learned.
func lookupKey(a, b string) int64 {
	var arr [256]byte
	buf := append(append(append(arr[:0], a...), 0), b...)
	sum := sha256.Sum256(buf)
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// capirelay_key(a, b) is lookupKey in SQL, for migrations that fill the
// keyed columns from text.
func init() {
	sqlite.MustRegisterDeterministicScalarFunction("capirelay_key", 2, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		var s [2]string
		for i, a := range args {
			switch v := a.(type) {
			case string:
				s[i] = v
			case []byte:
				s[i] = string(v)
			default:
				return nil, fmt.Errorf("capirelay_key: argument %d is %T, want text", i+1, a)
			}
		}
		return lookupKey(s[0], s[1]), nil
	})
}
