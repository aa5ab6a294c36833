// Package secret seals access tokens and raw personal data at rest with
// AES-256-GCM, and manages the key: CAPIRELAY_SECRET_KEY (base64 of 32
// bytes) or a key file generated once in the data directory with mode 0600.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the AES-256 key length.
const KeySize = 32

// version is the first byte of every sealed value, so the format can change.
const version = 1

// ErrOpen means a sealed value could not be opened: wrong key or corrupted.
var ErrOpen = errors.New("secret: cannot open sealed value (wrong key or corrupted data)")

// Box seals and opens values. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret: key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext with a random nonce. additional binds the value to
// its place (for example the row's table and key) so values cannot be
// swapped between rows; pass the same to Open.
func (b *Box) Seal(plaintext, additional []byte) []byte {
	ns := b.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+b.aead.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1 : 1+ns]); err != nil {
		panic("secret: crypto/rand failed: " + err.Error())
	}
	return b.aead.Seal(out, out[1:1+ns], plaintext, additional)
}

// Open decrypts a value made by Seal.
func (b *Box) Open(sealed, additional []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < 1+ns+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	pt, err := b.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], additional)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// OpenInPlace is Open decrypting into sealed's own memory: the plaintext
// it returns shares sealed's array, and sealed no longer holds the sealed
// value afterwards (on failure its bytes are undefined). For a caller that
// owns sealed and needs it no more, it saves the plaintext's allocation.
func (b *Box) OpenInPlace(sealed, additional []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < 1+ns+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	ct := sealed[1+ns:]
	pt, err := b.aead.Open(ct[:0], sealed[1:1+ns], ct, additional)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// SealString seals s; the empty string seals to nil.
func (b *Box) SealString(s string, additional string) []byte {
	if s == "" {
		return nil
	}
	return b.Seal([]byte(s), []byte(additional))
}

// OpenString opens a value made by SealString; nil opens to "".
func (b *Box) OpenString(sealed []byte, additional string) (string, error) {
	if len(sealed) == 0 {
		return "", nil
	}
	pt, err := b.Open(sealed, []byte(additional))
	return string(pt), err
}

// ParseKey decodes a base64 (standard or URL, padded or not) 32-byte key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("secret key must decode to %d bytes, got %d", KeySize, len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("secret key is not valid base64")
}

// KeyFileName is the key file inside the data directory.
const KeyFileName = "secret.key"

// LoadOrCreateKey returns the key from value when set (base64), else from
// dir/secret.key, creating that file with a new random key (mode 0600) on
// first use.
func LoadOrCreateKey(value, dir string) ([]byte, error) {
	if value != "" {
		return ParseKey(value)
	}
	path := filepath.Join(dir, KeyFileName)
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(data))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateKey("", dir) // another process won the race
	}
	if err != nil {
		return nil, fmt.Errorf("create secret key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return k, f.Close()
}
