// Package sharedtest finds the project's shared/ folder (Meta's spec and the
// peer test vectors) for tests: it sits beside the repository, as
// ../shared from the directory holding go.mod.
package sharedtest

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the shared/ folder. When it is missing the test fails under
// CI (CI=true) and is skipped elsewhere, saying why.
func Dir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
	shared := filepath.Join(dir, "..", "shared")
	if _, err := os.Stat(filepath.Join(shared, "testdata")); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("shared test data missing beside the repository: %v", err)
		}
		tb.Skipf("shared test data missing beside the repository (%v)", err)
	}
	return shared
}
