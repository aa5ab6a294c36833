package identity

import (
	"strings"
	"testing"
)

// isHashTable is isHash one byte at a time, as it was written first.
func isHashTable(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !lowerHex[s[i]] {
			return false
		}
	}
	return true
}

// FuzzIsHash checks the 8-bytes-at-a-time isHash against the table.
func FuzzIsHash(f *testing.F) {
	h := "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
	for _, s := range []string{h, strings.ToUpper(h), h[:63] + "g", h[:63] + "/", h[:63] + ":", h[:63] + "`",
		"@" + h[1:], h[:32] + "\x80" + h[33:], h[:63] + "\xff", h[:63], h + "0", strings.Repeat("0", 64), strings.Repeat("f", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isHash(s), isHashTable(s); got != want {
			t.Fatalf("isHash(%q) = %v, want %v", s, got, want)
		}
		// Every byte of a 64-byte input, to reach the per-byte ranges.
		if len(s) == 64 {
			b := []byte(h)
			for i := 0; i < 64; i++ {
				b[i] = s[i]
				if got, want := isHash(string(b)), isHashTable(string(b)); got != want {
					t.Fatalf("isHash(%q) = %v, want %v", b, got, want)
				}
				b[i] = h[i]
			}
		}
	})
}

// TestIsHashEveryByte tries each byte value at each position of a hash.
func TestIsHashEveryByte(t *testing.T) {
	h := []byte("62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f")
	for i := range h {
		orig := h[i]
		for c := 0; c < 256; c++ {
			h[i] = byte(c)
			if got, want := isHash(string(h)), isHashTable(string(h)); got != want {
				t.Fatalf("isHash with byte %#x at %d = %v, want %v", c, i, got, want)
			}
		}
		h[i] = orig
	}
}

func BenchmarkIsHash(b *testing.B) {
	h := "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
	for _, fn := range []struct {
		name string
		f    func(string) bool
	}{{"table", isHashTable}, {"words", isHash}} {
		b.Run(fn.name, func(b *testing.B) {
			for b.Loop() {
				if !fn.f(h) {
					b.Fatal("not a hash")
				}
			}
		})
	}
}
