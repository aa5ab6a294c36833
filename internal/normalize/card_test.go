package normalize

import "testing"

func TestLooksLikeCard(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"4111111111111111", true},      // Visa test number
		{"4111 1111 1111 1111", true},   // grouped by spaces
		{"4111-1111-1111-1111", true},   // grouped by dashes
		{"5555555555554444", true},      // Mastercard
		{"378282246310005", true},       // Amex, 15 digits
		{"6011111111111117", true},      // Discover
		{"4000056655665556", true},      // Visa debit
		{"4222222222222", true},         // 13 digits
		{"6759649826438453", true},      // Maestro, 16
		{"4111111111111112", false},     // Luhn fails
		{"4111 1111 1111 1112", false},  // Luhn fails, grouped
		{"79927398713", false},          // passes Luhn, 11 digits: too short
		{"+44 20 7946 0958", false},     // phone: '+' is no card character
		{"07946 095800", false},         // 12 digits
		{"41111111111111111111", false}, // 20 digits
		{"4111.1111.1111.1111", false},  // dots are not card grouping
		{"ada@example.com", false},
		{"", false},
	} {
		if got := LooksLikeCard(tc.in); got != tc.want {
			t.Errorf("LooksLikeCard(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
