package profile

import (
	"bytes"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/elftest"
)

// memFS is an in-memory image root for tests. Names are taken literally:
// the profiler resolves links itself and asks only for resolved parents.
type memFS struct {
	nodes    map[string]*memNode
	noReadAt bool // files hide io.ReaderAt (and io.Seeker) to test the fallbacks
	seekOnly bool // files offer io.Seeker but not io.ReaderAt
}

type memNode struct {
	mode   fs.FileMode
	data   []byte
	target string
	mtime  time.Time
}

var memTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func newMemFS() *memFS {
	m := &memFS{nodes: map[string]*memNode{}}
	m.nodes["/"] = &memNode{mode: fs.ModeDir | 0o755, mtime: memTime}
	return m
}

func (m *memFS) mkdirs(p string) {
	for d := path.Dir(p); ; d = path.Dir(d) {
		if _, ok := m.nodes[d]; !ok {
			m.nodes[d] = &memNode{mode: fs.ModeDir | 0o755, mtime: memTime}
		}
		if d == "/" {
			return
		}
	}
}

func (m *memFS) file(p string, data []byte, perm fs.FileMode) *memNode {
	m.mkdirs(p)
	n := &memNode{mode: perm, data: data, mtime: memTime}
	m.nodes[p] = n
	return n
}

func (m *memFS) text(p, s string) *memNode { return m.file(p, []byte(s), 0o644) }
func (m *memFS) exe(p string, data []byte) *memNode {
	return m.file(p, data, 0o755)
}
func (m *memFS) script(p, s string) *memNode { return m.file(p, []byte(s), 0o755) }

func (m *memFS) link(p, target string) {
	m.mkdirs(p)
	m.nodes[p] = &memNode{mode: fs.ModeSymlink | 0o777, target: target, mtime: memTime}
}

func (m *memFS) dir(p string) {
	m.mkdirs(p + "/x")
}

// mergedUsr adds Debian's merged-/usr links.
func (m *memFS) mergedUsr() {
	m.link("/bin", "usr/bin")
	m.link("/sbin", "usr/sbin")
	m.link("/lib", "usr/lib")
	m.link("/lib64", "usr/lib64")
	m.dir("/usr/bin")
	m.dir("/usr/sbin")
	m.dir("/usr/lib")
	m.dir("/usr/lib64")
}

type memInfo struct {
	name string
	n    *memNode
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return int64(len(i.n.data)) }
func (i memInfo) Mode() fs.FileMode  { return i.n.mode }
func (i memInfo) ModTime() time.Time { return i.n.mtime }
func (i memInfo) IsDir() bool        { return i.n.mode.IsDir() }
func (i memInfo) Sys() any           { return nil }

func (m *memFS) Lstat(name string) (fs.FileInfo, error) {
	n, ok := m.nodes[name]
	if !ok {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrNotExist}
	}
	return memInfo{path.Base(name), n}, nil
}

func (m *memFS) Readlink(name string) (string, error) {
	n, ok := m.nodes[name]
	if !ok || n.mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return n.target, nil
}

type memFile struct {
	info memInfo
	*bytes.Reader
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Close() error               { return nil }

type plainFile struct {
	info memInfo
	r    io.Reader
}

func (f *plainFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *plainFile) Read(b []byte) (int, error) { return f.r.Read(b) }
func (f *plainFile) Close() error               { return nil }

type seekFile struct {
	plainFile
	s io.Seeker
}

func (f *seekFile) Seek(off int64, whence int) (int64, error) { return f.s.Seek(off, whence) }

func (m *memFS) Open(name string) (fs.File, error) {
	n, ok := m.nodes[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if !n.mode.IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	info := memInfo{path.Base(name), n}
	r := bytes.NewReader(n.data)
	switch {
	case m.seekOnly:
		return &seekFile{plainFile{info, r}, r}, nil
	case m.noReadAt:
		return &plainFile{info, r}, nil
	}
	return &memFile{info, r}, nil
}

type memDirEntry struct{ memInfo }

func (e memDirEntry) Type() fs.FileMode          { return e.n.mode.Type() }
func (e memDirEntry) Info() (fs.FileInfo, error) { return e.memInfo, nil }

func (m *memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, ok := m.nodes[name]
	if !ok || !n.mode.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	prefix := name + "/"
	if name == "/" {
		prefix = "/"
	}
	var out []fs.DirEntry
	for p, c := range m.nodes {
		if p == "/" || !strings.HasPrefix(p, prefix) || strings.Contains(p[len(prefix):], "/") {
			continue
		}
		out = append(out, memDirEntry{memInfo{p[len(prefix):], c}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

const ldx86 = "/lib64/ld-linux-x86-64.so.2"

// glibcRoot is a merged-/usr image with a synthetic glibc: the loader, libc
// and a few libraries in the x86_64 multiarch directory.
func glibcRoot() *memFS {
	m := newMemFS()
	m.mergedUsr()
	lib := "/usr/lib/x86_64-linux-gnu/"
	m.link("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	m.exe(lib+"ld-linux-x86-64.so.2", elftest.Build(elftest.Spec{SOName: "ld-linux-x86-64.so.2"}))
	m.file(lib+"libc.so.6", elftest.Build(elftest.Spec{SOName: "libc.so.6", Needed: []string{"ld-linux-x86-64.so.2"}}), 0o644)
	m.file(lib+"libm.so.6", elftest.Build(elftest.Spec{SOName: "libm.so.6", Needed: []string{"libc.so.6"}}), 0o644)
	m.file(lib+"libz.so.1.2.13", elftest.Build(elftest.Spec{SOName: "libz.so.1", Needed: []string{"libc.so.6"}}), 0o644)
	m.link(lib+"libz.so.1", "libz.so.1.2.13")
	return m
}

// prog is a dynamic x86_64 program needing libs.
func prog(needed ...string) []byte {
	return elftest.Build(elftest.Spec{Interp: ldx86, Needed: needed})
}

// loaderFiles is what exec of a glibcRoot program lists after the program.
var loaderFiles = []string{
	"/lib64",
	"/usr/lib64/ld-linux-x86-64.so.2",
	"/lib",
	"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func mustStatic(t testing.TB, fsys FS, cfg Config, opts ...Option) *Profile {
	t.Helper()
	p, err := Static(t.Context(), fsys, cfg, opts...)
	if err != nil {
		t.Fatalf("Static: %v", err)
	}
	return p
}

func hasWarning(p *Profile, sub string) bool {
	for _, w := range p.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}
