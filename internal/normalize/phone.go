package normalize

import (
	"strings"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// maxPhoneDigits bounds the digits collected from one input: E.164 allows
// 15, libphonenumber's national number 17 plus a 3-digit calling code.
const maxPhoneDigits = 24

// scanPhone copies the digits of s (any script) into buf and reports whether
// a plus sign came before the first digit. Everything that is neither digit
// nor plus is ignored (spaces, punctuation, "tel:", letters), except that an
// extension marker (# , ; ~ x ext) seen after 7 or more digits ends the
// number. ok is false when there are more than maxPhoneDigits digits.
func scanPhone(buf *[maxPhoneDigits]byte, s string) (d []byte, plus, ok bool) {
	d = buf[:0]
	// A number that went through a spreadsheet as a float: "16505551212.0".
	if t, ok := strings.CutSuffix(s, ".0"); ok && len(t) > 0 && '0' <= t[len(t)-1] && t[len(t)-1] <= '9' {
		s = t
	}
	for i := 0; i < len(s); {
		r, n := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		if v := digitValue(r); v >= 0 {
			if len(d) == maxPhoneDigits {
				return d, plus, false
			}
			d = append(d, byte('0'+v))
			i += n
			continue
		}
		switch r {
		case '+', '＋':
			if len(d) == 0 {
				plus = true
			}
		case '#', ',', ';', '~', 'x', 'X', 'e', 'E':
			if len(d) >= 7 && (r != 'e' && r != 'E' || len(s)-i >= 3 && strings.EqualFold(s[i:i+3], "ext")) {
				return d, plus, true
			}
		}
		i += n
	}
	return d, plus, true
}

// e164 is a phone number split into calling code and national significant
// number, before the final plausibility check.
type e164 struct {
	cc  *phoneMeta
	nsn string
	// intl is true when the input carried its calling code explicitly (+,
	// 00, or no region to supply one). Then the number is kept as written
	// if its length is plausible; a number completed from the region must
	// have a possible length for that country.
	intl bool
}

// appendPhone appends the E.164 digits of s (no plus) to dst. region is the
// upper- or lower-case alpha-2 region for numbers without a country code.
func appendPhone(dst []byte, s, region string) ([]byte, string) {
	var buf [maxPhoneDigits]byte
	d, plus, ok := scanPhone(&buf, s)
	if !ok {
		return dst, "too many digits"
	}
	if len(d) == 0 {
		return dst, "no digits"
	}
	t := phoneData()
	def := t.region(region)
	plus, digits := phoneShape(d, plus, def)
	num, why := parsePhone(t, digits, plus, def)
	if why != "" {
		return dst, why
	}
	num.intl = plus
	return acceptPhone(dst, num)
}

// parsePhone splits digits into calling code and national number: from the
// tables when they decide, else with phonenumbers.Parse.
func parsePhone(t *phoneTables, digits string, plus bool, def *phoneMeta) (e164, string) {
	num, why, decided := fastPhone(t, digits, plus, def)
	if !decided {
		num, why = fullPhone(t, digits, plus, def)
	}
	return num, why
}

// phoneShape applies the rules that come before libphonenumber: a leading
// "00" (two or more zeros) is an international prefix whatever the region,
// and without a known region the digits must already carry a calling code.
func phoneShape(d []byte, plus bool, def *phoneMeta) (bool, string) {
	if !plus && len(d) >= 2 && d[0] == '0' && d[1] == '0' {
		for len(d) > 0 && d[0] == '0' {
			d = d[1:]
		}
		plus = true
	}
	if def == nil {
		plus = true
	}
	return plus, string(d)
}

// fastPhone decides the common shapes from the metadata tables, exactly as
// phonenumbers.Parse would; decided is false when it would need one of the
// library's regular expressions (then fullPhone runs).
func fastPhone(t *phoneTables, d string, plus bool, def *phoneMeta) (num e164, why string, decided bool) {
	if !plus {
		n, ok := matchPrefix(def.idd, def.iddRE, d)
		if !ok {
			return num, "", false
		}
		if n > 0 && (len(d) == n || d[n] != '0') {
			d = d[n:]
			plus = true
		}
	}
	if plus {
		if len(d) <= 2 {
			return num, "too short", true
		}
		if d[0] == '0' {
			return num, "", false
		}
		for i := 1; i <= 3 && i <= len(d); i++ {
			if m := t.byCC[atoi(d[:i])]; m != nil {
				num.cc, num.nsn = m, d[i:]
				break
			}
		}
		if num.cc == nil {
			return num, "", false
		}
	} else if strings.HasPrefix(d, def.ccStr) {
		// A national number that starts with the region's own calling code:
		// phonenumbers strips it when the whole is too long for the region.
		rest := d[len(def.ccStr):]
		if def.testLength(len(d)) != tooLong {
			return num, "", false
		}
		if n, ok := matchPrefix(def.npp, def.nppRE, rest); !ok || n >= 0 {
			return num, "", false
		}
		num.cc, num.nsn = t.byCC[def.cc], rest
		if num.cc == nil {
			return num, "", false
		}
	} else {
		// No calling code: the default region's metadata applies.
		num.cc, num.nsn = def, d
	}
	if len(num.nsn) < 2 {
		return num, "too short", true
	}
	// Trunk prefix ("0" in most of the world, "1" in NANPA): stripped when
	// the number with it cannot be a national number and the rest can.
	m := num.cc
	n, ok := matchPrefix(m.npp, m.nppRE, num.nsn)
	if !ok {
		return num, "", false
	}
	if n >= 0 {
		if r := m.testLength(len(num.nsn)); r == isPossible || r == isPossibleLocalOnly {
			// Whether the original is viable needs the national number pattern.
			return num, "", false
		}
		switch m.testLength(len(num.nsn) - n) {
		case tooShort, isPossibleLocalOnly, invalidLength:
		default:
			num.nsn = num.nsn[n:]
		}
	}
	if len(num.nsn) < 2 || len(num.nsn) > 17 {
		return num, "bad length", true
	}
	return num, "", true
}

func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// fullPhone runs phonenumbers.Parse on the digits (with a plus when
// international) in the default region.
func fullPhone(t *phoneTables, d string, plus bool, def *phoneMeta) (e164, string) {
	in, region := d, ""
	if plus {
		in = "+" + d
	}
	if def != nil {
		region = def.id
	}
	pn, err := phonenumbers.Parse(in, region)
	if err != nil {
		return e164{}, err.Error()
	}
	cc := int(pn.GetCountryCode())
	if cc <= 0 || cc >= len(t.byCC) || t.byCC[cc] == nil {
		return e164{}, "invalid country code"
	}
	return e164{cc: t.byCC[cc], nsn: phonenumbers.GetNationalSignificantNumber(pn)}, ""
}

// acceptPhone applies the final checks and appends calling code and
// national number: 7 to 15 digits in all (E.164); the national number must
// not be too short or local-only for its country (a subscriber number
// without area code cannot match), and a number completed from the region
// must have a possible length. An explicitly international number that is
// too long for the current numbering plan is kept as written ("+52 1 55…",
// Mexico's old mobile prefix, which the SDK sends the same way).
func acceptPhone(dst []byte, num e164) ([]byte, string) {
	// Lengths are those of the calling code's main region, as in
	// phonenumbers.IsPossibleNumberWithReason (+1 from CA uses US data).
	if m := phoneData().byCC[num.cc.cc]; m != nil {
		num.cc = m
	}
	// Where "0" is the trunk prefix, no national number starts with 0: one
	// that still does after the trunk zero was dropped is not a number (and
	// normalizing its digits again would drop another zero).
	if strings.HasPrefix(num.nsn, "0") && num.cc.zeroTrunk() {
		return dst, "national number starts with the trunk prefix 0"
	}
	switch num.cc.possibleReason(len(num.nsn)) {
	case isPossible:
	case tooShort, isPossibleLocalOnly:
		return dst, "too short for +" + num.cc.ccStr
	default:
		if !num.intl {
			return dst, "not a possible length for +" + num.cc.ccStr
		}
		// Kept as written, it must also read back as written: the national
		// number of "+1 1111 1111 11110" starts with NANPA's trunk "1",
		// which every further parse would strip again.
		again, why := parsePhone(phoneData(), num.cc.ccStr+num.nsn, true, nil)
		if why != "" || again.nsn != num.nsn {
			return dst, "not a possible length for +" + num.cc.ccStr
		}
	}
	if n := len(num.cc.ccStr) + len(num.nsn); n < 7 || n > 15 {
		return dst, "not 7 to 15 digits"
	}
	dst = append(dst, num.cc.ccStr...)
	return append(dst, num.nsn...), ""
}
