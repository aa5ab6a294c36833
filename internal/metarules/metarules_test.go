package metarules

import (
	"testing"
	"time"
)

func TestCheckTime(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	day := int64(24 * 3600)
	for _, tc := range []struct {
		name   string
		t      int64
		source string
		want   TimeVerdict
	}{
		{"now", now.Unix(), "website", TimeOK},
		{"6 days website", now.Unix() - 6*day, "website", TimeOK},
		{"8 days website", now.Unix() - 8*day, "website", TimeTooOld},
		{"8 days email", now.Unix() - 8*day, "email", TimeTooOld},
		{"20 days store", now.Unix() - 20*day, "physical_store", TimeOK},
		{"62 days store", now.Unix() - 62*day, "physical_store", TimeOK},
		{"63 days store", now.Unix() - 63*day, "physical_store", TimeTooOld},
		{"9 minutes ahead", now.Unix() + 540, "website", TimeAhead},
		{"11 minutes ahead", now.Unix() + 660, "website", TimeFuture},
	} {
		if got := CheckTime(tc.t, tc.source, now); got != tc.want {
			t.Errorf("%s: CheckTime = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestParseEventTime(t *testing.T) {
	for in, want := range map[string]int64{
		"1733500000":                 1733500000,
		" 1733500000 ":               1733500000,
		"2026-12-06T10:00:00Z":       1796551200,
		"2026-12-06T11:00:00+01:00":  1796551200,
		"2026-12-06T10:00:00.250Z":   1796551200,
		"2026-12-06T11:00:00+0100":   1796551200,
		"2026-12-06T10:00:00.5+0000": 1796551200,
	} {
		if got, ok := ParseEventTime(in); !ok || got != want {
			t.Errorf("ParseEventTime(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "yesterday", "2026-12-06", "2026-12-06 10:00:00", "1.5e9", "2026-12-06T10:00:00"} {
		if got, ok := ParseEventTime(in); ok {
			t.Errorf("ParseEventTime(%q) = %d, want refused", in, got)
		}
	}
}

func TestParseValue(t *testing.T) {
	for in, want := range map[string]float64{"49.90": 49.9, "-3": -3, " 7 ": 7, "1e3": 1000, "0": 0} {
		if got, ok := ParseValue(in); !ok || got != want {
			t.Errorf("ParseValue(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "abc", "49,90", "NaN", "Inf", "0x10", "1_000", "$5"} {
		if got, ok := ParseValue(in); ok {
			t.Errorf("ParseValue(%q) = %v, want refused", in, got)
		}
	}
}

func TestIsThin(t *testing.T) {
	for _, tc := range []struct {
		keys []string
		want bool
	}{
		{nil, true},
		{[]string{"ct", "country", "st", "zp", "ge", "client_user_agent"}, true},
		{[]string{"ge", "ct"}, true},
		{[]string{"db", "client_user_agent"}, true},
		{[]string{"fn", "ge"}, true},
		{[]string{"fn", "ln"}, false},
		{[]string{"db", "ge"}, false},
		{[]string{"em"}, false},
		{[]string{"ct", "fbp"}, false},
		{[]string{"f5first"}, false},
	} {
		if got := IsThin(tc.keys); got != tc.want {
			t.Errorf("IsThin(%v) = %v, want %v", tc.keys, got, tc.want)
		}
	}
}

// Every user_data key is in exactly one of the lists, and none is unknown
// to UserDataFields.
func TestFieldListsDisjoint(t *testing.T) {
	seen := map[string]int{}
	for _, l := range [][]string{HashedListFields, HashedSingleFields, PlainFields, {ExternalID}} {
		for _, k := range l {
			seen[k]++
		}
	}
	for k, n := range seen {
		if n != 1 || !Has(UserDataFields, k) {
			t.Errorf("user_data key %s: in %d lists, in UserDataFields %v", k, n, Has(UserDataFields, k))
		}
	}
	if len(seen) != len(UserDataFields) {
		t.Errorf("UserDataFields has %d keys, the lists %d", len(UserDataFields), len(seen))
	}
}

func TestIsCookieValue(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"fb.1.1596403881668.1116446470":          true,
		"fb.0.1596403881668.AbC-_x":              true,
		"fb.2.1596403881668.1116446470.AQQAAQMC": true,
		"fb.1.1596403881668.1116446470.BA":       true,
		"fb.1.1596403881668.1116446470.XX":       false,
		"fb.1.1596403881668.1116446470.AQcAAQMC": false, // language index 7
		"fb.1.1596403881668":                     false,
		"fb.1.1596403881668.":                    false,
		"fb..1596403881668.x":                    false,
		"fb.12.1596403881668.1116446470":         true, // as Meta's Parameter Builder and package fbcookie read it
		"fb.a.1596403881668.1116446470":          false,
		"fb.1.1596403881668.IwAR2F4 x":           true, // the click id's characters are never judged
		"FB.1.1596403881668.x":                   false,
		"fb.1.1596403881668.a.b.c":               false,
		"":                                       false,
	} {
		if got := IsCookieValue(s); got != want {
			t.Errorf("IsCookieValue(%q) = %v, want %v", s, got, want)
		}
		if got := IsCookieValue([]byte(s)); got != want {
			t.Errorf("IsCookieValue([]byte(%q)) = %v, want %v", s, got, want)
		}
	}
}
