//go:build !linux

package sqlite

import "os"

// datasync flushes f (on macOS, Go's Sync is F_FULLFSYNC).
func datasync(f *os.File) error { return f.Sync() }
