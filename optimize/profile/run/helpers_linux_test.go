//go:build linux

package run_test

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/rootfs"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/profile/run"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// requireRun skips the test, or fails it under COLDSTART_REQUIRE_TOOLS=1,
// when this machine cannot run the run profiler.
func requireRun(t testing.TB) {
	t.Helper()
	if err := run.Supported(); err != nil {
		registrytest.SkipOrFail(t, "run profiler unavailable: %v", err)
	}
}

// hostTree collects host files, at their host paths, as the entries of an
// image layer: every symbolic link on the way to a file is copied as a link
// and followed, so that Debian's merged-/usr layout comes along.
type hostTree struct {
	t       testing.TB
	entries map[string]testimage.Entry
}

func newHostTree(t testing.TB) *hostTree {
	return &hostTree{t: t, entries: map[string]testimage.Entry{}}
}

func split(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

// add copies the host file p (and the links that lead to it).
func (h *hostTree) add(p string) {
	h.t.Helper()
	cur := "/"
	rest := split(p)
	for n := 0; len(rest) > 0; n++ {
		if n > 200 {
			h.t.Fatalf("%s: too many links", p)
		}
		c := rest[0]
		rest = rest[1:]
		if c == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		name := strings.TrimPrefix(next, "/")
		fi, err := os.Lstat(next)
		if err != nil {
			h.t.Fatalf("adding %s: %v", p, err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(next)
			if err != nil {
				h.t.Fatal(err)
			}
			h.entries[name] = testimage.Symlink(name, target)
			if path.IsAbs(target) {
				cur = "/"
			}
			rest = append(split(target), rest...)
		case fi.IsDir():
			if _, ok := h.entries[name]; !ok {
				h.entries[name] = testimage.Dir(name, int64(fi.Mode().Perm()))
			}
			cur = next
		case fi.Mode().IsRegular():
			if len(rest) > 0 {
				h.t.Fatalf("adding %s: %s is not a directory", p, next)
			}
			b, err := os.ReadFile(next)
			if err != nil {
				h.t.Fatal(err)
			}
			h.entries[name] = testimage.File(name, string(b), testimage.Mode(int64(fi.Mode().Perm())))
		default:
			h.t.Fatalf("adding %s: %s is %v", p, next, fi.Mode())
		}
	}
}

// addProgram copies a host program with the libraries and loader ldd lists.
func (h *hostTree) addProgram(p string) {
	h.t.Helper()
	h.add(p)
	out, err := exec.Command("ldd", p).Output()
	if err != nil {
		// Static programs: "not a dynamic executable".
		return
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(f, "/") {
				h.add(f)
			}
		}
	}
}

// addDir copies the host directory tree dir, without the subdirectories
// skip names (relative to dir).
func (h *hostTree) addDir(dir string, skip ...string) {
	h.t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, s := range skip {
			if rel == s {
				return filepath.SkipDir
			}
		}
		if d.IsDir() {
			h.add(p)
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if _, err := os.Stat(p); err != nil {
				return nil // dangling
			}
		}
		h.add(p)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// file adds an entry written by the test.
func (h *hostTree) file(name, content string, mode int64) {
	h.entries[strings.TrimPrefix(name, "/")] = testimage.File(strings.TrimPrefix(name, "/"), content, testimage.Mode(mode))
}

func (h *hostTree) entry(e testimage.Entry) {
	h.entries[strings.TrimSuffix(strings.TrimPrefix(e.Header.Name, "/"), "/")] = e
}

// layer returns the entries as an uncompressed layer, sorted by name, with
// parent directories added.
func (h *hostTree) layer() v1.Layer {
	h.t.Helper()
	names := make([]string, 0, len(h.entries))
	for n := range h.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var l testimage.Layer
	for _, n := range names {
		l = append(l, h.entries[n])
	}
	lay, err := testimage.LayerFromTar(l.Tar(testimage.WithParents()), compression.None)
	if err != nil {
		h.t.Fatal(err)
	}
	return lay
}

// baseTree is a minimal Debian-like root: merged-/usr links, dash as
// /bin/sh with libc and the loader, passwd and group with an "app" user,
// the loader cache, /tmp.
func baseTree(t testing.TB) *hostTree {
	h := newHostTree(t)
	for _, p := range []string{"/bin", "/lib", "/lib64", "/sbin"} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			registrytest.SkipOrFail(t, "the host is not merged-/usr (%s is not a link): the test images copy host binaries", p)
		}
	}
	h.addProgram("/bin/sh")
	if _, err := os.Stat("/etc/ld.so.cache"); err == nil {
		h.add("/etc/ld.so.cache")
	}
	h.file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n", 0o644)
	h.file("/etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:app\n", 0o644)
	h.entry(testimage.Dir("tmp", 0o1777))
	h.entry(testimage.Dir("root", 0o700))
	h.entry(testimage.Dir("home/app", 0o755, testimage.Owner(1000, 1000)))
	return h
}

// imageOf builds an image from layers with the given config.
func imageOf(t testing.TB, cfg v1.Config, ls ...v1.Layer) v1.Image {
	t.Helper()
	img, err := testimage.Image(cfg, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// filler extracts img's merged filesystem, as Image does, for run.Root.
func filler(img v1.Image) run.Filler {
	return func(ctx context.Context, dir string) error {
		idxs, err := optimize.IndexImage(ctx, img)
		if err != nil {
			return err
		}
		ov, err := layers.Merge(idxs...)
		if err != nil {
			return err
		}
		ls, err := img.Layers()
		if err != nil {
			return err
		}
		_, err = rootfs.Extract(ctx, dir, ls, ov)
		return err
	}
}

// configOf returns the profile.Config of img.
func configOf(t testing.TB, img v1.Image) profile.Config {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return profile.ConfigOf(cf.Config)
}

// runImage runs run.Image on img with a private workspace directory, on
// tmpfs when /dev/shm is one (creating files there is much faster than on a
// virtual disk), else in the test's temporary directory.
func runImage(t testing.TB, ctx context.Context, img v1.Image, opts ...run.Option) (*profile.Profile, error) {
	t.Helper()
	opts = append([]run.Option{run.WithTempDir(workDir(t))}, opts...)
	return run.Image(ctx, img, opts...)
}

func workDir(t testing.TB) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		if d, err := os.MkdirTemp("/dev/shm", "coldstart-test-"); err == nil {
			t.Cleanup(func() {
				if err := os.Remove(d); err != nil {
					t.Errorf("the run left files in %s: %v", d, err)
				}
			})
			return d
		}
	}
	return t.TempDir()
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// realPath returns the host path of p with every link resolved: the image
// built from host files has the same layout.
func realPath(t testing.TB, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
