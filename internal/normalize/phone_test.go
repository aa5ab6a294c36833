package normalize

import (
	"testing"
)

// extraPhones widen the fast/full comparison beyond the corpus.
var extraPhones = []string{
	"(650) 555-1212", "1 650 555 1212", "+1 650 555 1212", "011 44 20 7946 0958",
	"0044 20 7946 0958", "020 7946 0958", "07700 900123", "+44 (0) 7700 900123",
	"030 12345678", "+49 (0)30 12345678", "0151 23456789", "06 12 34 56 78",
	"+33 6 12 34 56 78", "0033 6 12 34 56 78", "+39 06 1234 5678", "06 1234 5678",
	"+81 3-1234-5678", "03-1234-5678", "010 81 3 1234 5678", "+61 2 1234 5678",
	"0011 61 2 1234 5678", "(02) 1234 5678", "+7 495 123-45-67", "8 495 123-45-67",
	"+86 10 1234 5678", "010 1234 5678", "+55 11 91234 5678", "0 15 11 91234 5678",
	"555-1212", "+800 1234 5678", "12", "+12", "+1", "0", "00", "000", "+0044 20 7946 0958",
	"+999 123 4567", "1650555121", "16505551212", "6505551212", "+52 55 1234 5678",
}

func TestPhoneFastPathMatchesFullParse(t *testing.T) {
	t.Parallel()
	inputs := append([]string(nil), extraPhones...)
	regions := []string{"", "US", "CA", "GB", "DE", "FR", "IT", "IN", "BR", "MX", "JP", "AU", "RU", "AE", "EG", "CN"}
	if rows := loadPeerRowsOptional(t); rows != nil {
		for _, r := range rows {
			if r.Field == string(Phone) {
				inputs = append(inputs, r.Input)
			}
		}
	}
	pt := phoneData()
	decided, total := 0, 0
	for _, in := range inputs {
		for _, region := range regions {
			var buf [maxPhoneDigits]byte
			d, plus, ok := scanPhone(&buf, prepare(in))
			if !ok || len(d) == 0 {
				continue
			}
			def := pt.region(region)
			plus, digits := phoneShape(d, plus, def)
			total++
			fast, fwhy, ok := fastPhone(pt, digits, plus, def)
			if !ok {
				continue
			}
			decided++
			full, gwhy := fullPhone(pt, digits, plus, def)
			fastOut, fastErr := "", fwhy
			if fwhy == "" {
				fast.intl = plus
				b, why := acceptPhone(nil, fast)
				fastOut, fastErr = string(b), why
			}
			fullOut, fullErr := "", gwhy
			if gwhy == "" {
				full.intl = plus
				b, why := acceptPhone(nil, full)
				fullOut, fullErr = string(b), why
			}
			if fastOut != fullOut || (fastErr == "") != (fullErr == "") {
				t.Errorf("phone %q region %q (digits %s, plus %v): fast = %q (%s), full parse = %q (%s)",
					in, region, digits, plus, fastOut, fastErr, fullOut, fullErr)
			}
		}
	}
	if decided*2 < total {
		t.Errorf("fast path decided only %d of %d phone cases", decided, total)
	}
	t.Logf("fast path decided %d of %d (input, region) cases; all equal to phonenumbers.Parse", decided, total)
}

func loadPeerRowsOptional(t *testing.T) []peerRow {
	var rows []peerRow
	t.Run("corpus", func(t *testing.T) { rows = loadPeerRows(t) })
	return rows
}

func TestScanPhone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, digits string
		plus       bool
	}{
		{"+1 (650) 555-1212", "16505551212", true},
		{"tel:+1-650-555-1212", "16505551212", true},
		{"+1 650 555 1212 ext. 123", "16505551212", true},
		{"+1 650 555 1212 x123", "16505551212", true},
		{"0xx11 91234-5678", "01191234" + "5678", false},
		{"１６５０５５５１２１２", "16505551212", false},
		{"٠١٢٣", "0123", false},
		{"16505551212.0", "16505551212", false},
	}
	for _, tc := range tests {
		var buf [maxPhoneDigits]byte
		d, plus, _ := scanPhone(&buf, tc.in)
		if string(d) != tc.digits || plus != tc.plus {
			t.Errorf("scanPhone(%q) = %q, %v, want %q, %v", tc.in, d, plus, tc.digits, tc.plus)
		}
	}
}

// TestPhoneKeptAsWrittenReadsBack: an explicitly international number too
// long for its plan is kept as written only when normalizing the result
// gives the result again. "+1 111…" would lose another trunk "1" on every
// pass (FuzzNormalize found it), so it is refused; Mexico's old mobile "1"
// is not a trunk prefix and stays.
func TestPhoneKeptAsWrittenReadsBack(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"+1111111111111110", ""},
		{"\xff001111111111111110", ""},
		{"+52 1 55 1234 5678", "5215512345678"},
		{"+1 650 555 1212", "16505551212"},
	} {
		got, err := Normalize(Phone, tc.in, Options{})
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("Normalize(ph, %q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		if got != "" {
			if again, err := Normalize(Phone, got, Options{}); again != got || err != nil {
				t.Errorf("Normalize(ph, %q) = %q, %v; want it unchanged", got, again, err)
			}
		}
	}
}
