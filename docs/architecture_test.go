// Package docs holds only a test: it checks docs/architecture.md against the
// packages under internal/.
package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestArchitectureMapsEveryPackage fails when a package under internal/ has
// no row in architecture.md's package table, or a row names a package that
// no longer exists.
func TestArchitectureMapsEveryPackage(t *testing.T) {
	doc, err := os.ReadFile("architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	var mapped []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(internal/[a-z0-9/]+)` \\|").FindAllSubmatch(doc, -1) {
		mapped = append(mapped, string(m[1]))
	}
	if len(mapped) == 0 {
		t.Fatal("architecture.md has no package table rows (| `internal/…` | job | must not |)")
	}
	var pkgs []string
	err = filepath.WalkDir("../internal", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			pkg := filepath.ToSlash(strings.TrimPrefix(filepath.Dir(path), "../"))
			if !slices.Contains(pkgs, pkg) {
				pkgs = append(pkgs, pkg)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		if !slices.Contains(mapped, p) {
			t.Errorf("package %s is missing from docs/architecture.md: add a row (its job, what it must not do)", p)
		}
	}
	for _, m := range mapped {
		if !slices.Contains(pkgs, m) {
			t.Errorf("docs/architecture.md maps %s, which no longer exists", m)
		}
	}
}
