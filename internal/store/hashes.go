package store

import (
	"encoding/json"
	"slices"
	"strings"
)

// MarshalHashes encodes an identity's hashes (Identity.Hashes) as JSON,
// byte for byte as json.Marshal does, keys sorted. Identity learning
// encodes one record per new customer, and json.Marshal's reflection and
// key sorting were a fifth of its CPU (BenchmarkLearnIdentities); values
// are 64-hex hashes, so the plain path below takes them all, and anything
// that would need escaping goes to json.Marshal.
func MarshalHashes(h map[string][]string) ([]byte, error) {
	if h == nil {
		return []byte("null"), nil
	}
	type entry struct {
		k  string
		vs []string
	}
	var ebuf [16]entry
	es := ebuf[:0]
	n := 2
	for k, vs := range h {
		if !plainJSON(k) {
			return json.Marshal(h)
		}
		es = append(es, entry{k, vs})
		n += len(k) + 6
		for _, v := range vs {
			if !plainJSON(v) {
				return json.Marshal(h)
			}
			n += len(v) + 3
		}
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.k, b.k) })
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, e := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, e.k...)
		b = append(b, '"', ':')
		if e.vs == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '[')
		for j, v := range e.vs {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, v...)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// plainJSON reports whether json.Marshal writes s between quotes as it
// is: printable ASCII other than the quote, the backslash and the HTML
// characters it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
}

var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`"\<>&`, rune(c))
	}
	return t
}()

// UnmarshalHashes decodes what MarshalHashes wrote, as json.Unmarshal into
// a map[string][]string would. The object MarshalHashes writes (no spaces,
// strings without escapes) is read directly, its strings sharing s's
// memory; anything else goes to json.Unmarshal.
func UnmarshalHashes(s string) (map[string][]string, error) {
	if h, ok := parseHashes(s); ok {
		return h, nil
	}
	var h map[string][]string
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return nil, err
	}
	return h, nil
}

// parseHashes reads the compact form; ok is false for anything else.
func parseHashes(s string) (map[string][]string, bool) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, false
	}
	h := make(map[string][]string, len(IdentityKeys))
	i := 1
	if s[i] == '}' {
		return h, i+1 == len(s)
	}
	str := func() (string, bool) {
		if i >= len(s) || s[i] != '"' {
			return "", false
		}
		start := i + 1
		for j := start; j < len(s); j++ {
			switch c := s[j]; {
			case c == '"':
				i = j + 1
				return s[start:j], true
			case c < 0x20 || c >= 0x80 || c == '\\':
				return "", false
			}
		}
		return "", false
	}
	for {
		k, ok := str()
		if !ok || i+1 >= len(s) || s[i] != ':' || s[i+1] != '[' {
			return nil, false
		}
		i += 2
		vs := []string{}
		if s[i] == ']' {
			i++
		} else {
			for {
				v, ok := str()
				if !ok || i >= len(s) {
					return nil, false
				}
				vs = append(vs, v)
				if s[i] == ']' {
					i++
					break
				}
				if s[i] != ',' {
					return nil, false
				}
				i++
			}
		}
		h[k] = vs
		if i >= len(s) {
			return nil, false
		}
		switch s[i] {
		case '}':
			return h, i+1 == len(s)
		case ',':
			i++
		default:
			return nil, false
		}
	}
}
