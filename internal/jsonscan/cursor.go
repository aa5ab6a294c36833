package jsonscan

import (
	"bytes"
	"encoding/binary"
	"unicode/utf16"
	"unicode/utf8"
)

// Cursor reads one JSON text, B, from position I. It is the one walker the
// hand-written readers (event's fast decoder and custom_data scan,
// collect's browser body, capi's validator) share: each says which keys it
// knows and what each value must be, the cursor does the grammar. Every
// method reports false, with I unspecified, on anything it does not take;
// the readers then fall back to encoding/json or report a syntax error.
// A Cursor allocates only the strings it returns: none for keys, numbers
// and raw values, none for a string that needs no unescaping when S is
// set.
type Cursor struct {
	B []byte
	I int
	// S, when set, holds the same bytes as B: strings that need no
	// unescaping are cut from it instead of each being copied.
	S string
}

// Peek skips white space and returns the next byte, or 0 at the end.
func (c *Cursor) Peek() byte {
	if c.I < len(c.B) && c.B[c.I] > ' ' { // compact JSON: no space to skip
		return c.B[c.I]
	}
	c.I = Space(c.B, c.I)
	if c.I < len(c.B) {
		return c.B[c.I]
	}
	return 0
}

// Eat skips white space and consumes ch if it is next.
func (c *Cursor) Eat(ch byte) bool {
	if c.Peek() == ch && c.I < len(c.B) {
		c.I++
		return true
	}
	return false
}

// Done skips white space and reports whether nothing else is left.
func (c *Cursor) Done() bool {
	c.I = Space(c.B, c.I)
	return c.I == len(c.B)
}

// Literal consumes lit (true, false or null) at I.
func (c *Cursor) Literal(lit string) bool {
	if len(c.B)-c.I < len(lit) || string(c.B[c.I:c.I+len(lit)]) != lit {
		return false
	}
	c.I += len(lit)
	return true
}

// Object reads the object next in B, calling member with each key,
// positioned at the key's value, which member must consume. The key is the
// literal's contents as written: a valid string, but escapes are not
// decoded and UTF-8 is not checked (Verbatim tells whether it is what
// encoding/json would make of it). Object stops, reporting false, when
// member does.
func (c *Cursor) Object(member func(key []byte) bool) bool {
	if !c.Eat('{') {
		return false
	}
	if c.Eat('}') {
		return true
	}
	for {
		if c.Peek() != '"' {
			return false
		}
		end := String(c.B, c.I)
		if end < 0 {
			return false
		}
		key := c.B[c.I+1 : end-1]
		c.I = end
		if !c.Eat(':') {
			return false
		}
		c.Peek()
		if !member(key) {
			return false
		}
		switch c.Peek() {
		case ',':
			c.I++
		case '}':
			c.I++
			return true
		default:
			return false
		}
	}
}

// Array reads the array next in B, calling elem positioned at each
// element, which elem must consume.
func (c *Cursor) Array(elem func() bool) bool {
	if !c.Eat('[') {
		return false
	}
	if c.Eat(']') {
		return true
	}
	for {
		c.Peek()
		if !elem() {
			return false
		}
		switch c.Peek() {
		case ',':
			c.I++
		case ']':
			c.I++
			return true
		default:
			return false
		}
	}
}

// Raw consumes one value, checked as strictly as encoding/json, nested at
// most maxDepth levels below itself, and returns its bytes (a sub-slice of
// B).
func (c *Cursor) Raw(maxDepth int) ([]byte, bool) {
	c.Peek()
	start := c.I
	end := Value(c.B, start, maxDepth)
	if end < 0 {
		return nil, false
	}
	c.I = end
	return c.B[start:end:end], true
}

// Verbatim reports whether the contents of a string literal (as Object
// gives keys) are what encoding/json decodes them to: no escapes, valid
// UTF-8.
func Verbatim(s []byte) bool {
	for i, ch := range s {
		// In a valid literal, a byte that is not Plain is a backslash or
		// part of a non-ASCII rune.
		if !Plain[ch] {
			return bytes.IndexByte(s[i:], '\\') < 0 && utf8.Valid(s[i:])
		}
	}
	return true
}

// VerbatimString reads a string literal that needs no decoding (no
// escapes, valid UTF-8) and returns its contents as a sub-slice of B; any
// other string it refuses.
func (c *Cursor) VerbatimString() ([]byte, bool) {
	b := c.B
	if c.I >= len(b) || b[c.I] != '"' {
		return nil, false
	}
	start := c.I + 1
	ascii := true
	// Most bytes are Plain: eight at a time.
	for j := PlainRun(b, start); j < len(b); j = PlainRun(b, j+1) {
		switch ch := b[j]; {
		case ch == '"':
			v := b[start:j]
			if !ascii && !utf8.Valid(v) {
				return nil, false
			}
			c.I = j + 1
			return v, true
		case ch == '\\' || ch < 0x20:
			return nil, false
		default: // ch >= utf8.RuneSelf
			ascii = false
		}
	}
	return nil, false
}

// Plain marks the bytes a string literal holds as they are, needing
// neither unescaping nor a UTF-8 check: all but the closing quote, a
// backslash, control characters and the bytes of non-ASCII runes.
var Plain = func() (t [256]bool) {
	for ch := 0x20; ch < utf8.RuneSelf; ch++ {
		t[ch] = ch != '"' && ch != '\\'
	}
	return t
}()

// VerbatimText is VerbatimString as a string: a substring of S when the
// cursor has one, else a copy.
func (c *Cursor) VerbatimText() (string, bool) {
	v, ok := c.VerbatimString()
	if !ok {
		return "", false
	}
	return c.justRead(v), true
}

// justRead returns v, the contents of the string literal just read (its
// closing quote at I-1), as a string: a substring of S when the cursor has
// one, else a copy.
func (c *Cursor) justRead(v []byte) string {
	if c.S == "" {
		return string(v)
	}
	end := c.I - 1
	return c.S[end-len(v) : end]
}

// String reads the string literal at I and decodes it exactly as
// encoding/json does: escapes, surrogate pairs, and U+FFFD for invalid
// UTF-8 and lone surrogates. intern, if set, may return a constant for a
// value that needed no decoding, instead of a new string.
func (c *Cursor) String(intern func([]byte) string) (string, bool) {
	v, decoded, ok := c.stringBytes()
	switch {
	case !ok:
		return "", false
	case decoded:
		return string(v), true
	case intern != nil:
		if s := intern(v); s != "" {
			return s, true
		}
	}
	return c.justRead(v), true
}

// stringBytes is String without the conversion: v is a sub-slice of B
// when the literal needed no decoding (decoded false), else a new buffer.
func (c *Cursor) stringBytes() (v []byte, decoded, ok bool) {
	b := c.B
	if c.I >= len(b) || b[c.I] != '"' {
		return nil, false, false
	}
	start := c.I + 1
	j := PlainRun(b, start)
	if j < len(b) && b[j] == '"' {
		c.I = j + 1
		return b[start:j], false, true
	}
	out, end, ok := decode(b, start, j)
	if !ok || end == len(b) {
		return nil, false, false
	}
	c.I = end + 1
	if out == nil {
		return b[start:end], false, true
	}
	return out, true, true
}

// Unquote decodes the contents of a valid string literal (as Object gives
// keys), as String does; when there is nothing to rewrite it returns s.
func Unquote(s []byte) ([]byte, bool) {
	out, end, ok := decode(s, 0, 0)
	switch {
	case !ok || end != len(s):
		return nil, false
	case out == nil:
		return s, true
	}
	return out, true
}

// decode reads the contents of a string literal that start at b[start],
// from b[j] on, up to the first quote that is not escaped or the end of
// b, and returns where it stopped. out is what b[start:end] decodes to, or
// nil if that is b[start:end] itself.
func decode(b []byte, start, j int) (out []byte, end int, ok bool) {
	for j < len(b) {
		ch := b[j]
		switch {
		case ch == '"':
			return out, j, true
		case ch < 0x20:
			return nil, 0, false
		case ch < utf8.RuneSelf && ch != '\\':
			if out != nil {
				out = append(out, ch)
			}
			j++
		case ch >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size == 1 {
				if out == nil {
					out = newOut(b, start, j)
				}
				out = utf8.AppendRune(out, utf8.RuneError)
			} else if out != nil {
				out = append(out, b[j:j+size]...)
			}
			j += size
		default: // backslash
			if out == nil {
				out = newOut(b, start, j)
			}
			n, ok := unescape(b[j:], &out)
			if !ok {
				return nil, 0, false
			}
			j += n
		}
	}
	return out, j, true
}

// newOut starts the decoded contents of the literal that starts at
// b[start] with b[start:j], which needed no decoding. It has room for the
// literal up to the next quote, escaped or not, plus a little for the
// U+FFFD of invalid bytes; append grows it past that. Not the rest of b:
// b can be a whole request body, and a body whose URLs escape "/" or "&"
// (PHP's json_encode, Go's encoding/json) would allocate the rest of the
// body once per such string.
func newOut(b []byte, start, j int) []byte {
	n := len(b) - start
	if q := bytes.IndexByte(b[j:], '"'); q >= 0 {
		n = min(n, j+q-start+16)
	}
	return append(make([]byte, 0, n), b[start:j]...)
}

// unescape appends the character the escape at the start of b stands for
// (a surrogate pair as one rune, a lone surrogate as U+FFFD) and returns
// how many bytes it took.
func unescape(b []byte, out *[]byte) (int, bool) {
	if len(b) < 2 {
		return 0, false
	}
	switch e := b[1]; e {
	case '"', '\\', '/':
		*out = append(*out, e)
	case 'b':
		*out = append(*out, '\b')
	case 'f':
		*out = append(*out, '\f')
	case 'n':
		*out = append(*out, '\n')
	case 'r':
		*out = append(*out, '\r')
	case 't':
		*out = append(*out, '\t')
	case 'u':
		r := hex4(b)
		if r < 0 {
			return 0, false
		}
		n := 6
		if utf16.IsSurrogate(r) {
			if r2 := hex4(b[6:]); r2 >= 0 {
				if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
					r = pair
					n += 6
				} else {
					r = utf8.RuneError
				}
			} else {
				r = utf8.RuneError
			}
		}
		*out = utf8.AppendRune(*out, r)
		return n, true
	default:
		return 0, false
	}
	return 2, true
}

// hex4 reads the escape \uXXXX at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, ch := range b[2:6] {
		switch {
		case '0' <= ch && ch <= '9':
			ch -= '0'
		case 'a' <= ch && ch <= 'f':
			ch -= 'a' - 10
		case 'A' <= ch && ch <= 'F':
			ch -= 'A' - 10
		default:
			return -1
		}
		r = r*16 + rune(ch)
	}
	return r
}

// Number consumes a number and returns its text; it does not look at what
// follows (the caller's next read does).
func (c *Cursor) Number() ([]byte, bool) {
	start := c.I
	end := Number(c.B, start)
	if end < 0 {
		return nil, false
	}
	c.I = end
	return c.B[start:end], true
}

// Uint returns the value of num if it is only decimal digits, at most
// maxDigits of them (so that up to 19 it cannot overflow).
func Uint(num []byte, maxDigits int) (uint64, bool) {
	if len(num) == 0 || len(num) > maxDigits {
		return 0, false
	}
	var n uint64
	for _, ch := range num {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + uint64(ch-'0')
	}
	return n, true
}

// The SWAR masks of PlainRun: a byte's low bit and high bit in each of
// a word's eight bytes.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainWord reports whether the eight bytes of w (little-endian) may all
// be Plain. It is exact but for borrows, which start only at a byte that
// is not Plain: a false report sends the caller to look at each byte.
func plainWord(w uint64) bool {
	// A byte's high bit is set after subtracting 0x20 when it is below
	// 0x20, after subtracting 1 from its XOR with '"' or '\' when it is
	// that byte, and in w itself when it is not ASCII.
	return (w|(w-lsb*0x20)|((w^lsb*'"')-lsb)|((w^lsb*'\\')-lsb))&msb == 0
}

// PlainRun returns the index of the first byte of b at or after i that is
// not Plain, or len(b): eight bytes at a time, then one by one.
func PlainRun(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if !plainWord(binary.LittleEndian.Uint64(b[i:])) {
			break
		}
	}
	for i < len(b) && Plain[b[i]] {
		i++
	}
	return i
}

// PlainRunString is PlainRun of a string.
func PlainRunString(s string, i int) int {
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if !plainWord(w) {
			break
		}
	}
	for i < len(s) && Plain[s[i]] {
		i++
	}
	return i
}
