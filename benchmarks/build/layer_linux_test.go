package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/coldstart-dev/coldstart/internal/mountinfo"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/gzip"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (whiteout devices, trusted.* xattrs, chown)")
	}
}

type entry struct {
	Name    string
	Type    byte
	Mode    int64
	Uid     int
	Gid     int
	Link    string
	Xattrs  map[string]string
	Content string
	Dev     [2]int64
}

func readEntries(t *testing.T, r io.Reader) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		e := entry{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, Uid: h.Uid, Gid: h.Gid, Link: h.Linkname, Content: string(b)}
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			e.Dev = [2]int64{h.Devmajor, h.Devminor}
		}
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, paxXattrPrefix); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[name] = v
			}
		}
		out = append(out, e)
	}
}

func gunzipFile(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// upperTree makes what overlayfs leaves in an upper directory after a step
// that edits files, deletes some of the lower layers' files, empties a
// directory and adds files of every type.
func upperTree(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	p := func(rel string) string { return filepath.Join(d, rel) }
	for _, dir := range []string{"etc", "run", "usr/bin", "usr/share/doc", "var/lib/apt/lists/partial"} {
		must(t, os.MkdirAll(p(dir), 0o755))
	}
	must(t, os.WriteFile(p("etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644))
	must(t, syscall.Setxattr(p("etc/passwd"), "user.comment", []byte("hi"), 0))
	must(t, syscall.Setxattr(p("etc"), "trusted.overlay.origin", []byte{0, 1, 2}, 0))
	must(t, syscall.Setxattr(p("etc"), "trusted.overlay.impure", []byte("y"), 0))
	must(t, os.WriteFile(p("etc/shadow"), []byte("root:*:19000:0:99999:7:::\n"), 0o600))
	must(t, os.Chown(p("etc/shadow"), 0, 42))
	must(t, os.Chmod(p("etc/shadow"), 0o640))
	must(t, os.WriteFile(p("usr/bin/tool"), []byte("\x7fELF tool"), 0o755))
	must(t, os.Chmod(p("usr/bin/tool"), 0o755|os.ModeSetuid))
	must(t, os.Link(p("usr/bin/tool"), p("usr/bin/tool2")))
	must(t, os.Symlink("dash", p("usr/bin/sh")))
	// Whiteouts: 0/0 character devices, here sharing one inode as
	// overlayfs's whiteout reuse does.
	must(t, syscall.Mknod(p("usr/share/doc/gone"), syscall.S_IFCHR, 0))
	must(t, os.Link(p("usr/share/doc/gone"), p("usr/share/doc/gone2")))
	must(t, syscall.Setxattr(p("var/lib/apt/lists"), overlayOpaqueXattr, []byte("y"), 0))
	must(t, syscall.Mkfifo(p("run/fifo"), 0o600))
	must(t, syscall.Mknod(p("run/null"), syscall.S_IFCHR|0o666, int(mkdev(1, 3))))
	must(t, os.Chmod(p("run/null"), 0o666)) // past the umask
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p("run/sock"), Net: "unix"})
	must(t, err)
	l.SetUnlinkOnClose(false)
	l.Close()
	// Distinct mtimes, whole seconds, set last (children first).
	when := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, rel := range []string{"etc/passwd", "etc/shadow", "usr/bin/tool", "run/fifo", "run/null", "usr/share/doc/gone",
		"var/lib/apt/lists/partial", "var/lib/apt/lists", "var/lib/apt", "var/lib", "var", "usr/share/doc", "usr/share", "usr/bin", "usr", "run", "etc"} {
		when = when.Add(time.Hour)
		must(t, os.Chtimes(p(rel), when, when))
	}
	return d
}

func TestWriteLayer(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	src := upperTree(t)
	out := t.TempDir()
	blob := filepath.Join(out, "layer.tar.gz")
	info, err := writeLayer(ctx, src, blob, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	tarBytes := gunzipFile(t, blob)
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(raw)); info.Digest.String() != got || info.Size != int64(len(raw)) {
		t.Errorf("digest/size %s %d, blob is %s %d", info.Digest, info.Size, got, len(raw))
	}
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(tarBytes)); info.DiffID.String() != got || info.TarSize != int64(len(tarBytes)) {
		t.Errorf("diffID/tar size %s %d, tar is %s %d", info.DiffID, info.TarSize, got, len(tarBytes))
	}

	want := []entry{
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/passwd", Type: tar.TypeReg, Mode: 0o644, Xattrs: map[string]string{"user.comment": "hi"}, Content: "root:x:0:0:root:/root:/bin/bash\n"},
		{Name: "etc/shadow", Type: tar.TypeReg, Mode: 0o640, Gid: 42, Content: "root:*:19000:0:99999:7:::\n"},
		{Name: "run/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o600},
		{Name: "run/null", Type: tar.TypeChar, Mode: 0o666, Dev: [2]int64{1, 3}},
		{Name: "usr/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/bin/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/bin/sh", Type: tar.TypeSymlink, Mode: 0o777, Link: "dash"},
		{Name: "usr/bin/tool", Type: tar.TypeReg, Mode: 0o4755, Content: "\x7fELF tool"},
		{Name: "usr/bin/tool2", Type: tar.TypeLink, Mode: 0o4755, Link: "usr/bin/tool"},
		{Name: "usr/share/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/share/doc/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/share/doc/.wh.gone", Type: tar.TypeReg},
		{Name: "usr/share/doc/.wh.gone2", Type: tar.TypeReg},
		{Name: "var/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "var/lib/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "var/lib/apt/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "var/lib/apt/lists/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "var/lib/apt/lists/.wh..wh..opq", Type: tar.TypeReg},
		{Name: "var/lib/apt/lists/partial/", Type: tar.TypeDir, Mode: 0o755},
	}
	if d := cmp.Diff(want, readEntries(t, bytes.NewReader(tarBytes))); d != "" {
		t.Errorf("layer entries (-want +got):\n%s", d)
	}
	// Real mtimes, in whole seconds.
	tr := tar.NewReader(bytes.NewReader(tarBytes))
	h, _ := tr.Next()
	if fi, _ := os.Stat(filepath.Join(src, "etc")); !h.ModTime.Equal(fi.ModTime().Truncate(time.Second)) {
		t.Errorf("etc/ mtime %v, want %v", h.ModTime, fi.ModTime())
	}

	// Same tree, same bytes.
	again := filepath.Join(out, "again.tar.gz")
	info2, err := writeLayer(ctx, src, again, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw2, _ := os.ReadFile(again)
	if !bytes.Equal(raw, raw2) || info2 != info {
		t.Error("two writes of one tree differ")
	}

	// Unpacked as an overlayfs lower layer and written again: the same tar.
	lower := t.TempDir()
	f, err := os.Open(blob)
	must(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	must(t, err)
	if err := extractLayer(ctx, zr, lower); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	must(t, syscall.Lstat(filepath.Join(lower, "usr/share/doc/gone"), &st))
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout unpacked as mode %#o rdev %d, want a 0/0 character device", st.Mode, st.Rdev)
	}
	if v, err := getXattr(filepath.Join(lower, "var/lib/apt/lists"), overlayOpaqueXattr); err != nil || string(v) != "y" {
		t.Errorf("opaque dir unpacked with %s=%q (%v)", overlayOpaqueXattr, v, err)
	}
	round := filepath.Join(out, "round.tar.gz")
	info3, err := writeLayer(ctx, lower, round, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info3.DiffID != info.DiffID {
		t.Errorf("unpack + write changed the layer:\n%s", cmp.Diff(readEntries(t, bytes.NewReader(tarBytes)), readEntries(t, bytes.NewReader(gunzipFile(t, round)))))
	}

	// A fileLayer serves the blob and its tar.
	fl := &fileLayer{path: blob, info: info}
	rc, err := fl.Uncompressed()
	must(t, err)
	got, err := io.ReadAll(rc)
	must(t, err)
	must(t, rc.Close())
	if !bytes.Equal(got, tarBytes) {
		t.Error("fileLayer.Uncompressed differs from the tar")
	}
}

func TestWriteLayerSkipAndErrors(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	d := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(d, "dev/pts"), 0o755))
	must(t, os.MkdirAll(filepath.Join(d, "proc/1"), 0o555))
	must(t, os.MkdirAll(filepath.Join(d, "sys"), 0o555))
	must(t, os.MkdirAll(filepath.Join(d, "devices"), 0o755))
	must(t, syscall.Mknod(filepath.Join(d, "dev/null"), syscall.S_IFCHR|0o666, int(mkdev(1, 3))))
	blob := filepath.Join(t.TempDir(), "l.tar.gz")
	if _, err := writeLayer(ctx, d, blob, skipMounts); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range readEntries(t, bytes.NewReader(gunzipFile(t, blob))) {
		names = append(names, e.Name)
	}
	if d := cmp.Diff([]string{"dev/", "devices/", "proc/", "sys/"}, names); d != "" {
		t.Errorf("skipMounts (-want +got):\n%s", d)
	}

	// A real file named like a whiteout cannot be stored.
	must(t, os.WriteFile(filepath.Join(d, ".wh.oops"), nil, 0o644))
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	if _, err := writeLayer(ctx, d, bad, nil); err == nil || !strings.Contains(err.Error(), ".wh.oops") {
		t.Errorf("got %v, want an error naming .wh.oops", err)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed write left its file")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(bad), ".layer-*")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := writeLayer(cctx, d, bad, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

type tarEntry struct {
	h    tar.Header
	body string
}

func makeTar(t *testing.T, entries ...tarEntry) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.h
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		must(t, tw.WriteHeader(&h))
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	must(t, tw.Close())
	return bytes.NewReader(buf.Bytes())
}

func TestExtractLayerRefusesEscapes(t *testing.T) {
	needRoot(t)
	outside := t.TempDir()
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"dotdot", []tarEntry{{h: tar.Header{Name: "../x", Typeflag: tar.TypeReg}}}, "leaves the layer"},
		{"inner dotdot", []tarEntry{{h: tar.Header{Name: "a/../../x", Typeflag: tar.TypeReg}}}, "leaves the layer"},
		{"through symlink", []tarEntry{
			{h: tar.Header{Name: "a", Typeflag: tar.TypeSymlink, Linkname: outside}},
			{h: tar.Header{Name: "a/evil", Typeflag: tar.TypeReg}, body: "x"},
		}, "symlink"},
		{"whiteout through symlink", []tarEntry{
			{h: tar.Header{Name: "a", Typeflag: tar.TypeSymlink, Linkname: outside}},
			{h: tar.Header{Name: "a/.wh.evil", Typeflag: tar.TypeReg}},
		}, "symlink"},
		{"hard link out", []tarEntry{{h: tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}}}, "leaves the layer"},
		{"hard link to nothing", []tarEntry{{h: tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "missing"}}}, "earlier entry"},
		{"file over dir", []tarEntry{
			{h: tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}},
			{h: tar.Header{Name: "d", Typeflag: tar.TypeReg}},
		}, "replaced by a non-directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := extractLayer(context.Background(), makeTar(t, tc.entries...), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
			if left, _ := os.ReadDir(outside); len(left) != 0 {
				t.Fatalf("wrote outside the layer: %v", left)
			}
		})
	}
}

func TestExtractLayerOverlayForm(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	err := extractLayer(context.Background(), makeTar(t,
		tarEntry{h: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o700}},
		tarEntry{h: tar.Header{Name: "gone/", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarEntry{h: tar.Header{Name: "gone/f", Typeflag: tar.TypeReg}, body: "x"},
		tarEntry{h: tar.Header{Name: ".wh.gone", Typeflag: tar.TypeReg, ModTime: when}},
		tarEntry{h: tar.Header{Name: "implicit/parent/file", Typeflag: tar.TypeReg, Mode: 0o2755, Uid: 1000, Gid: 1001, ModTime: when}, body: "y"},
		tarEntry{h: tar.Header{Name: "opq/.wh..wh..opq", Typeflag: tar.TypeReg}},
		tarEntry{h: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/nowhere", ModTime: when}},
		tarEntry{h: tar.Header{Name: "twice", Typeflag: tar.TypeReg}, body: "1"},
		tarEntry{h: tar.Header{Name: "twice", Typeflag: tar.TypeReg}, body: "2"},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	must(t, syscall.Lstat(filepath.Join(dir, "gone"), &st))
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
		t.Errorf("gone: mode %#o rdev %d, want a whiteout", st.Mode, st.Rdev)
	}
	must(t, syscall.Lstat(filepath.Join(dir, "implicit/parent/file"), &st))
	if st.Mode&0o7777 != 0o2755 || st.Uid != 1000 || st.Gid != 1001 || st.Mtim.Sec != when.Unix() {
		t.Errorf("file: mode %#o owner %d:%d mtime %d", st.Mode&0o7777, st.Uid, st.Gid, st.Mtim.Sec)
	}
	if fi, err := os.Stat(filepath.Join(dir, "implicit")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("implicit parent: %v %v", fi, err)
	}
	if v, err := getXattr(filepath.Join(dir, "opq"), overlayOpaqueXattr); err != nil || string(v) != "y" {
		t.Errorf("opq: %q %v", v, err)
	}
	must(t, syscall.Lstat(filepath.Join(dir, "link"), &st))
	if st.Mtim.Sec != when.Unix() {
		t.Errorf("symlink mtime %d, want %d", st.Mtim.Sec, when.Unix())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "twice")); string(b) != "2" {
		t.Errorf("twice = %q, want the later entry", b)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() == 0o700 {
		t.Error("the layer root took the ./ entry's mode")
	}
}

func TestParseMountsBelow(t *testing.T) {
	info := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 22 0:31 / /work/cache/tmp/x\040y/merged rw - overlay overlay rw
36 22 0:32 / /work/cache/tmpfoo rw - tmpfs tmpfs rw
37 22 0:33 / /work/cache/tmp rw - tmpfs tmpfs rw
`
	got, err := mountinfo.Under(strings.NewReader(info), "/work/cache/tmp/")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"/work/cache/tmp/x y/merged", "/work/cache/tmp"}, got); d != "" {
		t.Error(d)
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "f"), nil, 0o644))
	if err := removeTree(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Error("removeTree left the directory")
	}
	if err := removeTree("/proc"); err == nil || !strings.Contains(err.Error(), "mounted") {
		t.Errorf("removeTree(/proc) = %v, want a refusal", err)
	}
}

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"plain", "it's", `a "b" $c \d`, "", "new\nline"} {
		out, err := execOutput("/bin/sh", "-c", "printf %s "+shellQuote(s))
		if err != nil {
			t.Fatal(err)
		}
		if out != s {
			t.Errorf("shellQuote(%q) came back as %q", s, out)
		}
	}
}

func execOutput(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout = &out
	err := cmd.Run()
	return out.String(), err
}

func TestTempDirSweepsDeadProcesses(t *testing.T) {
	cache := t.TempDir()
	root := filepath.Join(cache, "tmp")
	dead := filepath.Join(root, "node-999999999-123") // above pid_max: no such process
	alive := filepath.Join(root, fmt.Sprintf("shell-%d-456", os.Getpid()))
	other := filepath.Join(root, "notours")
	for _, d := range []string{dead, alive, other} {
		must(t, os.MkdirAll(filepath.Join(d, "sub"), 0o755))
	}
	got, err := tempDir(cache, "run-python")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(got), fmt.Sprintf("run-python-%d-", os.Getpid())) || filepath.Dir(got) != root {
		t.Errorf("tempDir = %s", got)
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Error("the tree of a dead process was kept")
	}
	for _, d := range []string{alive, other, got} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
}
