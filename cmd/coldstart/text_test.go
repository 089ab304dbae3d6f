package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// smallLayout writes a small linux/arm64 image (a file and a link) into a
// new OCI layout.
func smallLayout(t *testing.T) string {
	t.Helper()
	l, err := testimage.Layer{
		testimage.Dir("etc", 0o755),
		testimage.File("etc/hostname", "small\n"),
		testimage.Symlink("etc/name", "hostname"),
	}.Compressed("gzip")
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.ImageFrom(testimageConfig("arm64"), mutateAdd(l)...)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := testimage.WriteOCI(dir, "", img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestErrorsAndTextSayItOnce: messages name what they are about once, in
// words, and name the flag to use.
func TestErrorsAndTextSayItOnce(t *testing.T) {
	src := smallLayout(t)
	// A budget error names the flag and the budget, once.
	_, stderr, code := run(t, "report", "oci:"+src, "--budget", "edge")
	if code != 2 || !strings.Contains(stderr, `--budget "edge": want NETWORK=SECONDS`) || strings.Contains(stderr, "budget: budget") {
		t.Errorf("--budget edge: exit %d, %q", code, stderr)
	}
	// The report names the flag that calibrates.
	out, stderr, code := run(t, "report", "oci:"+src, "--network", "edge")
	if code != 0 || !strings.Contains(out, "--calibrate") || strings.Contains(out, "run with calibration") {
		t.Errorf("report: exit %d, %s\n%s", code, stderr, out)
	}
	// A malformed reference is the caller's (exit 2), said once.
	_, stderr, code = run(t, "analyze", "example.com/UPPER:v1")
	if code != 2 || !strings.Contains(stderr, "invalid image reference") || strings.Contains(stderr, "invalid argument: invalid") {
		t.Errorf("malformed reference: exit %d, %q", code, stderr)
	}
	// A tag the registry does not have is said in words.
	reg := registrytest.New(t)
	for _, cmd := range []string{"analyze", "optimize"} {
		args := []string{cmd, reg.Ref("app:nope")}
		if cmd == "optimize" {
			args = append(args, "oci:"+filepath.Join(t.TempDir(), "o"))
		}
		_, stderr, code := run(t, args...)
		if code != 1 || !strings.Contains(stderr, `not found: no image tagged "nope" in `+reg.Ref("app")) || strings.Contains(stderr, "map[") {
			t.Errorf("%s of a missing tag: exit %d, %q", cmd, code, stderr)
		}
	}
	// verify names the platform of a single image, from its config.
	dst := filepath.Join(t.TempDir(), "out")
	if _, stderr, code := run(t, "optimize", "--no-cache", "--compare=false", "oci:"+src, "oci:"+dst); code != 0 {
		t.Fatalf("optimize: exit %d: %s", code, stderr)
	}
	out, stderr, code = run(t, "verify", "oci:"+src, "oci:"+dst)
	if code != 0 || !strings.HasPrefix(out, "linux/arm64: OK") {
		t.Errorf("verify: exit %d, %q, %s; want it to start with linux/arm64: OK", code, out, stderr)
	}
}

func testimageConfig(arch string) v1.ConfigFile {
	return v1.ConfigFile{Architecture: arch, OS: "linux", Config: v1.Config{Entrypoint: []string{"/bin/true"}}}
}

func mutateAdd(ls ...v1.Layer) []mutate.Addendum {
	var out []mutate.Addendum
	for _, l := range ls {
		out = append(out, mutate.Addendum{Layer: l})
	}
	return out
}

// TestAnalyzeWidth: analyze's text fits the terminal (its width), else
// $COLUMNS, else 80 columns; paths are cut in the middle.
func TestAnalyzeWidth(t *testing.T) {
	long := "opt/" + strings.Repeat("a-rather-long-dir/", 2) + "wasted.bin"
	dir := filepath.Join(t.TempDir(), "img")
	var adds []v1.Layer
	for i, l := range []testimage.Layer{
		{testimage.Dir("opt", 0o755), testimage.File(long, strings.Repeat("x", 5000))},
		{testimage.Whiteout(long)},
	} {
		cl, err := l.Compressed("gzip")
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		adds = append(adds, cl)
	}
	img, err := testimage.ImageFrom(testimageConfig("amd64"), mutateAdd(adds...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.WriteOCI(dir, "", img); err != nil {
		t.Fatal(err)
	}
	check := func(name, out string, width int) {
		t.Helper()
		if !strings.Contains(out, "…") || !strings.Contains(out, "wasted.bin") {
			t.Errorf("%s: the long path is not cut in the middle:\n%s", name, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if n := len([]rune(line)); n > width {
				t.Errorf("%s: %d columns, want at most %d: %q", name, n, width, line)
			}
		}
	}
	t.Setenv("COLUMNS", "")
	out, stderr, code := run(t, "analyze", "oci:"+dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	check("no terminal", out, 80)
	t.Setenv("COLUMNS", "76")
	out, _, _ = run(t, "analyze", "oci:"+dir)
	check("COLUMNS=76", out, 76)
	// A terminal's own width wins over $COLUMNS.
	var o, e strings.Builder
	g := &globals{stdout: &o, stderr: &e, terminal: func(w io.Writer) (bool, int) { return w == &o, 100 }}
	root := newRootWith(g)
	root.SetArgs([]string{"analyze", "oci:" + dir})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o.String(), long) {
		t.Errorf("a 100-column terminal cuts a path that fits:\n%s", o.String())
	}
}

// TestCacheLsFrom: every entry optimize puts in the cache says which image
// (and layer) it came from, in text and JSON, and the output is the same
// bytes with the cache as without.
func TestCacheLsFrom(t *testing.T) {
	src := smallLayout(t)
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	var res [2]struct {
		Digest string
		Images []struct {
			InputDigest string
			Layers      []struct{ InputDigest string }
		}
	}
	for i, flags := range [][]string{{"--cache-dir", cacheDir}, {"--no-cache"}} {
		args := append([]string{"optimize", "--format", "json", "--compare=false", "oci:" + src, "oci:" + filepath.Join(dir, fmt.Sprint("out", i))}, flags...)
		out, stderr, code := run(t, args...)
		if code != 0 {
			t.Fatalf("optimize %v: exit %d: %s", flags, code, stderr)
		}
		if err := json.Unmarshal([]byte(out), &res[i]); err != nil {
			t.Fatal(err)
		}
	}
	if res[0].Digest != res[1].Digest {
		t.Errorf("output %s with the cache, %s without", res[0].Digest, res[1].Digest)
	}
	image := res[0].Images[0].InputDigest
	inputs := map[string]bool{}
	for _, l := range res[0].Images[0].Layers {
		inputs[l.InputDigest] = true
	}
	out, stderr, code := run(t, "cache", "ls", "--cache-dir", cacheDir, "--format", "json")
	if code != 0 {
		t.Fatalf("cache ls: exit %d: %s", code, stderr)
	}
	var es []struct {
		Key  string
		From *struct{ Image, Layer string }
	}
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range es {
		kind, _, _ := strings.Cut(e.Key, "/")
		kinds[kind]++
		if e.From == nil || e.From.Image != image {
			t.Errorf("%s: from %+v, want image %s", e.Key, e.From, image)
			continue
		}
		if wantLayer := kind != "image" && kind != "profile"; wantLayer != inputs[e.From.Layer] {
			t.Errorf("%s: from layer %q, input layers %v", e.Key, e.From.Layer, inputs)
		}
	}
	for _, k := range []string{"layer", "index", "image"} {
		if kinds[k] == 0 {
			t.Errorf("no %s entry in %v", k, kinds)
		}
	}
	text, _, _ := run(t, "cache", "ls", "--cache-dir", cacheDir)
	if !strings.Contains(text, "FROM") || !strings.Contains(text, "image "+shortDigest(image)+", layer sha256:") {
		t.Errorf("cache ls text does not say where entries came from:\n%s", text)
	}
}

// TestProgressBars: on a terminal, optimize shows a bar per layer for each
// of pull, convert and push, named "layer N" with the bytes it counts;
// --quiet and output that is not a terminal show none.
func TestProgressBars(t *testing.T) {
	src := smallLayout(t)
	optimizeOn := func(tty bool, extra ...string) (stdout, stderr string) {
		var o, e strings.Builder
		g := &globals{stdout: &o, stderr: &e, terminal: func(w io.Writer) (bool, int) { return tty && w == &e, 120 }}
		root := newRootWith(g)
		root.SetArgs(append([]string{"optimize", "--no-cache", "--compare=false", "oci:" + src, "oci:" + filepath.Join(t.TempDir(), "out")}, extra...))
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String()
	}
	out, stderr := optimizeOn(true)
	for _, want := range []string{"pull    layer 0", "convert layer 0", "push    layer 0", "compressed", "tar bytes"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("terminal: no %q in\n%s", want, stderr)
		}
	}
	if strings.Contains(out, "layer 0 ") && strings.Contains(out, "[") {
		t.Errorf("progress went to standard output:\n%s", out)
	}
	for name, args := range map[string][]string{"--quiet": {"--quiet"}, "no terminal": nil} {
		_, stderr := optimizeOn(name == "--quiet", args...)
		if strings.Contains(stderr, "layer 0") {
			t.Errorf("%s: progress shown:\n%s", name, stderr)
		}
	}
}

// TestCommandFilesShort: each file of the command parses flags, calls the
// library and prints; none grows past 150 lines (help texts live in
// help.go, which may).
func TestCommandFilesShort(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "help.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n > 150 {
			t.Errorf("%s has %d lines, more than 150: move shared parsing to flags.go, texts to help.go, work to the library", f, n)
		}
	}
}
