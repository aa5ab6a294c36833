package normalize

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// appendEmail: trimmed and lowercased address that passes a minimal shape
// check (spec §3.3 em): exactly one @, a local part without white space,
// controls or the specials <>()[]\,;:" and without leading, trailing or
// doubled dots, and a domain of two or more non-empty labels of letters
// (any script), digits and inner hyphens whose last label has at least two
// characters and is not all digits. No Gmail dot or plus folding.
func appendEmail(dst []byte, s string) ([]byte, string) {
	at := strings.IndexByte(s, '@')
	if at < 0 || strings.LastIndexByte(s, '@') != at {
		return dst, "needs exactly one @"
	}
	local, domain := s[:at], s[at+1:]
	if local == "" || domain == "" {
		return dst, "empty local part or domain"
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return dst, "dot at edge of local part or doubled"
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; c < utf8.RuneSelf && !emailLocalOK[c] {
			return dst, "bad character in local part"
		}
	}
	for _, r := range local {
		if r < utf8.RuneSelf {
			continue
		}
		if isJSSpace(r) || unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
			strings.ContainsRune(`<>()[]\,;:"`, r) || r == utf8.RuneError {
			return dst, "bad character in local part"
		}
	}
	labels := 0
	for label := range strings.SplitSeq(domain, ".") {
		labels++
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return dst, "empty label or hyphen at edge of domain label"
		}
		for _, r := range label {
			if r < utf8.RuneSelf {
				if !emailDomainOK[r] {
					return dst, "bad character in domain"
				}
				continue
			}
			if r != '-' && !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r) {
				return dst, "bad character in domain"
			}
		}
	}
	if labels < 2 {
		return dst, "domain has no dot"
	}
	if tld := domain[strings.LastIndexByte(domain, '.')+1:]; utf8.RuneCountInString(tld) < 2 ||
		strings.Trim(tld, "0123456789") == "" {
		return dst, "bad top-level domain"
	}
	for i := 0; i < len(s); i++ {
		dst = append(dst, lowerASCII(s[i]))
	}
	return dst, ""
}

// emailLocalOK and emailDomainOK are the ASCII bytes allowed in the local
// part and in a domain label.
var emailLocalOK, emailDomainOK = func() (l, d [utf8.RuneSelf]bool) {
	for c := 0x21; c < 0x7f; c++ {
		l[c] = !strings.ContainsRune(`<>()[]\,;:"@`, rune(c))
		d[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
	}
	return l, d
}()

// appendName serves fn, ln and ct: letters of any script and combining
// marks only, lowercased (spec §3.3 fn/ln, ct).
func appendName(dst []byte, s string) ([]byte, string) {
	n := len(dst)
	dst = appendLetters(dst, s)
	if len(dst) == n {
		return dst, "no letters"
	}
	return dst, ""
}

// appendGender: non-letters (a to z) removed first, as the SDK does (so
// "f." and "mal e" work), then f, female, woman → f and m, male, man → m.
func appendGender(dst []byte, s string) ([]byte, string) {
	var buf [8]byte
	b := buf[:0]
	for i := 0; i < len(s); i++ {
		c := lowerASCII(s[i])
		if 'a' <= c && c <= 'z' {
			if len(b) == len(buf) {
				return dst, "not a recognised gender"
			}
			b = append(b, c)
		}
	}
	switch string(b) {
	case "f", "female", "woman":
		return append(dst, 'f'), ""
	case "m", "male", "man":
		return append(dst, 'm'), ""
	}
	return dst, "not a recognised gender"
}

// appendZip: for the US (the region, or no region and a value that is only
// a 5- or 9-digit ZIP with spaces or dashes) the first 5 digits; elsewhere
// lowercase letters and digits with spaces, dashes and other punctuation
// removed, at least 2 characters (spec §3.3 zp).
func appendZip(dst []byte, s, region string) ([]byte, string) {
	us := strings.EqualFold(region, "us")
	if region == "" {
		digits, other := 0, false
		for _, r := range s {
			switch {
			case digitValue(r) >= 0:
				digits++
			case r == '-' || isJSSpace(r):
			default:
				other = true
			}
		}
		us = !other && (digits == 5 || digits == 9)
	}
	n := len(dst)
	if us {
		for _, r := range s {
			if v := digitValue(r); v >= 0 {
				dst = append(dst, byte('0'+v))
				if len(dst)-n == 5 {
					return dst, ""
				}
			}
		}
		return dst[:n], "US ZIP needs 5 digits"
	}
	// An old European country prefix: "D-10115", "F-75018", "CH-8001".
	if p, rest, ok := strings.Cut(s, "-"); ok && len(p) <= 2 && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" &&
		len(rest) >= 4 && strings.Trim(rest, "0123456789") == "" {
		s = rest
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if v := digitValue(r); v >= 0 {
			dst = append(dst, byte('0'+v))
		} else if r < utf8.RuneSelf && unicode.IsLetter(r) {
			dst = append(dst, lowerASCII(byte(r)))
		} else if unicode.IsLetter(r) || unicode.IsMark(r) {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	if len(dst)-n < 2 {
		return dst[:n], "postcode shorter than 2 characters"
	}
	// Without a region, nine digits read as a US ZIP+4 (see above), also
	// when other characters were removed to get there; so normalizing the
	// result again gives the same five digits.
	if region == "" && len(dst)-n == 9 && strings.Trim(string(dst[n:]), "0123456789") == "" {
		dst = dst[:n+5]
	}
	return dst, ""
}

// appendExternalID is the canonical external_id: NFC, lowercase, every
// white space removed (as Meta's parameter builder does), then hashed. Use
// the same form on every channel.
func appendExternalID(dst []byte, s string) ([]byte, string) {
	n := len(dst)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !isJSSpace(rune(c)) {
				dst = append(dst, lowerASCII(c))
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !isJSSpace(r) {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	if len(dst) == n {
		return dst, reasonEmpty
	}
	return dst, ""
}
