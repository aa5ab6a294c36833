package collect

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestCollectLeavesSubmissionToThePipeline keeps collect to HTTP
// (docs/architecture.md): of the pipeline its handlers use only Submit,
// Enter (the server decodes inside the gate) and ReleaseHeld, never its
// store, its gate or the steps Submit runs (Prepare, Commit).
func TestCollectLeavesSubmissionToThePipeline(t *testing.T) {
	t.Parallel()
	allowed := map[string]bool{"Submit": true, "Enter": true, "ReleaseHeld": true}
	banned := map[string]bool{"Prepared": true, "Gate": true, "NewGate": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			switch x := sel.X.(type) {
			case *ast.SelectorExpr: // b.Pipeline.Sel
				if x.Sel.Name == "Pipeline" && !allowed[sel.Sel.Name] {
					t.Errorf("%s: collect uses Pipeline.%s; hand events to Pipeline.Submit instead", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			case *ast.Ident: // pipeline.Sel
				if x.Name == "pipeline" && banned[sel.Sel.Name] {
					t.Errorf("%s: collect uses pipeline.%s; Submit gates, prepares and commits", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
	}
	if checked < 10 {
		t.Fatalf("checked %d files; run from the package's directory", checked)
	}
}
