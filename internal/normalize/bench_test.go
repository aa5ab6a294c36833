package normalize

import "testing"

// benchUser is a realistic US user_data: all 11 fields, one value each,
// phone in national format.
var benchUser = UserData{
	Em:         []string{"John.Smith@Example.com"},
	Ph:         []string{"(650) 555-1212"},
	Fn:         []string{"John"},
	Ln:         []string{"Smith"},
	Db:         []string{"1997-02-16"},
	Ge:         []string{"Male"},
	Ct:         []string{"Menlo Park"},
	St:         []string{"California"},
	Zp:         []string{"94025-1234"},
	Country:    []string{"US"},
	ExternalID: []string{"cust-000123"},
}

func BenchmarkHashUserData(b *testing.B) {
	o := Options{Region: "us"}
	HashUserData(&benchUser, o) // build the tables outside the loop
	b.ReportAllocs()
	for b.Loop() {
		HashUserData(&benchUser, o)
	}
}

func BenchmarkHash(b *testing.B) {
	o := Options{Region: "us"}
	for _, f := range Fields {
		v := benchUser.Get(f)[0]
		Hash(f, v, o)
		b.Run(string(f), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Hash(f, v, o)
			}
		})
	}
}

func TestHashUserData(t *testing.T) {
	t.Parallel()
	in := UserData{
		Em:      []string{"a@example.com", " A@EXAMPLE.COM ", "bad", ""},
		Ph:      []string{"020 7946 0958"},
		St:      []string{"Greater London"},
		Ge:      []string{"x", "f"},
		Country: []string{"United Kingdom"},
		Ct:      []string{"123"},
	}
	out := HashUserData(&in, Options{Region: "us", Now: testNow})
	if len(out.Em) != 1 || out.Em[0] != sha256Hex("a@example.com") {
		t.Errorf("Em = %q, want one hash of a@example.com", out.Em)
	}
	if len(out.Ph) != 1 || out.Ph[0] != sha256Hex("442079460958") {
		t.Errorf("Ph = %q, want the hash of 442079460958 (event country gb)", out.Ph)
	}
	if len(out.St) != 1 || out.St[0] != sha256Hex("greaterlondon") {
		t.Errorf("St = %q, want the hash of greaterlondon", out.St)
	}
	if len(out.Ge) != 1 || out.Ge[0] != sha256Hex("f") {
		t.Errorf("Ge = %q, want the hash of f", out.Ge)
	}
	if out.Ct != nil || out.Fn != nil {
		t.Errorf("Ct = %q, Fn = %q, want nil", out.Ct, out.Fn)
	}
	if len(out.Country) != 1 || out.Country[0] != sha256Hex("gb") {
		t.Errorf("Country = %q, want the hash of gb", out.Country)
	}
	// Appending to one key must not clobber the next.
	out.Em = append(out.Em, "x")
	if out.Ph[0] != sha256Hex("442079460958") {
		t.Errorf("append to Em changed Ph")
	}
	if got := HashUserData(nil, Options{}); got.Em != nil {
		t.Errorf("HashUserData(nil) = %+v", got)
	}
}
