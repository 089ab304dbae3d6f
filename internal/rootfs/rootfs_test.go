package rootfs

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// build turns layer tars into v1 layers and their overlay.
func build(t testing.TB, tars ...[]byte) ([]v1.Layer, *layers.Overlay) {
	t.Helper()
	var ls []v1.Layer
	var idxs []*layers.Index
	for i, b := range tars {
		l, err := testimage.LayerFromTar(b, compression.GZip)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := layers.IndexLayer(context.Background(), l)
		if err != nil {
			t.Fatalf("indexing layer %d: %v", i, err)
		}
		ls = append(ls, l)
		idxs = append(idxs, idx)
	}
	ov, err := layers.Merge(idxs...)
	if err != nil {
		t.Fatal(err)
	}
	return ls, ov
}

func tars(ls ...testimage.Layer) [][]byte {
	var out [][]byte
	for _, l := range ls {
		out = append(out, l.Tar())
	}
	return out
}

// node is what a test compares of one extracted path.
type node struct {
	Type     string
	Mode     fs.FileMode
	UID, GID int
	Size     int64
	Digest   string
	Link     string
	Xattrs   map[string]string
}

func nodeType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeDevice != 0:
		return "device"
	case m.IsRegular():
		return "file"
	}
	return m.Type().String()
}

// readTree describes every path under dir (relative, slash-separated).
func readTree(t testing.TB, dir string, owners bool) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		n := node{Type: nodeType(fi.Mode()), Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		if owners {
			st := fi.Sys().(*syscall.Stat_t)
			n.UID, n.GID = int(st.Uid), int(st.Gid)
		}
		switch n.Type {
		case "file":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Size = int64(len(b))
			n.Digest = fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		case "symlink":
			n.Link, _ = os.Readlink(p)
			n.Mode = 0
		}
		if n.Type == "file" || n.Type == "dir" {
			n.Xattrs = userXattrs(t, p)
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func userXattrs(t testing.TB, p string) map[string]string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return nil
	}
	var out map[string]string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(v[:m])
	}
	return out
}

// want describes the reference tree the way readTree describes a directory.
func want(tree *testimage.Tree, owners bool) map[string]node {
	out := map[string]node{}
	for _, n := range tree.Nodes() {
		if n.Path == "." || n.Type == testimage.TypeChar || n.Type == testimage.TypeBlock {
			continue
		}
		w := node{Mode: perm(n.Mode)}
		if owners {
			w.UID, w.GID = n.UID, n.GID
		}
		switch n.Type {
		case testimage.TypeDir:
			w.Type = "dir"
		case testimage.TypeFile:
			w.Type, w.Size, w.Digest = "file", n.Size, n.Digest
		case testimage.TypeSymlink:
			w.Type, w.Link, w.Mode = "symlink", n.Linkname, 0
		case testimage.TypeFIFO:
			w.Type = "fifo"
		}
		if w.Type == "file" || w.Type == "dir" {
			for k, v := range n.Xattrs {
				if strings.HasPrefix(k, "user.") {
					if w.Xattrs == nil {
						w.Xattrs = map[string]string{}
					}
					w.Xattrs[k] = v
				}
			}
		}
		out[n.Path] = w
	}
	return out
}

func extract(t testing.TB, tarBytes [][]byte, opts ...Option) (string, *Result, error) {
	t.Helper()
	ls, ov := build(t, tarBytes...)
	dir := t.TempDir()
	res, err := Extract(context.Background(), dir, ls, ov, opts...)
	return dir, res, err
}

// TestExtractMatchesReference extracts random layered filesystems and
// compares the result with the reference applier of internal/testimage.
func TestExtractMatchesReference(t *testing.T) {
	owners := os.Geteuid() == 0
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(seed), 7))
			ls := testimage.Random(r, testimage.RandomOptions{Specials: true})
			tb := tars(ls...)
			ref, err := testimage.Apply(tb...)
			if err != nil {
				t.Fatal(err)
			}
			dir, res, err := extract(t, tb)
			if err != nil {
				t.Fatal(err)
			}
			got := readTree(t, dir, owners)
			if d := cmp.Diff(want(ref, owners), got); d != "" {
				t.Errorf("extracted tree differs from the reference (-want +got):\n%s", d)
			}
			for _, n := range ref.Nodes() {
				if n.Type == testimage.TypeChar && !hasNote(res, n.Path) {
					t.Errorf("no note says the device %s was skipped: %q", n.Path, res.Notes)
				}
			}
		})
	}
}

func hasNote(res *Result, sub string) bool {
	for _, n := range res.Notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

func TestExtractMetadata(t *testing.T) {
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	l0 := testimage.Layer{
		testimage.Dir("etc", 0o755, testimage.MTime(mtime)),
		testimage.File("etc/conf", "hello", testimage.Mode(0o640), testimage.Owner(1000, 42), testimage.MTime(mtime),
			testimage.Xattr("user.note", "yes")),
		testimage.Dir("usr/bin", 0o755),
		testimage.File("usr/bin/su", "suid", testimage.Mode(0o4755), testimage.Owner(0, 0)),
		testimage.File("usr/bin/wall", "sgid", testimage.Mode(0o2755), testimage.Owner(0, 5)),
		testimage.Dir("tmp", 0o1777, testimage.MTime(mtime)),
		testimage.Symlink("bin", "usr/bin", testimage.MTime(mtime)),
		testimage.Symlink("etc/abs", "/etc/conf"),
		testimage.Hardlink("etc/conf2", "etc/conf"),
		testimage.FIFO("run-fifo", testimage.Mode(0o620)),
		testimage.Char("dev/null", 1, 3),
		testimage.Block("dev/sda", 8, 0),
		testimage.Dir("ro", 0o555),
		testimage.File("ro/file", "x", testimage.Mode(0o444)),
	}
	dir, res, err := extract(t, tars(l0))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dir, "etc/conf"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mtime) {
		t.Errorf("etc/conf: mode %v mtime %v, want 0640 %v", fi.Mode(), fi.ModTime(), mtime)
	}
	for p, m := range map[string]fs.FileMode{"usr/bin/su": fs.ModeSetuid | 0o755, "usr/bin/wall": fs.ModeSetgid | 0o755, "tmp": fs.ModeDir | fs.ModeSticky | 0o777, "ro": fs.ModeDir | 0o555, "run-fifo": fs.ModeNamedPipe | 0o620} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != m {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), m)
		}
	}
	for _, p := range []string{"etc", "tmp", "bin"} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), mtime)
		}
	}
	if os.Geteuid() == 0 {
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 1000 || st.Gid != 42 {
			t.Errorf("etc/conf owner %d:%d, want 1000:42", st.Uid, st.Gid)
		}
	}
	if got := userXattrs(t, filepath.Join(dir, "etc/conf")); got["user.note"] != "yes" {
		t.Errorf("etc/conf xattrs %v, want user.note=yes", got)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "etc/abs")); target != "/etc/conf" {
		t.Errorf("etc/abs -> %q, want /etc/conf (stored as written)", target)
	}
	a, _ := os.Stat(filepath.Join(dir, "etc/conf"))
	b, _ := os.Stat(filepath.Join(dir, "etc/conf2"))
	if !os.SameFile(a, b) {
		t.Error("etc/conf2 is not a hard link to etc/conf")
	}
	for _, dev := range []string{"dev/null", "dev/sda"} {
		if _, err := os.Lstat(filepath.Join(dir, dev)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("device %s was created (err %v)", dev, err)
		}
		if !hasNote(res, dev) {
			t.Errorf("no note for device %s: %q", dev, res.Notes)
		}
	}
	if res.Entries == 0 || res.Bytes != int64(len("hello")+len("suid")+len("sgid")+len("x")) {
		t.Errorf("result %+v", res)
	}
}

// TestExtractHiddenLinkTarget: a hard link whose target the same layer
// replaces afterwards keeps the old content, as an inode does.
func TestExtractHiddenLinkTarget(t *testing.T) {
	l0 := testimage.Layer{
		testimage.File("a", "old"),
		testimage.Hardlink("b", "a"),
		testimage.Hardlink("c", "a"),
		testimage.File("a", "new"),
	}
	ref, err := testimage.Apply(l0.Tar())
	if err != nil {
		t.Fatal(err)
	}
	dir, _, err := extract(t, tars(l0))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want(ref, false), readTree(t, dir, false)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	b, _ := os.Stat(filepath.Join(dir, "b"))
	c, _ := os.Stat(filepath.Join(dir, "c"))
	if !os.SameFile(b, c) {
		t.Error("b and c are not the same inode")
	}
}

// canary returns a host directory outside the extraction directory that no
// entry may touch.
func canary(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "keep"), []byte("canary"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func checkCanary(t *testing.T, d string) {
	t.Helper()
	ents, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "keep" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("something was written outside the root: %s holds %v", d, names)
	}
	b, err := os.ReadFile(filepath.Join(d, "keep"))
	if err != nil || string(b) != "canary" {
		t.Fatalf("canary file changed: %q %v", b, err)
	}
}

// TestExtractRefusesLinkClimb plants a symbolic link and then writes
// through it, in the same layer and from a later layer, with absolute and
// relative targets that point outside and inside the root.
func TestExtractRefusesLinkClimb(t *testing.T) {
	c := canary(t)
	rel, err := filepath.Rel(t.TempDir(), c)
	if err != nil {
		t.Fatal(err)
	}
	up := strings.Repeat("../", 20) + strings.TrimPrefix(c, "/")
	cases := map[string][][]byte{
		"absolute link, later layer": tars(
			testimage.Layer{testimage.Symlink("evil", c)},
			testimage.Layer{testimage.File("evil/pwned", "x")},
		),
		"relative link, later layer": tars(
			testimage.Layer{testimage.Symlink("evil", up)},
			testimage.Layer{testimage.File("evil/pwned", "x")},
		),
		"relative link, same layer": tars(
			testimage.Layer{testimage.Symlink("evil", "../"+rel), testimage.File("evil/pwned", "x")},
		),
		"nested link": tars(
			testimage.Layer{testimage.Dir("a", 0o755), testimage.Symlink("a/b", up)},
			testimage.Layer{testimage.Dir("a/b/c", 0o755), testimage.File("a/b/c/pwned", "x")},
		),
		"link inside the root": tars(
			testimage.Layer{testimage.Dir("usr", 0o755), testimage.Symlink("lib", "usr")},
			testimage.Layer{testimage.File("lib/pwned", "x")},
		),
		"hard link through a link": tars(
			testimage.Layer{testimage.Symlink("evil", c)},
			testimage.Layer{testimage.Hardlink("stolen", "evil/keep")},
		),
		"link under a link": tars(
			testimage.Layer{testimage.Symlink("evil", c)},
			testimage.Layer{testimage.Symlink("evil/pwned", "/x")},
		),
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			dir, _, err := extract(t, cases[name])
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("err = %v, want ErrUnsafePath", err)
			}
			checkCanary(t, c)
			if _, err := os.Lstat(filepath.Join(dir, "usr/pwned")); err == nil {
				t.Error("wrote through an in-root link")
			}
		})
	}
}

// TestExtractRefusesUnsafeNames feeds entries the layer index would refuse
// (absolute names, ".." climbs) through a hand-made index: Extract checks
// them again.
func TestExtractRefusesUnsafeNames(t *testing.T) {
	c := canary(t)
	up := strings.Repeat("../", 20) + strings.TrimPrefix(c, "/") + "/pwned"
	for _, name := range []string{up, c + "/pwned", "a/../../pwned"} {
		t.Run(name, func(t *testing.T) {
			tb := testimage.Layer{testimage.Raw(tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}, []byte("x"))}.Tar()
			l, err := testimage.LayerFromTar(tb, compression.None)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := layers.IndexLayer(context.Background(), l); !errors.Is(err, layers.ErrUnsafePath) {
				t.Errorf("IndexLayer: err = %v, want ErrUnsafePath", err)
			}
			idx := &layers.Index{MediaType: types.OCIUncompressedLayer, Entries: []layers.Entry{{Name: name, Path: name, Type: layers.TypeReg, Mode: 0o644, Size: 1, LinkIndex: -1}}}
			ov, err := layers.Merge(idx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Extract(context.Background(), t.TempDir(), []v1.Layer{l}, ov)
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("Extract: err = %v, want ErrUnsafePath", err)
			}
			checkCanary(t, c)
		})
	}
}

func TestExtractNotEmpty(t *testing.T) {
	ls, ov := build(t, testimage.Layer{testimage.File("a", "x")}.Tar())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "old"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(context.Background(), dir, ls, ov); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("err = %v, want ErrNotEmpty", err)
	}
}

func TestExtractCancelled(t *testing.T) {
	ls, ov := build(t, testimage.Layer{testimage.File("a", "x")}.Tar())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Extract(ctx, t.TempDir(), ls, ov); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestExtractLayerMismatch(t *testing.T) {
	ls, _ := build(t, testimage.Layer{testimage.File("a", "x")}.Tar())
	_, ov := build(t, testimage.Layer{testimage.File("b", "x")}.Tar())
	if _, err := Extract(context.Background(), t.TempDir(), ls, ov); !errors.Is(err, ErrLayerMismatch) {
		t.Fatalf("names differ: err = %v, want ErrLayerMismatch", err)
	}
	// Same names and sizes, other content: a source that changed between
	// indexing and extraction.
	ls, _ = build(t, testimage.Layer{testimage.File("a", "x")}.Tar())
	_, ov = build(t, testimage.Layer{testimage.File("a", "y")}.Tar())
	if _, err := Extract(context.Background(), t.TempDir(), ls, ov); !errors.Is(err, ErrLayerMismatch) {
		t.Fatalf("content differs: err = %v, want ErrLayerMismatch", err)
	}
}
