package coldstart_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/coldstart-dev/coldstart"

// allowed lists, for each package of the library (by path in the module),
// the packages of the module it may import: the import graph runs one way,
// from the command down to layers, and the judge of the optimizer
// (internal/oracle) imports none of what it judges. A package not listed
// may import nothing of the module but internal helpers it is listed with.
var allowed = map[string][]string{
	"":                           {"internal/funcopt", "imageref", "layers", "optimize", "optimize/profile", "optimize/profile/run", "optimize/report"},
	"imageref":                   {"internal/funcopt", "internal/ctxio", "internal/progress"},
	"cache":                      {"internal/funcopt", "internal/ctxio"},
	"layers":                     {"internal/funcopt", "internal/ctxio", "layers/lazy", "layers/lazy/estargzfmt", "layers/lazy/zstdchunkedfmt"},
	"layers/lazy":                {},
	"layers/lazy/estargzfmt":     {"layers/lazy"},
	"layers/lazy/zstdchunkedfmt": {"layers/lazy"},
	"optimize":                   {"internal/funcopt", "internal/ctxio", "internal/progress", "cache", "layers", "optimize/profile", "optimize/report", "internal/lazypull", "internal/oracle", "internal/units"},
	"optimize/profile":           {"internal/funcopt", "layers", "optimize/profile/internal/elfhdr", "optimize/profile/internal/imagepath"},
	"optimize/profile/run":       {"internal/funcopt", "layers", "optimize/profile", "optimize/profile/internal/elfhdr", "optimize/profile/internal/imagepath", "internal/mountinfo", "internal/rootfs"},
	"optimize/report":            {"internal/funcopt", "layers", "optimize/profile", "internal/corpus", "internal/lazypull", "internal/partialpull", "internal/shaper", "internal/units"},
	"internal/oracle":            {},
	"internal/lazypull":          {"internal/funcopt", "layers"},
	"internal/rootfs":            {"internal/funcopt", "internal/ctxio", "layers"},
}

// TestImportGraph: no library package imports upward (the command, the
// facade, a package above it), and the independent applier imports nothing
// of the optimizer. It fails on an import that the table above does not
// list, as go-containerregistry's depcheck does.
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		if strings.HasPrefix(pkg, "cmd/") || strings.HasPrefix(pkg, "benchmarks/") || isTestHelper(pkg) {
			continue
		}
		ok, listed := allowed[pkg]
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			switch {
			case !listed && !strings.HasPrefix(pkg, "internal/"):
				t.Errorf("%s is not in the import table: add it with what it may import", pkg)
			case !listed:
				if !strings.HasPrefix(dep, "internal/") {
					t.Errorf("%s (internal) imports %s: internal helpers import no library package unless listed", pkg, dep)
				}
			case !slices.Contains(ok, dep):
				t.Errorf("%s imports %s, which the import graph does not allow", pkg, dep)
			}
		}
	}
}

// isTestHelper names the internal packages that only tests and the demo use.
func isTestHelper(pkg string) bool {
	switch pkg {
	case "internal/testimage", "internal/demo", "internal/demo/mkdemo", "internal/registrytest", "internal/faultproxy":
		return true
	}
	return strings.HasSuffix(pkg, "/elftest")
}
