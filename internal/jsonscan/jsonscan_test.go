package jsonscan

import (
	"encoding/json"
	"testing"
)

// whole reports whether b is exactly one JSON value, space around allowed.
func whole(b []byte, maxDepth int) bool {
	i := Value(b, Space(b, 0), maxDepth)
	return i >= 0 && Space(b, i) == len(b)
}

func TestValueAgreesWithEncodingJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{"a":[1,-2.5e+3,true,false,null,"x\u00e9\n"]}`, true},
		{` [ ] `, true},
		{`"\ud83d\ude00"`, true},
		{"\"\xff\"", true}, // bytes are not checked for UTF-8, as encoding/json
		{`{"a":1,}`, false},
		{`[01]`, false},
		{`"\x"`, false},
		{"\"a\tb\"", false},
		{`1.`, false},
		{`-`, false},
		{`nul`, false},
		{`{"a" 1}`, false},
		{`[1 2]`, false},
	} {
		if got := whole([]byte(tc.in), 512); got != tc.want || got != json.Valid([]byte(tc.in)) {
			t.Errorf("%q: Value says %v, want %v (encoding/json: %v)", tc.in, got, tc.want, json.Valid([]byte(tc.in)))
		}
	}
	// The top value is level 0, so the 1 in [[[1]]] is at level 3.
	if whole([]byte(`[[[1]]]`), 2) || !whole([]byte(`[[[1]]]`), 3) {
		t.Errorf("maxDepth 2 must refuse [[[1]]] and 3 accept it")
	}
}

func FuzzValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":null}],"c":"\u0041"}`, `-0.5E-7`, `"\\"`, `[`, `{"":""}`, "\"\x01\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		valid := json.Valid(b)
		if whole(b, 512) && !valid {
			t.Fatalf("Value accepts %q, encoding/json does not", b)
		}
		if valid && !whole(b, 1<<20) {
			t.Fatalf("encoding/json accepts %q, Value does not", b)
		}
	})
}
