package normalize

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

var monthNames = map[string]int{
	"january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3,
	"april": 4, "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7,
	"august": 8, "aug": 8, "september": 9, "sep": 9, "sept": 9,
	"october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}

// monthFirstRegions read an ambiguous n/n/yyyy as month/day under
// DateOrderAuto: the US, its territories and the few countries that share
// the habit.
var monthFirstRegions = map[string]bool{
	"": true, "us": true, "pr": true, "gu": true, "vi": true, "as": true, "mp": true,
	"um": true, "ph": true, "fm": true, "pw": true, "mh": true,
}

type dateToken struct {
	num   int // value of a digit run, or month for a month name
	width int // number of digits; 0 for a month name
}

// appendDate writes YYYYMMDD (spec §3.3 db). See the package doc for the
// accepted forms and the day/month rule.
func appendDate(dst []byte, s string, e *env) ([]byte, string) {
	// A time of day (ISO 8601 "T00:00:00Z", "12:00 AM") is cut off at the
	// last space or T before the first colon.
	if c := strings.IndexByte(s, ':'); c >= 0 {
		cut := strings.LastIndexAny(s[:c], " tT")
		if cut < 0 {
			return dst, "unrecognised date"
		}
		s = s[:cut]
	}
	var toks [4]dateToken
	nt, months := 0, 0
	for i := 0; i < len(s); {
		r, n := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		switch {
		case digitValue(r) >= 0:
			tok := dateToken{}
			for i < len(s) {
				r, n = rune(s[i]), 1
				if r >= utf8.RuneSelf {
					r, n = utf8.DecodeRuneInString(s[i:])
				}
				v := digitValue(r)
				if v < 0 {
					break
				}
				if tok.width < 9 {
					tok.num = tok.num*10 + v
				}
				tok.width++
				i += n
			}
			if nt == len(toks) {
				return dst, "unrecognised date"
			}
			toks[nt] = tok
			nt++
		case r < utf8.RuneSelf && ('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'):
			j := i
			for j < len(s) && ('a' <= s[j] && s[j] <= 'z' || 'A' <= s[j] && s[j] <= 'Z') {
				j++
			}
			var buf [9]byte
			w := s[i:j]
			if len(w) > len(buf) {
				return dst, "unrecognised word in date"
			}
			for k := 0; k < len(w); k++ {
				buf[k] = lowerASCII(w[k])
			}
			word := buf[:len(w)]
			i = j
			switch string(word) {
			case "st", "nd", "rd", "th", "of", "de":
				continue
			}
			m, ok := monthNames[string(word)]
			if !ok || nt == len(toks) {
				return dst, "unrecognised word in date"
			}
			toks[nt] = dateToken{num: m}
			nt++
			months++
		default:
			if r >= utf8.RuneSelf && unicode.IsLetter(r) {
				return dst, "unrecognised word in date"
			}
			i += n
		}
	}
	y, m, d, why := dateParts(toks[:nt], months, e)
	if why != "" {
		return dst, why
	}
	if y < 1900 || y > e.year() {
		return dst, "year outside 1900 to this year"
	}
	if m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return dst, "no such day"
	}
	return append(dst,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10),
		byte('0'+m/10), byte('0'+m%10), byte('0'+d/10), byte('0'+d%10)), ""
}

func dateParts(toks []dateToken, months int, e *env) (y, m, d int, why string) {
	monthFirst := e.monthFirst()
	switch {
	case len(toks) == 1 && toks[0].width == 8:
		v := toks[0].num
		// YYYYMMDD when that is a real date, else MMDDYYYY or DDMMYYYY.
		y, m, d = v/10000, v/100%100, v%100
		if validDate(y, m, d, e) {
			return y, m, d, ""
		}
		a, b := v/1000000, v/10000%100
		y = v % 10000
		if !monthFirst {
			a, b = b, a
		}
		if validDate(y, a, b, e) {
			return y, a, b, ""
		}
		return y, b, a, ""
	case len(toks) == 3 && months == 0:
		t0, t1, t2 := toks[0], toks[1], toks[2]
		if t0.width == 4 && t1.width <= 2 && t2.width <= 2 {
			return t0.num, t1.num, t2.num, ""
		}
		if t0.width > 2 || t1.width > 2 || t2.width != 4 && t2.width != 2 {
			return 0, 0, 0, "unrecognised date"
		}
		y = t2.num
		if t2.width == 2 {
			y += 2000
			if y > e.year() {
				y -= 100
			}
		}
		a, b := t0.num, t1.num
		switch {
		case a > 12 && b <= 12:
			return y, b, a, ""
		case b > 12 && a <= 12:
			return y, a, b, ""
		case monthFirst:
			return y, a, b, ""
		default:
			return y, b, a, ""
		}
	case len(toks) == 3 && months == 1:
		var nums [2]dateToken
		k := 0
		for _, t := range toks {
			if t.width == 0 {
				m = t.num
			} else {
				nums[k] = t
				k++
			}
		}
		switch {
		case nums[0].width == 4 && nums[1].width <= 2:
			return nums[0].num, m, nums[1].num, ""
		case nums[1].width == 4 && nums[0].width <= 2:
			return nums[1].num, m, nums[0].num, ""
		}
	}
	return 0, 0, 0, "unrecognised date"
}

func validDate(y, m, d int, e *env) bool {
	return y >= 1900 && y <= e.year() && m >= 1 && m <= 12 && d >= 1 && d <= daysIn(y, m)
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
