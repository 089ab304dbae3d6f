package coldstart_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEProgram: the library section of README.md is a complete program
// that builds as it stands, outside this module (a module of its own that
// requires this one).
func TestREADMEProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program in a module of its own")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- library-example:")
	if !ok {
		t.Fatal("README.md has no library-example marker")
	}
	_, rest, ok = strings.Cut(rest, "```go\n")
	if !ok {
		t.Fatal("no Go block after the library-example marker")
	}
	prog, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("the Go block does not end")
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gomod := "module example.com/esgz\n\ngo 1.26\n\nrequire github.com/coldstart-dev/coldstart v0.0.0\n\nreplace github.com/coldstart-dev/coldstart => " + root + "\n"
	sum, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "go.sum": sum, "main.go": []byte(prog)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "esgz"), ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's program does not build: %v\n%s\n%s", err, out, prog)
	}
}

// TestREADMEInstallsFromClone: the module is not published, so every "go
// install" and "go get" the README shows works from a clone: none fetches
// the module by version, and the clone is named.
func TestREADMEInstallsFromClone(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	installs := 0
	for _, line := range strings.Split(string(readme), "\n") {
		for _, cmd := range []string{"go install ", "go get "} {
			_, rest, ok := strings.Cut(line, cmd)
			if !ok {
				continue
			}
			installs++
			if strings.Contains(rest, "github.com/coldstart-dev/coldstart") || strings.Contains(rest, "@") {
				t.Errorf("README fetches the unpublished module: %q", strings.TrimSpace(line))
			}
		}
	}
	if installs == 0 || !strings.Contains(string(readme), "git clone https://github.com/coldstart-dev/coldstart.git") {
		t.Error("README does not say how to install from a clone")
	}
}
