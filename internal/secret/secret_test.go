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
