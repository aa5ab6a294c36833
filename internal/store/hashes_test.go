package store

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// randomHashes is an identity's hashes as learning writes them, with now
// and then a value or key json.Marshal must escape, a nil or empty list.
func randomHashes(r *rand.Rand) map[string][]string {
	if r.IntN(50) == 0 {
		return nil
	}
	odd := []string{"a\"b", `back\slash`, "<script>", "a&b", "tab\t", "é", "\u2028", "\xff", ""}
	h := map[string][]string{}
	for _, k := range IdentityKeys {
		if r.IntN(4) == 0 {
			continue
		}
		var vs []string
		switch r.IntN(20) {
		case 0: // nil: json writes null
		case 1:
			vs = []string{}
		default:
			for range 1 + r.IntN(3) {
				v := fmt.Sprintf("%016x%016x%016x%016x", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
				if r.IntN(30) == 0 {
					v = odd[r.IntN(len(odd))]
				}
				vs = append(vs, v)
			}
		}
		if r.IntN(40) == 0 {
			k = odd[r.IntN(len(odd))]
		}
		h[k] = vs
	}
	return h
}

// TestMarshalHashesIsJSON: MarshalHashes writes what json.Marshal writes,
// and UnmarshalHashes reads it back as json.Unmarshal does.
func TestMarshalHashesIsJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		h := randomHashes(r)
		want, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		got, err := MarshalHashes(h)
		if err != nil || string(got) != string(want) {
			t.Fatalf("MarshalHashes(%q) = %s, %v; json.Marshal: %s", h, got, err, want)
		}
		checkUnmarshalHashes(t, string(got))
	}
}

// checkUnmarshalHashes fails unless UnmarshalHashes(s) gives what
// json.Unmarshal gives, error or value.
func checkUnmarshalHashes(t *testing.T, s string) {
	t.Helper()
	var want map[string][]string
	werr := json.Unmarshal([]byte(s), &want)
	got, err := UnmarshalHashes(s)
	if (err != nil) != (werr != nil) {
		t.Fatalf("UnmarshalHashes(%q) error %v; json.Unmarshal: %v", s, err, werr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("UnmarshalHashes(%q) = %#v; json.Unmarshal: %#v", s, got, want)
	}
}

// TestUnmarshalHashesOddInput: shapes MarshalHashes never writes still
// decode as json.Unmarshal decodes them, or fail as it does.
func TestUnmarshalHashesOddInput(t *testing.T) {
	for _, s := range []string{
		`{}`, `null`, ``, `{`, `}`, `{"em":[]}`, `{"em":null}`, `{"em":["a","b"]}`, `{"em":["a"],"em":["b"]}`,
		`{ "em" : [ "a" ] }`, `{"em":["a\u0041"]}`, `{"em":["\u00e9"]}`, `{"em":["é"]}`, `{"em":["a"]`, `{"em":["a",]}`,
		`{"em":["a"],}`, `{"em":"a"}`, `{"em":[1]}`, `{"em":["a"]}x`, `{"em":["a"]} `, `{"e"m":["a"]}`, `{"em"["a"]}`,
		`{"em":[`, `{"em":["a"`, `{"em":["a"]}}`, `[]`, `{"em":["a"],"ph":[]}`, "{\"em\":[\"\xff\"]}", `{"":[""]}`,
	} {
		checkUnmarshalHashes(t, s)
	}
}

func FuzzUnmarshalHashes(f *testing.F) {
	for _, s := range []string{`{}`, `{"em":["a","b"],"ph":[]}`, `{"em":null}`, `{ "em":["a"]}`, `{"em":["a\"b"]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkUnmarshalHashes(t, s)
		if h, err := UnmarshalHashes(s); err == nil {
			want, _ := json.Marshal(h)
			if got, err := MarshalHashes(h); err != nil || string(got) != string(want) {
				t.Fatalf("MarshalHashes(%q) = %s, %v; json.Marshal: %s", h, got, err, want)
			}
		}
	})
}
