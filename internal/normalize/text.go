package normalize

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"
)

// isJSSpace reports whether r is white space for JavaScript's String.prototype.trim
// and the regular expression class \s (ECMA-262 WhiteSpace and LineTerminator):
// U+0009, U+000A, U+000B, U+000C, U+000D, U+0020, U+00A0, U+FEFF, U+2028,
// U+2029 and every other Zs code point. Unlike unicode.IsSpace it includes
// U+FEFF and excludes U+0085.
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xA0, 0xFEFF, 0x2028, 0x2029:
		return true
	}
	return r > 0xFF && unicode.Is(unicode.Zs, r)
}

// trimJS trims leading and trailing JavaScript white space.
func trimJS(s string) string {
	for len(s) > 0 {
		c := s[0]
		if c < utf8.RuneSelf {
			if !isJSSpace(rune(c)) {
				break
			}
			s = s[1:]
			continue
		}
		r, n := utf8.DecodeRuneInString(s)
		if !isJSSpace(r) {
			break
		}
		s = s[n:]
	}
	for len(s) > 0 {
		c := s[len(s)-1]
		if c < utf8.RuneSelf {
			if !isJSSpace(rune(c)) {
				break
			}
			s = s[:len(s)-1]
			continue
		}
		r, n := utf8.DecodeLastRuneInString(s)
		if !isJSSpace(r) {
			break
		}
		s = s[:len(s)-n]
	}
	return s
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lowerPool holds lowercasers: a cases.Caser keeps state and is not safe for
// concurrent use, so each call borrows one.
var lowerPool = sync.Pool{New: func() any {
	c := cases.Lower(language.Und)
	return &c
}}

// prepare applies the steps every field shares: Unicode NFC, JavaScript
// trimming and full Unicode lowercasing (special casing: final sigma, U+0130).
// ASCII input, the common case, is only trimmed, without allocating: the
// field rules lowercase ASCII letters as they copy them (lowerASCII).
func prepare(raw string) string {
	if isASCII(raw) {
		return trimJS(raw)
	}
	s := raw
	// Invalid UTF-8 becomes U+FFFD first (as encoding/json does): otherwise
	// removing a character between two stray bytes can join them into a new
	// letter, and normalizing twice would not give the same result.
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if !norm.NFC.IsNormalString(s) {
		s = norm.NFC.String(s)
	}
	s = trimJS(s)
	c := lowerPool.Get().(*cases.Caser)
	s = c.String(s)
	lowerPool.Put(c)
	// Lowercasing can denormalize (U+0130 gives i + U+0307, which stays
	// decomposed in NFC), so NFC again only when needed.
	if !norm.NFC.IsNormalString(s) {
		s = norm.NFC.String(s)
	}
	return s
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// appendLetters appends to dst the letters (any script, Unicode L) and
// combining marks (M, needed by scripts such as Devanagari or Thai and by
// decomposed accents) of s, dropping white space, punctuation, symbols,
// digits and controls.
func appendLetters(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
				dst = append(dst, lowerASCII(c))
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsLetter(r) || unicode.IsMark(r) {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return dst
}

// digitValue returns the value of a decimal digit of any script (Unicode Nd:
// ASCII, fullwidth, Arabic-Indic, Devanagari...), or -1.
func digitValue(r rune) int {
	if '0' <= r && r <= '9' {
		return int(r - '0')
	}
	if r < utf8.RuneSelf {
		return -1
	}
	return digitValueSlow(r)
}

func digitValueSlow(r rune) int {
	if r < 0x660 || !unicode.Is(unicode.Nd, r) {
		return -1
	}
	// Every Nd range in the Unicode tables is a run of whole 0..9 blocks
	// starting at a zero.
	for _, rg := range unicode.Nd.R16 {
		if uint16(r) >= rg.Lo && uint16(r) <= rg.Hi && r <= 0xFFFF {
			return int((uint16(r) - rg.Lo) % 10)
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if uint32(r) >= rg.Lo && uint32(r) <= rg.Hi {
			return int((uint32(r) - rg.Lo) % 10)
		}
	}
	return -1
}
