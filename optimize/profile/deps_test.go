package profile

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportGraph keeps the import graph one-way: the profilers know
// layers and go-containerregistry, never the pipeline, the report or the
// CLI that use them, and the static profiler never pulls in the run
// profiler's sandbox.
func TestImportGraph(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the imports")
	}
	const mod = "github.com/coldstart-dev/coldstart/"
	for pkg, banned := range map[string][]string{
		"./":     {"optimize", "optimize/report", "optimize/profile/run", "cmd/", "internal/rootfs", "cache"},
		"./run/": {"optimize", "optimize/report", "cmd/", "cache"},
	} {
		out, err := exec.Command(goTool, "list", "-deps", "-test=false", "-f", "{{.ImportPath}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			rel, ok := strings.CutPrefix(dep, mod)
			if !ok {
				continue
			}
			for _, b := range banned {
				if rel == b || (strings.HasSuffix(b, "/") && strings.HasPrefix(rel, b)) {
					t.Errorf("%s imports %s", pkg, dep)
				}
			}
		}
	}
}
