package normalize

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"golang.org/x/text/unicode/norm"
)

// Field is a hashable user_data key of the Conversions API (spec §3.1).
type Field string

// The 11 hashable user_data keys.
const (
	Email       Field = "em"
	Phone       Field = "ph"
	FirstName   Field = "fn"
	LastName    Field = "ln"
	DateOfBirth Field = "db"
	Gender      Field = "ge"
	City        Field = "ct"
	State       Field = "st"
	Zip         Field = "zp"
	Country     Field = "country"
	ExternalID  Field = "external_id"
)

// Fields lists every Field in user_data order. Treat it as read-only.
var Fields = []Field{Email, Phone, FirstName, LastName, DateOfBirth, Gender, City, State, Zip, Country, ExternalID}

// ParseField returns the Field named s ("em", "ph", ...) and whether s names one.
func ParseField(s string) (Field, bool) {
	switch f := Field(s); f {
	case Email, Phone, FirstName, LastName, DateOfBirth, Gender, City, State, Zip, Country, ExternalID:
		return f, true
	}
	return "", false
}

// DateOrder says how an ambiguous numeric date such as 03/04/1997 is read.
type DateOrder int

const (
	// DateOrderAuto reads month first when the region is empty, the US or
	// another month-first region (see the package doc), else day first.
	DateOrderAuto DateOrder = iota
	// DateOrderMonthFirst reads 03/04/1997 as March 4.
	DateOrderMonthFirst
	// DateOrderDayFirst reads 03/04/1997 as 3 April.
	DateOrderDayFirst
)

// Options carries the context of a value. The zero value is usable: no
// default region, automatic date order, the current clock.
type Options struct {
	// Region is the ISO 3166-1 alpha-2 code (any case) of the site's default
	// country, used for ph, st, zp and db when the value has no country of
	// its own; "" means none.
	Region string
	// DateOrder resolves ambiguous day/month order in db; zero is DateOrderAuto.
	DateOrder DateOrder
	// Now is the clock for db's upper year bound; zero means time.Now().
	Now time.Time
	// Memo, if set (and Now too), lets HashUserData reuse the work of the
	// calls before it; see Memo. nil means none.
	Memo *Memo
}

// ErrEmpty is returned for a value that is empty after trimming.
var ErrEmpty = errors.New("normalize: empty value")

// InvalidError is returned for a value that must be dropped because it does
// not fit its field's rule.
type InvalidError struct {
	Field  Field
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("normalize: invalid %s: %s", e.Field, e.Reason)
}

// reasonEmpty is the internal reason for ErrEmpty.
const reasonEmpty = "empty"

// env is Options resolved for one call or one user_data.
type env struct {
	region string // as given, any case; "" for none
	order  DateOrder
	now    time.Time
}

func (o Options) env() env {
	return env{region: o.Region, order: o.DateOrder, now: o.Now}
}

func (e *env) year() int {
	if e.now.IsZero() {
		e.now = time.Now()
	}
	return e.now.Year()
}

func (e *env) monthFirst() bool {
	switch e.order {
	case DateOrderMonthFirst:
		return true
	case DateOrderDayFirst:
		return false
	}
	return monthFirstRegions[lowerRegion(e.region)]
}

func (e *env) err(f Field, why string) error {
	if why == reasonEmpty {
		return ErrEmpty
	}
	return &InvalidError{Field: f, Reason: why}
}

// appendNormalized appends the normalized plaintext of raw to dst; why is
// "" on success, else the reason to drop it. It does not allocate for ASCII
// input (apart from the country table and the full phone parser).
func appendNormalized(dst []byte, f Field, raw string, e *env) ([]byte, string) {
	n := len(dst)
	dst, why := appendField(dst, f, raw, e)
	if why == "" && !isASCII(string(dst[n:])) {
		// Removing a character can bring a letter and a combining mark
		// together ("A0\u0301" as a city): compose them again. Only for
		// non-ASCII output; the copy to a string keeps dst off the heap.
		if out := string(dst[n:]); !norm.NFC.IsNormalString(out) {
			dst = append(dst[:n], norm.NFC.String(out)...)
		}
	}
	return dst, why
}

func appendField(dst []byte, f Field, raw string, e *env) ([]byte, string) {
	s := prepare(raw)
	if s == "" {
		return dst, reasonEmpty
	}
	switch f {
	case Email:
		return appendEmail(dst, s)
	case Phone:
		return appendPhone(dst, s, e.region)
	case FirstName, LastName, City:
		return appendName(dst, s)
	case DateOfBirth:
		return appendDate(dst, s, e)
	case Gender:
		return appendGender(dst, s)
	case State:
		return appendState(dst, s, e.region)
	case Zip:
		return appendZip(dst, s, e.region)
	case Country:
		return appendCountry(dst, s)
	case ExternalID:
		return appendExternalID(dst, s)
	}
	return dst, "unknown field"
}

// Normalize returns the normalized plaintext of one value of field f, or
// ErrEmpty, or an *InvalidError naming the field and the reason, when the
// value must be dropped. Pre-hashed values are not recognised here (see
// Hash). It is safe for concurrent use.
func Normalize(f Field, raw string, o Options) (string, error) {
	e := o.env()
	var buf [128]byte
	b, why := appendNormalized(buf[:0], f, raw, &e)
	if why != "" {
		return "", e.err(f, why)
	}
	return string(b), nil
}

// Hash returns what goes into user_data[f] for raw: a pre-hashed value
// passed through (exactly 64 hex digits in any case, lowercased; or
// "<64 hex>.<appendix>" from Meta's parameter builder, unchanged; 32 hex
// digits are not treated as hashed), else the lowercase hex SHA-256 of
// Normalize. The error is that of Normalize when the value must be dropped.
// It is safe for concurrent use.
func Hash(f Field, raw string, o Options) (string, error) {
	e := o.env()
	var buf, scratch [128]byte
	b, _, why := appendHash(buf[:0], scratch[:0], f, raw, &e)
	if why != "" {
		return "", e.err(f, why)
	}
	return string(b), nil
}

// appendHash appends the user_data value for raw to dst, using scratch for
// the plaintext; both grown slices are returned for reuse.
func appendHash(dst, scratch []byte, f Field, raw string, e *env) ([]byte, []byte, string) {
	t := trimJS(raw)
	switch preHashed(t) {
	case hashHex:
		for i := 0; i < len(t); i++ {
			dst = append(dst, lowerASCII(t[i]))
		}
		return dst, scratch, ""
	case hashAppendix:
		return append(dst, t...), scratch, ""
	}
	scratch, why := appendNormalized(scratch[:0], f, raw, e)
	if why != "" {
		return dst, scratch, why
	}
	sum := sha256.Sum256(scratch)
	return appendHex(dst, &sum), scratch, ""
}

const hexDigits = "0123456789abcdef"

// appendHex is hex.AppendEncode for one digest, unrolled for the hot path.
func appendHex(dst []byte, sum *[sha256.Size]byte) []byte {
	var out [2 * sha256.Size]byte
	for i, b := range sum {
		out[2*i] = hexDigits[b>>4]
		out[2*i+1] = hexDigits[b&0x0f]
	}
	return append(dst, out[:]...)
}

type hashKind int

const (
	notHashed hashKind = iota
	hashHex
	hashAppendix
)

// preHashed classifies a trimmed value (spec §3.2 "Go rules"). The appendix
// is the parameter builder's: a 2-character legacy token or 8 base64url
// characters (spec §5.3).
func preHashed(s string) hashKind {
	if len(s) < 64 || !isHex(s[:64]) {
		return notHashed
	}
	if len(s) == 64 {
		return hashHex
	}
	if s[64] != '.' {
		return notHashed
	}
	app := s[65:]
	if len(app) != 2 && len(app) != 8 {
		return notHashed
	}
	for i := 0; i < len(app); i++ {
		c := app[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return notHashed
		}
	}
	return hashAppendix
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
