package normalize

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestSpecVectors checks every example of spec §3.4 (from Meta's D-CI page).
func TestSpecVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		field         Field
		region, input string
		normalized    string
		hash          string
	}{
		{Email, "", "John_Smith@gmail.com", "john_smith@gmail.com", "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"},
		{Phone, "us", "(650)555-1212", "16505551212", "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"},
		{FirstName, "", "Mary", "mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"},
		{FirstName, "", "Val\u00e9ry", "valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"},
		{FirstName, "", "Vale\u0301ry", "valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"},
		{FirstName, "", "정", "정", "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"},
		{DateOfBirth, "", "2/16/1997", "19970216", "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c"},
		{Country, "", "United States", "us", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"},
		{Gender, "", "f", "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"},
		{Gender, "", "m", "m", "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a"},
		{State, "us", "ca", "ca", "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"},
		{Zip, "us", "94035", "94035", "1794327a4d443904421f5ca1f3d72d0a62ba2f0770d80755ec2220fc0efb052e"},
		{City, "", "newyork", "newyork", "350c754ba4d38897693aa077ef43072a859d23f613443133fecbbd90a3512ca5"},
	}
	for _, tc := range tests {
		o := Options{Region: tc.region, Now: testNow}
		n, err := Normalize(tc.field, tc.input, o)
		if err != nil || n != tc.normalized {
			t.Errorf("Normalize(%s, %q) = %q, %v, want %q", tc.field, tc.input, n, err, tc.normalized)
		}
		h, err := Hash(tc.field, tc.input, o)
		if err != nil || h != tc.hash {
			t.Errorf("Hash(%s, %q) = %q, %v, want %q", tc.field, tc.input, h, err, tc.hash)
		}
	}
	// The hash of "" must never be produced (spec §3.4 last row).
	for _, f := range Fields {
		if h, err := Hash(f, "  ", Options{}); err == nil {
			t.Errorf("Hash(%s, blank) = %q, want an error", f, h)
		}
	}
}
