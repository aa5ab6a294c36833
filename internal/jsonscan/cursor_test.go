package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/capirelay/capirelay/internal/sharedtest"
)

// TestCursorStringAgreesWithEncodingJSON checks String's decoding where it
// is easiest to get wrong: escapes, surrogates, invalid UTF-8.
func TestCursorStringAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`"plain"`, `""`, `"caf\u00e9"`, "\"café\"", `"a\"b\\c\/d\b\f\n\r\t"`,
		`"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ude00\ud83d"`, `"\ud83d\u0041"`,
		"\"\xff\"", "\"a\xc3\"", "\"\xed\xa0\x80\"", "\"é\\n\xff\"",
	} {
		var want string
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatalf("%q: encoding/json: %v", in, err)
		}
		c := Cursor{B: []byte(in)}
		got, ok := c.String(nil)
		if !ok || got != want || c.I != len(in) {
			t.Errorf("%q: String = %q, %v, at %d; encoding/json gives %q", in, got, ok, c.I, want)
		}
		if u, ok := Unquote([]byte(in[1 : len(in)-1])); !ok || string(u) != want {
			t.Errorf("%q: Unquote = %q, %v; want %q", in, u, ok, want)
		}
	}
	for _, in := range []string{`"\x"`, `"\u12"`, "\"a\tb\"", `"open`, `x`} {
		c := Cursor{B: []byte(in)}
		if s, ok := c.String(nil); ok {
			t.Errorf("%q: String accepted it as %q", in, s)
		}
	}
}

// TestCursorPlainStringsAllocateNothing: the common case, a string with
// nothing to decode, is cut from S (or its bytes from B), not copied.
func TestCursorPlainStringsAllocateNothing(t *testing.T) {
	in := `{"k":"value","l":["é",null]}`
	allocs := testing.AllocsPerRun(100, func() {
		c := Cursor{B: []byte(in), S: in}
		ok := c.Object(func(key []byte) bool {
			if string(key) == "l" {
				return c.Array(func() bool {
					if c.Peek() == 'n' {
						return c.Literal("null")
					}
					_, ok := c.VerbatimText()
					return ok
				})
			}
			_, ok := c.String(nil)
			return ok
		})
		if !ok || !c.Done() {
			t.Fatal("Object refused a valid object")
		}
	})
	if allocs > 1 { // []byte(in) may cost one
		t.Errorf("%v allocations per run, want at most 1", allocs)
	}
}

// TestCursorEscapedStringAllocatesItsLength: a string with an escape is
// decoded into a buffer of about its own size, not of the rest of the
// text. A 100-event body from PHP (which escapes "/") or Go (which escapes
// "&") has an escape in every URL, and each URL allocated the rest of the
// body: 4.3 MB for a 100-event body of 60 KB.
func TestCursorEscapedStringAllocatesItsLength(t *testing.T) {
	for _, lit := range []string{`"https:\/\/shop.example.com\/p?a=1\u0026b=2"`, "\"\xff invalid, then a long tail\""} {
		in := []byte(`[` + lit + `,"` + strings.Repeat("x", 1<<20) + `"]`)
		per := sharedtest.BytesPerRun(10, func(int) {
			c := Cursor{B: in}
			ok := c.Array(func() bool {
				_, ok := c.String(nil)
				return ok
			})
			if !ok {
				t.Fatalf("Array refused %s", lit)
			}
		})
		// Per run: the decoded string, its buffer, and the 1 MiB
		// string's copy (no S).
		if per > 1<<20+1<<10 {
			t.Errorf("%s: %d bytes allocated per run, want about 1 MiB (the long string's copy) and a few hundred bytes", lit, per)
		}
	}
}

func TestCursorObjectAndArray(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // keys and values as read, or "refused"
	}{
		{` { "a" : 1 , "b\u0041" : [ true , null ] } `, `a=1 b\u0041=[true null] `},
		{`{}`, ``},
		{`[]`, ``},
		{`{"a":1,}`, `refused`},
		{`{"a" 1}`, `refused`},
		{`{a:1}`, `refused`},
		{`{"a":1} x`, `refused`},
		{`[1 2]`, `refused`},
		{`[1,]`, `refused`},
	} {
		c := Cursor{B: []byte(tc.in)}
		var got strings.Builder
		var read func() bool
		read = func() bool {
			switch c.Peek() {
			case '[':
				got.WriteString("[")
				n := 0
				ok := c.Array(func() bool {
					if n++; n > 1 {
						got.WriteString(" ")
					}
					return read()
				})
				got.WriteString("]")
				return ok
			case '"':
				s, ok := c.String(nil)
				got.WriteString(s)
				return ok
			}
			v, ok := c.Raw(8)
			got.Write(v)
			return ok
		}
		var ok bool
		if c.Peek() == '{' {
			ok = c.Object(func(key []byte) bool {
				got.WriteString(string(key) + "=")
				ok := read()
				got.WriteString(" ")
				return ok
			})
		} else {
			ok = read()
			got.Reset()
		}
		if !ok || !c.Done() {
			got.Reset()
			got.WriteString("refused")
		}
		if got.String() != tc.want {
			t.Errorf("%s: read %q, want %q", tc.in, got.String(), tc.want)
		}
	}
}

func TestVerbatim(t *testing.T) {
	for in, want := range map[string]bool{"abc": true, "café": true, `a\n`: false, "\xff": false, "é\\u0041": false} {
		if got := Verbatim([]byte(in)); got != want {
			t.Errorf("Verbatim(%q) = %v, want %v", in, got, want)
		}
	}
}

// FuzzCursorString: whatever String accepts, encoding/json decodes to the
// same string, and String accepts every string literal encoding/json does.
func FuzzCursorString(f *testing.F) {
	for _, s := range []string{`"a"`, `"\ud83d\ude00"`, `"\ud800\udc00x"`, "\"\xf0\x9f\"", `"\u00"`, `"é\/"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := Cursor{B: b}
		got, ok := c.String(nil)
		whole := ok && Space(b, c.I) == len(b)
		var want string
		err := json.Unmarshal(b, &want)
		isString := len(b) > 0 && b[0] == '"'
		switch {
		case whole && (err != nil || got != want):
			t.Fatalf("%q: String gives %q, encoding/json %q (%v)", b, got, want, err)
		case isString && err == nil && !whole:
			t.Fatalf("%q: String refused what encoding/json decodes to %q", b, want)
		}
		if whole {
			if u, ok := Unquote(b[1 : c.I-1]); !ok || string(u) != want {
				t.Fatalf("%q: Unquote gives %q, %v; want %q", b, u, ok, want)
			}
		}
	})
}

// TestPlainRun puts every byte at every place of runs of plain bytes,
// started at every offset: PlainRun and PlainRunString stop exactly at
// the first byte that is not Plain, also when another follows it (whose
// SWAR borrow must not matter).
func TestPlainRun(t *testing.T) {
	for _, tail := range []string{"", "\x00", "\xff\"", "zz"} {
		for n := range 20 {
			for pos := range n {
				for c := range 256 {
					b := []byte(strings.Repeat("a", n) + tail)
					b[pos] = byte(c)
					for from := range min(len(b), 9) {
						want := from
						for want < len(b) && Plain[b[want]] {
							want++
						}
						if got := PlainRun(b, from); got != want {
							t.Fatalf("PlainRun(%q, %d) = %d, want %d", b, from, got, want)
						}
						if got := PlainRunString(string(b), from); got != want {
							t.Fatalf("PlainRunString(%q, %d) = %d, want %d", b, from, got, want)
						}
					}
				}
			}
		}
	}
}
