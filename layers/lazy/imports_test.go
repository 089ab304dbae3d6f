package lazy_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportGraph: the import graph stays one-way. Package layers imports
// this package and the format packages; this package imports no coldstart
// package, and the format packages import only this one (Go would refuse a
// cycle through layers anyway; this also keeps one format out of another).
func TestImportGraph(t *testing.T) {
	const module = "github.com/coldstart-dev/coldstart/"
	for dir, allowed := range map[string][]string{
		".":              nil,
		"estargzfmt":     {module + "layers/lazy"},
		"zstdchunkedfmt": {module + "layers/lazy"},
	} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			ok := false
			for _, a := range allowed {
				ok = ok || imp == a
			}
			if !ok {
				t.Errorf("layers/lazy/%s imports %s", dir, imp)
			}
		}
	}
}
