package normalize

import (
	"errors"
	"testing"
)

// FuzzNormalize checks the invariants of every field: no panic; Normalize is
// idempotent; Hash gives 64 lowercase hex (or a pre-hashed pass-through);
// blank input gives nothing.
func FuzzNormalize(f *testing.F) {
	seeds := []string{
		"John.Smith@Example.COM", "\ufeffuser@example.com", "+1 (650) 555-1212",
		"0044 20 7946 0958", "ΟΔΥΣΣΕΥΣ", "İstanbul", "Vale\u0301ry", "2/16/1997",
		"1997-02-16T00:00:00Z", "16 Feb 1997", "Female", "California", "US-CA",
		"94025-1234", "SW1A 1AA", "Deutschland", "  ABC 123 ", "", " \u00a0 ",
		"62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F",
		"5994471abb01112afcc18159f6cc74b4f511b99806da59b3caf5a9c173cacfc5.AQQAAQMC",
		"\x85x\x85", "٠١٢٣٤٥٦٧٨٩", "ǅ", "ß",
	}
	for i, s := range seeds {
		f.Add(uint8(i), s, "")
		f.Add(uint8(i+3), s, "gb")
	}
	f.Fuzz(func(t *testing.T, fi uint8, raw, region string) {
		field := Fields[int(fi)%len(Fields)]
		o := Options{Region: region, Now: testNow}
		n, err := Normalize(field, raw, o)
		if err == nil {
			if n == "" {
				t.Fatalf("Normalize(%s, %q) = \"\" without error", field, raw)
			}
			// Phone numbers are E.164 after normalization: re-reading them
			// needs no region.
			o2 := o
			if field == Phone {
				o2.Region = ""
			}
			n2, err2 := Normalize(field, n, o2)
			if err2 != nil || n2 != n {
				t.Fatalf("Normalize(%s, Normalize(%q) = %q) = %q, %v; not idempotent", field, raw, n, n2, err2)
			}
		} else {
			var ie *InvalidError
			if !errors.Is(err, ErrEmpty) && !errors.As(err, &ie) {
				t.Fatalf("Normalize(%s, %q) error %v is neither ErrEmpty nor *InvalidError", field, raw, err)
			}
		}
		h, err := Hash(field, raw, o)
		if err != nil {
			if h != "" {
				t.Fatalf("Hash(%s, %q) = %q with error %v", field, raw, h, err)
			}
			return
		}
		if trimJS(raw) == "" {
			t.Fatalf("Hash(%s, blank %q) = %q, want an error", field, raw, h)
		}
		switch preHashed(trimJS(raw)) {
		case hashAppendix:
			return
		}
		if !hex64.MatchString(h) || h == sha256Hex("") {
			t.Fatalf("Hash(%s, %q) = %q, want 64 lowercase hex of a non-empty value", field, raw, h)
		}
	})
}
