package event

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/capirelay/capirelay/internal/metarules"
)

// HashExtras hashes the SDK's extra user_data keys (f5first, f5last, fi,
// dobd, dobm, doby, app_user_id) as Meta's SDK does (utils.js
// normalizeAndHash): trim and lower-case; a value that already is 64
// hex is kept, lower-cased; otherwise the key's rule (first five
// characters, first initial, two-digit day or month, four-digit year) and
// SHA-256 hex. A value the rule refuses is dropped rather than sent
// wrong, as for the other hashed keys.
func (u *UserData) HashExtras() {
	for i := range userDataFields {
		if f := &userDataFields[i]; f.Kind == metarules.HashedSingle {
			if v := f.text(u); *v != "" {
				*v = hashExtra(f.Name, *v)
			}
		}
	}
}

func hashExtra(key, v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if isSHA256Hex(v) {
		return v
	}
	switch key {
	case "f5first", "f5last":
		v = firstRunes(v, 5)
	case "fi":
		v = firstRunes(v, 1)
	case "dobd", "dobm":
		if len(v) == 1 {
			v = "0" + v
		}
		n, err := strconv.Atoi(v)
		if err != nil || len(v) != 2 || n < 1 || (key == "dobd" && n > 31) || (key == "dobm" && n > 12) {
			return ""
		}
	case "doby":
		if _, err := strconv.Atoi(v); err != nil || len(v) != 4 {
			return ""
		}
	}
	if v == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

func firstRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	if !utf8.ValidString(s) {
		return ""
	}
	return s
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
