package normalize

import (
	"reflect"
	"testing"
	"time"
)

// memoUsers builds a run of user_data from a few values, each value tried
// under several keys and with and without a country, so that a memo sees
// repeats, changes of region and values that are dropped.
func memoUsers(a, b, c string) []UserData {
	vals := []string{a, b, c, a}
	var out []UserData
	for i := range 6 {
		var u UserData
		for j, f := range Fields {
			v := vals[(i+j)%len(vals)]
			if (i+j)%5 == 4 {
				continue // the key is missing from this event
			}
			if f == Country && i%2 == 1 {
				v = b
			}
			if (i+j)%7 == 3 {
				*u.field(f) = []string{v, a}
			} else {
				*u.field(f) = []string{v}
			}
		}
		out = append(out, u)
	}
	return out
}

// FuzzHashUserDataMemo checks the memo against hashing afresh: a run of
// user_data hashed with one Memo gives the same as without.
func FuzzHashUserDataMemo(f *testing.F) {
	for _, s := range [][4]string{
		{"Mary", "US", "  mary ", ""},
		{"(650) 555-1212", "gb", "+44 20 7946 0958", "fr"},
		{"1997-02-16", "03/04/1997", "DE", "us"},
		{"62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F", "female", "", "ca"},
		{"5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5.AQQAAQMC", "California", "94025-1234", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3], uint8(0))
		f.Add(s[0], s[1], s[2], s[3], uint8(2))
	}
	f.Fuzz(func(t *testing.T, a, b, c, region string, order uint8) {
		var memo Memo
		for k, u := range memoUsers(a, b, c) {
			o := Options{Region: region, DateOrder: DateOrder(order % 3), Now: testNow}
			if k == 3 {
				o.Now = testNow.Add(400 * 24 * time.Hour) // a memo forgets a changed clock
			}
			want := HashUserData(&u, o)
			o.Memo = &memo
			if got := HashUserData(&u, o); !reflect.DeepEqual(got, want) {
				t.Fatalf("HashUserData(%+v) with a memo = %+v, want %+v", u, got, want)
			}
		}
	})
}

// TestMemoNeedsTheClock makes sure a memo is not used without Options.Now,
// whose zero value reads the clock at each call.
func TestMemoNeedsTheClock(t *testing.T) {
	var m Memo
	u := UserData{Fn: []string{"Mary"}}
	HashUserData(&u, Options{Memo: &m})
	if m.last[2].set {
		t.Fatal("HashUserData used the memo without Options.Now")
	}
	HashUserData(&u, Options{Memo: &m, Now: testNow})
	if !m.last[2].set {
		t.Fatal("HashUserData did not use the memo with Options.Now set")
	}
}

// BenchmarkHashUserDataMemo hashes a request's worth of user_data that
// differ in em, ph and external_id only, as bench/cmd/load sends them,
// with one Memo for the request. One op is one user_data.
func BenchmarkHashUserDataMemo(b *testing.B) {
	users := make([]UserData, 100)
	for j := range users {
		u := benchUser
		u.Em = []string{"mary.smith" + string(rune('a'+j%26)) + "@Example.com"}
		u.Ph = []string{"(650) 555-12" + string(rune('0'+j%10)) + string(rune('0'+j/10))}
		u.ExternalID = []string{"cust-" + string(rune('a'+j%26)) + string(rune('a'+j/26))}
		users[j] = u
	}
	for _, memo := range []bool{false, true} {
		name := "fresh"
		if memo {
			name = "memo"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var m Memo
			for i := 0; b.Loop(); i++ {
				o := Options{Region: "US", Now: testNow}
				if memo {
					if i%len(users) == 0 {
						m = Memo{} // a new request
					}
					o.Memo = &m
				}
				HashUserData(&users[i%len(users)], o)
			}
		})
	}
}
