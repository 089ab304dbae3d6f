package optimize

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coldstart-dev/coldstart/layers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// layerTars decompresses layers into temporary tar files on first use, so
// that files can be read at their offsets, and so that each layer is
// decompressed at most once more after indexing.
type layerTars struct {
	ctx    context.Context
	ls     []v1.Layer
	tmp    *tempDir
	mu     sync.Mutex
	once   []sync.Once
	files  []*os.File
	errs   []error
	closed bool
}

func newLayerTars(ctx context.Context, ls []v1.Layer, tmp *tempDir) *layerTars {
	return &layerTars{ctx: ctx, ls: ls, tmp: tmp, once: make([]sync.Once, len(ls)), files: make([]*os.File, len(ls)), errs: make([]error, len(ls))}
}

// tar returns layer i's uncompressed tar.
func (t *layerTars) tar(i int) (*os.File, error) {
	t.once[i].Do(func() {
		f, err := t.extract(i)
		t.mu.Lock()
		t.files[i], t.errs[i] = f, err
		t.mu.Unlock()
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.files[i], t.errs[i]
}

// opened returns layer i's tar if it was already extracted.
func (t *layerTars) opened(i int) *os.File {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.files[i]
}

func (t *layerTars) extract(i int) (*os.File, error) {
	rc, err := t.ls[i].Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	dec, _, err := layers.Decompress(rc)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	f, err := t.tmp.create("layer-*.tar")
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(f, &ctxReader{ctx: t.ctx, r: dec}); err != nil {
		t.tmp.discard(f)
		return nil, fmt.Errorf("decompressing layer %d: %w", i, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		t.tmp.discard(f)
		return nil, os.ErrClosed
	}
	return f, nil
}

// close removes every extracted tar.
func (t *layerTars) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for i, f := range t.files {
		if f != nil {
			t.tmp.discard(f)
			t.files[i] = nil
		}
	}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// imageFS is the merged filesystem of an image, read-only, as the static
// profiler reads it. Paths are absolute inside the image.
type imageFS struct {
	ov       *layers.Overlay
	tars     *layerTars
	children map[string][]string
}

func newImageFS(ov *layers.Overlay, tars *layerTars) *imageFS {
	children := map[string][]string{}
	for _, p := range ov.Paths() {
		if p == "." {
			continue
		}
		d := path.Dir(p)
		children[d] = append(children[d], path.Base(p))
	}
	for _, c := range children {
		sort.Strings(c)
	}
	return &imageFS{ov: ov, tars: tars, children: children}
}

func rel(name string) string {
	p := path.Clean("/" + name)
	if p == "/" {
		return "."
	}
	return strings.TrimPrefix(p, "/")
}

func (f *imageFS) lookup(op, name string) (*layers.Entry, layers.Ref, error) {
	p := rel(name)
	r, ok := f.ov.Lookup(p)
	if !ok {
		if p == "." {
			return &layers.Entry{Path: ".", Type: layers.TypeDir, Mode: 0o755}, layers.Ref{Layer: -1}, nil
		}
		return nil, r, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	e := f.ov.Entry(r)
	if e.Type == layers.TypeHardlink {
		// A hard link is its target's inode: same content, mode, owner
		// and mtime.
		if e.LinkIndex >= 0 {
			r.Entry = e.LinkIndex
			return f.ov.Entry(r), r, nil
		}
		if tr, ok := f.ov.Lookup(e.Linkname); ok && f.ov.Entry(tr).HasContent() {
			return f.ov.Entry(tr), tr, nil
		}
	}
	return e, r, nil
}

func (f *imageFS) Lstat(name string) (fs.FileInfo, error) {
	e, _, err := f.lookup("lstat", name)
	if err != nil {
		return nil, err
	}
	return entryInfo{e}, nil
}

func (f *imageFS) Readlink(name string) (string, error) {
	e, _, err := f.lookup("readlink", name)
	if err != nil {
		return "", err
	}
	if e.Type != layers.TypeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return e.Linkname, nil
}

func (f *imageFS) Open(name string) (fs.File, error) {
	e, r, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if !e.HasContent() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if e.Type != layers.TypeReg {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	tf, err := f.tars.tar(r.Layer)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &entryFile{info: entryInfo{e}, SectionReader: io.NewSectionReader(tf, e.DataOffset, e.Size)}, nil
}

func (f *imageFS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, _, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if e.Type != layers.TypeDir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	p := rel(name)
	var out []fs.DirEntry
	for _, c := range f.children[p] {
		if cr, ok := f.ov.Lookup(path.Join(p, c)); ok {
			out = append(out, fs.FileInfoToDirEntry(entryInfo{f.ov.Entry(cr)}))
		}
	}
	return out, nil
}

// entryInfo describes an entry as fs.FileInfo.
type entryInfo struct{ e *layers.Entry }

func (i entryInfo) Name() string       { return path.Base(i.e.Path) }
func (i entryInfo) Size() int64        { return i.e.Size }
func (i entryInfo) ModTime() time.Time { return i.e.ModTime }
func (i entryInfo) IsDir() bool        { return i.e.Type == layers.TypeDir }
func (i entryInfo) Sys() any           { return i.e }
func (i entryInfo) Mode() fs.FileMode {
	m := fs.FileMode(i.e.Mode & 0o777)
	if i.e.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if i.e.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if i.e.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch i.e.Type {
	case layers.TypeDir:
		m |= fs.ModeDir
	case layers.TypeSymlink:
		m |= fs.ModeSymlink
	case layers.TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case layers.TypeBlock:
		m |= fs.ModeDevice
	case layers.TypeFIFO:
		m |= fs.ModeNamedPipe
	}
	return m
}

// entryFile is an open regular file of the image.
type entryFile struct {
	info entryInfo
	*io.SectionReader
}

func (f *entryFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *entryFile) Close() error               { return nil }
