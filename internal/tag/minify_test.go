package tag

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/evanw/esbuild/pkg/api"
)

// The tag's build step: t.js is the source, t.min.js what is served,
// written by esbuild (a Go library, so no JavaScript tooling) with
//
//	go test ./internal/tag -run TestMinified -update
//
// esbuild is a test dependency only: the relay embeds the committed file.
var update = flag.Bool("update", false, "rewrite t.min.js from t.js")

// minify renames t.js's locals, drops white space and comments and
// shortens syntax, for browsers of the last five years (ES2020).
func minify(src []byte) ([]byte, error) {
	res := api.Transform(string(src), api.TransformOptions{
		Loader:            api.LoaderJS,
		Target:            api.ES2020,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		LegalComments:     api.LegalCommentsNone,
		Charset:           api.CharsetUTF8,
	})
	if len(res.Errors) > 0 {
		var b strings.Builder
		for _, m := range res.Errors {
			fmt.Fprintf(&b, "%d:%d: %s; ", m.Location.Line, m.Location.Column, m.Text)
		}
		return nil, fmt.Errorf("minify t.js: %s", b.String())
	}
	return bytes.TrimSpace(res.Code), nil
}

// TestMinified fails when t.min.js is not what t.js minifies to.
func TestMinified(t *testing.T) {
	src, err := os.ReadFile("t.js")
	if err != nil {
		t.Fatal(err)
	}
	got, err := minify(src)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(got, []byte(cfgMarker)) != 1 {
		t.Fatalf("minified tag must keep the config marker %s once", cfgMarker)
	}
	if *update {
		if err := os.WriteFile("t.min.js", append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(bytes.TrimSpace(served), got) {
		t.Fatal("t.min.js is stale: go test ./internal/tag -run TestMinified -update")
	}
}
