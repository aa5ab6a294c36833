// Package jsonscan is the one JSON walker of capirelay's hand-written fast
// paths (event, collect, capi). Value, String and Number step over values
// without decoding them, with the grammar of encoding/json's scanner:
// strings may hold any byte but control characters (UTF-8 is not
// checked), escapes must be valid, numbers are strict. Cursor builds on
// them to read objects, arrays and strings (decoded exactly as
// encoding/json does); a reader says which keys it knows and what each
// value must be, and leaves anything the cursor refuses to encoding/json.
package jsonscan

// IsSpace reports whether c is JSON white space.
func IsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// Space returns the index of the first byte at or after i that is not
// white space.
func Space(b []byte, i int) int {
	for i < len(b) && IsSpace(b[i]) {
		i++
	}
	return i
}

// Value returns the index just past the JSON value starting at b[i] (no
// leading space), or -1 if there is no valid one or it holds a value deeper
// than level maxDepth (the value at b[i] is level 0, its elements level 1).
func Value(b []byte, i, maxDepth int) int {
	return value(b, i, 0, maxDepth)
}

func value(b []byte, i, depth, maxDepth int) int {
	if i >= len(b) || depth > maxDepth {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return String(b, i)
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i = Space(b, i+1)
		if i < len(b) && b[i] == end {
			return i + 1
		}
		for {
			if c == '{' {
				if i = String(b, i); i < 0 {
					return -1
				}
				if i = Space(b, i); i >= len(b) || b[i] != ':' {
					return -1
				}
				i = Space(b, i+1)
			}
			if i = value(b, i, depth+1, maxDepth); i < 0 {
				return -1
			}
			if i = Space(b, i); i >= len(b) {
				return -1
			}
			switch b[i] {
			case end:
				return i + 1
			case ',':
				i = Space(b, i+1)
			default:
				return -1
			}
		}
	case c == '-' || '0' <= c && c <= '9':
		return Number(b, i)
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
			return i + len(lit)
		}
	}
	return -1
}

// String returns the index just past the string literal starting at b[i],
// or -1 if b[i] does not start a valid one.
func String(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		i = PlainRun(b, i) // most bytes: eight at a time
		if i == len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 || !IsHex(b[i+1]) || !IsHex(b[i+2]) || !IsHex(b[i+3]) || !IsHex(b[i+4]) {
					return -1
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// IsHex reports whether c is a hexadecimal digit.
func IsHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Number returns the index just past the number starting at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, or -1 if there is none.
// It does not look at what follows.
func Number(b []byte, i int) int {
	digits := func() bool {
		n := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return -1
		}
	}
	return i
}
