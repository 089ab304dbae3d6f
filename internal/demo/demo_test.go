package demo

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// fakeApp writes a stand-in binary, so the fast tests need no compiler.
func fakeApp(t *testing.T) (string, []byte) {
	t.Helper()
	b := []byte("\x7fELF not really a binary, " + strings.Repeat("0123456789", 5000))
	p := filepath.Join(t.TempDir(), "demoapp")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p, b
}

// small makes the filler files 16 times smaller: the tests check the
// image's shape, which does not depend on their size.
var small = WithScale(16)

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBuildDeterministic(t *testing.T) {
	bin, _ := fakeApp(t)
	ctx := context.Background()
	a, err := Build(ctx, WithBinary(bin), small)
	if err != nil {
		t.Fatal(err)
	}
	prev := runtime.GOMAXPROCS(1)
	b, err := Build(ctx, WithBinary(bin), small)
	runtime.GOMAXPROCS(prev)
	if err != nil {
		t.Fatal(err)
	}
	if da, db := digest(t, a), digest(t, b); da != db {
		t.Errorf("two builds differ: %s and %s", da, db)
	}
	// Another binary, another image.
	other := filepath.Join(t.TempDir(), "other")
	if err := os.WriteFile(other, []byte("other"), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := Build(ctx, WithBinary(other), small)
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, a) == digest(t, c) {
		t.Error("different binaries, same image digest")
	}
}

func TestImageShape(t *testing.T) {
	bin, app := fakeApp(t)
	img, err := Build(context.Background(), WithBinary(bin), WithArch("arm64"), small)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "arm64" || cf.OS != "linux" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if diff := cmp.Diff([]string{"/app/demoapp"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint: %s", diff)
	}
	if len(cf.Config.Env) == 0 || !strings.HasPrefix(cf.Config.Env[0], "PATH=") {
		t.Errorf("env %v", cf.Config.Env)
	}
	if len(cf.History) != 7 || !cf.History[6].EmptyLayer {
		t.Fatalf("history %+v", cf.History)
	}
	if !strings.HasPrefix(cf.History[0].CreatedBy, "/bin/sh -c #(nop) ADD file:") ||
		!strings.Contains(cf.History[1].CreatedBy, "apt-get install") ||
		!strings.Contains(cf.History[4].CreatedBy, "chmod -R g+w /app") ||
		cf.History[3].CreatedBy != cf.History[5].CreatedBy {
		t.Errorf("created_by lines %+v", cf.History)
	}

	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 6 {
		t.Fatalf("%d layers", len(ls))
	}
	var digests []v1.Hash
	for _, l := range ls {
		d, _ := l.Digest()
		mt, _ := l.MediaType()
		if mt != types.OCILayer {
			t.Errorf("layer media type %s", mt)
		}
		digests = append(digests, d)
	}
	if digests[3] != digests[5] {
		t.Error("the second COPY is not byte-identical to the first")
	}
	if digests[3] == digests[4] {
		t.Error("the chmod layer equals the COPY layer")
	}

	tree, err := testimage.ApplyImage(img)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := tree.Get("/app/demoapp")
	if !ok || n.Mode != 0o755 || n.Size != int64(len(app)) || n.Origin.Layer != 5 {
		t.Errorf("/app/demoapp = %+v", n)
	}
	for _, gone := range []string{
		"var/lib/apt/lists/lock", "var/lib/apt/lists/partial",
		"var/lib/apt/lists/" + aptLists[0].name, "var/cache/apt/pkgcache.bin",
		"var/cache/apt/archives/" + filepath.Base(aptCaches[2].name),
	} {
		if _, ok := tree.Get(gone); ok {
			t.Errorf("%s survived the cleanup layer", gone)
		}
	}
	for p, want := range map[string]testimage.Type{
		"bin":                               testimage.TypeSymlink,
		"lib":                               testimage.TypeSymlink,
		"var/lib/apt/lists":                 testimage.TypeDir,
		"var/cache/apt/archives/lock":       testimage.TypeFile,
		"etc/ssl/certs/ca-certificates.crt": testimage.TypeFile,
		"etc/localtime":                     testimage.TypeSymlink,
		"usr/share/zoneinfo/UTC":            testimage.TypeFile,
		"app/static/index.html":             testimage.TypeFile,
	} {
		if n, ok := tree.Get(p); !ok || n.Type != want {
			t.Errorf("%s = %+v, want a %s", p, n, want)
		}
	}
	if n, _ := tree.Get("usr/share/zoneinfo/UTC"); n.Linkname != "usr/share/zoneinfo/Etc/UTC" {
		t.Errorf("zoneinfo/UTC is not a hard link to Etc/UTC: %+v", n)
	}

	// The waste a Dockerfile like this leaves: the apt lists and caches, the
	// base's dpkg status (rewritten by apt), and two full copies of /app.
	raw := make([][]byte, len(ls))
	for i, l := range filesystem(app, 16) {
		raw[i] = l.Tar()
	}
	var want int64
	for _, l := range aptLists {
		want += int64(l.size)
	}
	for _, c := range aptCaches {
		want += int64(c.size)
	}
	want += 12 * kib // var/lib/dpkg/status of the base
	// The first two copies of /app: the binary, its config and the
	// assets.
	fsl := filesystem(app, 16)
	for _, l := range fsl[3:5] {
		for _, e := range l {
			if e.Header.Typeflag == tar.TypeReg {
				want += e.Header.Size
			}
		}
	}
	got, err := testimage.WastedBytes(raw...)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("WastedBytes = %d, want %d", got, want)
	}
}

func TestTZif(t *testing.T) {
	loc, err := time.LoadLocationFromTZData("Etc/UTC", []byte(tzifUTC()))
	if err != nil {
		t.Fatal(err)
	}
	if name, off := time.Date(2024, 6, 1, 0, 0, 0, 0, loc).Zone(); name != "UTC" || off != 0 {
		t.Errorf("zone %s%+d", name, off)
	}
}

func TestWalkOrder(t *testing.T) {
	l := sortWalk(testimage.Layer{
		testimage.File("a-b", ""), testimage.File("a/x", ""), testimage.Dir("a", 0o755), testimage.Whiteout("a/y"),
	})
	var names []string
	for _, e := range l {
		names = append(names, e.Header.Name)
	}
	if diff := cmp.Diff([]string{"a/", "a/.wh.y", "a/x", "a-b"}, names); diff != "" {
		t.Error(diff)
	}
}

func TestWrite(t *testing.T) {
	bin, _ := fakeApp(t)
	ctx := context.Background()
	dirs := []string{t.TempDir(), t.TempDir()}
	var hashes []v1.Hash
	for _, dir := range dirs {
		h, err := Write(ctx, dir, WithBinary(bin), WithTag("demo"), WithCompression(compression.ZStd), small)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	if hashes[0] != hashes[1] {
		t.Errorf("digests %v", hashes)
	}
	files := func(dir string) map[string][]byte {
		m := map[string][]byte{}
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			m[rel] = b
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := files(dirs[0]), files(dirs[1])
	if len(a) != len(b) {
		t.Fatalf("%d and %d files", len(a), len(b))
	}
	for name, content := range a {
		if !bytes.Equal(content, b[name]) {
			t.Errorf("%s differs between two writes", name)
		}
	}
	p, err := layout.FromPath(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	ii, _ := p.ImageIndex()
	m, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != hashes[0] || m.Manifests[0].Annotations[testimage.RefNameAnnotation] != "demo" {
		t.Errorf("index.json %+v", m.Manifests)
	}
	img, err := ii.Image(hashes[0])
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	if mt, _ := ls[0].MediaType(); mt != types.OCILayerZStd {
		t.Errorf("layer media type %s", mt)
	}
}

func TestOptionErrors(t *testing.T) {
	ctx := context.Background()
	for name, opt := range map[string]Option{
		"empty binary":    WithBinary(""),
		"empty arch":      WithArch(""),
		"nil logger":      WithLogger(nil),
		"bad compression": WithCompression("lz4"),
		"zero scale":      WithScale(0),
	} {
		if _, err := Build(ctx, opt); err == nil {
			t.Errorf("%s: Build succeeded", name)
		}
	}
	if _, err := Build(ctx, WithBinary(filepath.Join(t.TempDir(), "missing"))); err == nil || !strings.Contains(err.Error(), "reading demoapp binary") {
		t.Errorf("missing binary: %v", err)
	}
	if _, err := Build(ctx, WithModuleRoot(t.TempDir())); err == nil || !strings.Contains(err.Error(), "compiling") {
		t.Errorf("module root without the app: %v", err)
	}
}

func TestFindModuleRoot(t *testing.T) {
	root, err := FindModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "testdata", "demoapp", "main.go")); err != nil {
		t.Errorf("module root %s has no demoapp: %v", root, err)
	}
	if got, err := modulePath(filepath.Join(root, "go.mod")); err != nil || got != ModulePath {
		t.Errorf("modulePath = %q, %v", got, err)
	}
}

// TestCompiledApp compiles the real demoapp twice, checks both compilations
// give the same image, and runs the binary up to "ready" and one request.
func TestCompiledApp(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a Go program")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	ctx := context.Background()
	root, err := FindModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	// Two separate compilations: Build's own, and Compile's.
	a, err := Build(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "demoapp")
	if err := Compile(ctx, root, runtime.GOARCH, bin); err != nil {
		t.Fatal(err)
	}
	b, err := Build(ctx, WithBinary(bin), small)
	if err != nil {
		t.Fatal(err)
	}
	if da, db := digest(t, a), digest(t, b); da != db {
		t.Errorf("two compiled builds differ: %s and %s", da, db)
	}
	if runtime.GOOS != "linux" {
		return
	}
	tree, err := testimage.ApplyImage(a)
	if err != nil {
		t.Fatal(err)
	}
	binBytes, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := tree.Get("app/demoapp"); n.Size != int64(len(binBytes)) || !bytes.HasPrefix(binBytes, []byte("\x7fELF")) {
		t.Errorf("image binary %+v, compiled %d bytes", n, len(binBytes))
	}

	out, err := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0", "-config", filepath.Join(t.TempDir(), "none.json"), "-exit-when-ready").Output()
	if err != nil {
		t.Fatalf("demoapp: %v", err)
	}
	if string(out) != "ready\n" {
		t.Errorf("demoapp printed %q, want %q", out, "ready\n")
	}

	// Serve one request with a config file.
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"greeting": "hi there", "addr": "127.0.0.1:0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfg)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	// stderr says "demoapp: listening on ADDR (ZONE)" before stdout says
	// "ready".
	logLine, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading stderr: %v", err)
	}
	fields := strings.Fields(logLine)
	if len(fields) < 4 || fields[1] != "listening" {
		t.Fatalf("stderr %q", logLine)
	}
	ready, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || ready != "ready\n" {
		t.Fatalf("stdout %q, %v", ready, err)
	}
	resp, err := http.Get("http://" + fields[3] + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if body.String() != "hi there\n" {
		t.Errorf("body %q", body.String())
	}
}
