package secret

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	b, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	s := b.Seal([]byte("EAAB-token"), []byte("site:a"))
	if bytes.Contains(s, []byte("EAAB-token")) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := b.Open(s, []byte("site:a"))
	if err != nil || string(got) != "EAAB-token" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := b.Open(s, []byte("site:b")); err == nil {
		t.Fatal("value opened under other additional data")
	}
	s[len(s)-1] ^= 1
	if _, err := b.Open(s, []byte("site:a")); err == nil {
		t.Fatal("tampered value opened")
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(b.Seal([]byte("x"), nil), nil); err == nil {
		t.Fatal("opened with the wrong key")
	}
}

func TestOpenInPlace(t *testing.T) {
	b, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(`{"event_name":"Purchase","user_data":{"em":["…"]}}`)
	s := b.Seal(payload, []byte("outbox"))
	got, err := b.OpenInPlace(s, []byte("outbox"))
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("OpenInPlace = %q, %v", got, err)
	}
	// The plaintext is in the sealed value's memory, not a new array.
	if &got[:cap(got)][cap(got)-1] != &s[:cap(s)][cap(s)-1] {
		t.Fatal("OpenInPlace allocated the plaintext")
	}
	if n := testing.AllocsPerRun(10, func() {
		if _, err := b.OpenInPlace(b.Seal(payload, nil), nil); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Fatalf("Seal and OpenInPlace allocate %v times, want Seal's 1", n)
	}
	for name, c := range map[string]struct {
		sealed func() []byte
		ad     string
	}{
		"other additional data": {func() []byte { return b.Seal(payload, []byte("outbox")) }, "lead"},
		"tampered":              {func() []byte { s := b.Seal(payload, []byte("outbox")); s[len(s)-1] ^= 1; return s }, "outbox"},
		"too short":             {func() []byte { return b.Seal(payload, []byte("outbox"))[:20] }, "outbox"},
		"unknown version":       {func() []byte { s := b.Seal(payload, []byte("outbox")); s[0] = 9; return s }, "outbox"},
	} {
		if pt, err := b.OpenInPlace(c.sealed(), []byte(c.ad)); err != ErrOpen || pt != nil {
			t.Errorf("%s: OpenInPlace = %q, %v; want ErrOpen", name, pt, err)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v", st.Mode(), err)
	}
	k2, err := LoadOrCreateKey("", dir)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatal("second load gave another key")
	}
	if _, err := LoadOrCreateKey("short", dir); err == nil {
		t.Fatal("accepted a bad key")
	}
	if k, err := LoadOrCreateKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", dir); err != nil || len(k) != KeySize {
		t.Fatalf("base64 key: %v", err)
	}
}
