package normalize

// LooksLikeCard reports whether s could be a payment card number: 13 to 19
// digits, optionally grouped by spaces or dashes, passing the Luhn check.
// The tag never sends such a value and the relay refuses one anywhere it
// could become user data: card numbers must not be stored or reach Meta
// (PCI scope; Meta restricts pixels that send them). A phone number can
// pass too (about one in ten of those with 13+ digits); losing it is the
// price of never keeping a card number.
func LooksLikeCard(s string) bool {
	var digits [19]byte
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			if n == len(digits) {
				return false
			}
			digits[n] = c - '0'
			n++
		case c == ' ' || c == '-':
		default:
			return false
		}
	}
	return n >= 13 && luhn(digits[:n])
}

// luhn reports whether the digits end in a valid Luhn check digit: every
// second digit from the right is doubled (9 subtracted past 9) and the sum
// is a multiple of ten.
func luhn(d []byte) bool {
	sum := 0
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if (len(d)-1-i)%2 == 1 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}
