package report

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// busyboxImage is a merged-/usr image whose entrypoint is a shell script
// run by the host's static busybox.
func busyboxImage(t *testing.T) v1.Image {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		registrytest.SkipOrFail(t, "busybox not installed (apt-get install busybox-static): %v", err)
	}
	base := gzipLayer(t, testimage.Layer{
		testimage.Dir("usr", 0o755), testimage.Dir("usr/bin", 0o755), testimage.Dir("etc", 0o755),
		testimage.Symlink("bin", "usr/bin"),
		testimage.File("usr/bin/busybox", string(bb), testimage.Mode(0o755)),
		testimage.Symlink("usr/bin/sh", "busybox"),
		testimage.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
		testimage.File("etc/hosts", "127.0.0.1 localhost\n"),
	})
	app := lazyLayer(t, testimage.Layer{
		testimage.Dir("app", 0o755),
		testimage.File("app/run.sh", "#!/bin/sh\nset -e\nexec /app/server \"$@\"\n", testimage.Mode(0o755)),
		testimage.File("app/server", "#!/bin/sh\necho serving\n", testimage.Mode(0o755)),
		testimage.File("app/config.json", "{}\n"),
		testimage.Hardlink("app/server2", "app/server"),
	}.Tar(), layers.EncodeOptions{})
	return testImage(t, v1.Config{Entrypoint: []string{"/app/run.sh"}, Env: []string{"PATH=/usr/bin:/bin"}}, base, app)
}

// TestStaticProfile: without a profile, Estimate runs the static profiler
// over the image's merged filesystem; its paths resolve through the
// merged-/usr links to the files actually read.
func TestStaticProfile(t *testing.T) {
	img := busyboxImage(t)
	r, err := Estimate(context.Background(), img, WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if r.Profile.Source != profile.SourceStatic {
		t.Fatalf("profile source %q", r.Profile.Source)
	}
	files := map[string]string{}
	for _, f := range r.TopFiles {
		files[f.File] = f.Path
	}
	for _, want := range []string{"/app/run.sh", "/usr/bin/busybox", "/app/server"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the static profile does not read %s: %v (warnings %v)", want, files, r.Profile.Warnings)
		}
	}
	if r.Layers[0].StartupFiles == 0 || r.Layers[1].StartupFiles < 2 {
		t.Errorf("start-up files per layer: %d, %d", r.Layers[0].StartupFiles, r.Layers[1].StartupFiles)
	}
}

func TestImageFS(t *testing.T) {
	img := busyboxImage(t)
	o, err := makeOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	mf, _ := img.Manifest()
	cfg, _ := img.ConfigFile()
	tmp := t.TempDir()
	ls, err := o.readLayers(context.Background(), img, mf, cfg, tmp)
	if err != nil {
		t.Fatal(err)
	}
	idxs := []*layers.Index{ls[0].idx, ls[1].idx}
	ov, err := layers.Merge(idxs...)
	if err != nil {
		t.Fatal(err)
	}
	spool := layers.NewSpool(context.Background(), len(ls), tmp, func(i int) (io.ReadCloser, error) { return os.Open(ls[i].blob) })
	defer spool.Close()
	fsys := profile.ImageFS(ov, func(i int) (io.ReaderAt, error) { return spool.Tar(i) })
	if fi, err := fsys.Lstat("/bin"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("Lstat /bin: %v, %v", fi, err)
	}
	if target, err := fsys.Readlink("/usr/bin/sh"); err != nil || target != "busybox" {
		t.Fatalf("Readlink: %q, %v", target, err)
	}
	if fi, err := fsys.Lstat("/"); err != nil || !fi.IsDir() {
		t.Fatalf("Lstat /: %v, %v", fi, err)
	}
	ents, err := fsys.ReadDir("/app")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if d := cmp.Diff([]string{"config.json", "run.sh", "server", "server2"}, names); d != "" {
		t.Fatalf("ReadDir /app (-want +got):\n%s", d)
	}
	// A hard link reads its target's content, from the eStargz layer.
	for _, p := range []string{"/app/server2", "/app/server"} {
		f, err := fsys.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != "#!/bin/sh\necho serving\n" {
			t.Fatalf("%s: %q, %v", p, b, err)
		}
	}
	// ELF headers are read at offsets.
	f, err := fsys.Open("/usr/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	magic := make([]byte, 4)
	if _, err := f.(io.ReaderAt).ReadAt(magic, 0); err != nil || string(magic) != "\x7fELF" {
		t.Fatalf("busybox starts with %q, %v", magic, err)
	}
	f.Close()
	for _, c := range []struct {
		op   string
		err  error
		call func() error
	}{
		{"open a directory", profile.ErrNotRegular, func() error { _, err := fsys.Open("/app"); return err }},
		{"open a missing file", fs.ErrNotExist, func() error { _, err := fsys.Open("/nope"); return err }},
		{"readlink a file", fs.ErrInvalid, func() error { _, err := fsys.Readlink("/etc/hosts"); return err }},
		{"relative path", fs.ErrInvalid, func() error { _, err := fsys.Lstat("etc/hosts"); return err }},
	} {
		if err := c.call(); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.op, err, c.err)
		}
	}
}

// TestProfileFile estimates with the profile files that profile.Parse
// reads: each format gives the same two start-up files.
func TestProfileFile(t *testing.T) {
	img := busyboxImage(t)
	for name, data := range map[string]string{
		"json":      `{"source": "run", "files": ["/app/run.sh", "/etc/hosts"]}`,
		"record-in": "{\"path\": \"/app/run.sh\"}\n{\"path\": \"/etc/hosts\"}\n",
		"path list": "# start-up\n/app/run.sh\n/etc/host*\n",
	} {
		p, err := profile.Parse(name, []byte(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r, err := Estimate(context.Background(), img, WithProfiler(p))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Profile.Files != 2 || len(r.Profile.Missing) != 0 {
			t.Errorf("%s: profile %+v", name, r.Profile)
		}
	}
}

func TestOptionErrors(t *testing.T) {
	img := busyboxImage(t)
	for name, opts := range map[string][]Option{
		"profile and profiler": {WithProfile(fixtureProfile()), WithProfiler(profile.StaticProfiler())},
		"shaping alone":        {WithShaping(Edge)},
		"zero concurrency":     {WithConcurrency(0)},
		"bad rates":            {WithRates(Rates{})},
		"bad budget":           {WithBudget(Edge, 0)},
		"nil profile":          {WithProfile(nil)},
		"bad network":          {WithNetworks(Network{})},
	} {
		if _, err := Estimate(context.Background(), img, opts...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
