package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// findProfile returns the start-up files: the profiler's over the image's
// merged filesystem (profile.Static by default).
func (o *options) findProfile(ctx context.Context, ov *layers.Overlay, ls []*layerInfo, cfg *v1.ConfigFile, tmp string) (*profile.Profile, error) {
	if o.profile != nil {
		return o.profile, nil
	}
	fsys := newImageFS(ov, ls, tmp)
	defer fsys.close()
	pc := profile.Config{
		Entrypoint: cfg.Config.Entrypoint, Cmd: cfg.Config.Cmd, Env: cfg.Config.Env,
		WorkingDir: cfg.Config.WorkingDir, User: cfg.Config.User,
	}
	fn := o.profiler
	if fn == nil {
		fn = func(ctx context.Context, fsys profile.FS, cfg profile.Config) (*profile.Profile, error) {
			return profile.Static(ctx, fsys, cfg, profile.WithLogger(o.logger))
		}
	}
	p, err := fn(ctx, fsys, pc)
	if err != nil {
		return nil, fmt.Errorf("profiling start-up files: %w", err)
	}
	if err := fsys.err(); err != nil {
		return nil, fmt.Errorf("profiling start-up files: %w", err)
	}
	return p, nil
}

// imageFS is an image's merged filesystem for the profiler: metadata from
// the overlay, file contents from each layer's tar, spooled uncompressed to
// a temporary file the first time a file of that layer is opened.
type imageFS struct {
	ov       *layers.Overlay
	ls       []*layerInfo
	tmp      string
	children map[string][]string

	mu      sync.Mutex
	spooled map[int]*os.File
	failed  error
}

func newImageFS(ov *layers.Overlay, ls []*layerInfo, tmp string) *imageFS {
	f := &imageFS{ov: ov, ls: ls, tmp: tmp, children: map[string][]string{}, spooled: map[int]*os.File{}}
	seen := map[string]bool{}
	for _, p := range ov.Paths() {
		// Every ancestor is a directory, whether or not it has an entry.
		for c := p; c != "." && c != ""; {
			dir := path.Dir(c)
			if seen[c] {
				break
			}
			seen[c] = true
			f.children[dir] = append(f.children[dir], path.Base(c))
			c = dir
		}
	}
	for _, names := range f.children {
		sort.Strings(names)
	}
	return f
}

func (f *imageFS) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.spooled {
		s.Close()
		os.Remove(s.Name())
	}
	f.spooled = nil
}

// err returns the first failure to spool a layer: the profiler turns
// unreadable files into warnings, but a broken layer must not pass
// silently.
func (f *imageFS) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func rel(name string) (string, error) {
	if !strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%q is not an absolute path", name)
	}
	p := path.Clean(name)
	if p == "/" {
		return ".", nil
	}
	return p[1:], nil
}

func (f *imageFS) lookup(op, name string) (string, *layers.Entry, layers.Ref, error) {
	p, err := rel(name)
	if err != nil {
		return "", nil, layers.Ref{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if r, ok := f.ov.Lookup(p); ok {
		return p, f.ov.Entry(r), r, nil
	}
	if _, ok := f.children[p]; ok || p == "." {
		return p, nil, layers.Ref{}, nil // an implicit directory
	}
	return "", nil, layers.Ref{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
}

// Lstat describes name without following a final symbolic link.
func (f *imageFS) Lstat(name string) (fs.FileInfo, error) {
	p, e, _, err := f.lookup("lstat", name)
	if err != nil {
		return nil, err
	}
	return entryInfo(p, e), nil
}

// Readlink returns a symbolic link's target.
func (f *imageFS) Readlink(name string) (string, error) {
	_, e, _, err := f.lookup("readlink", name)
	if err != nil {
		return "", err
	}
	if e == nil || e.Type != layers.TypeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return e.Linkname, nil
}

// ReadDir lists a directory, sorted by name.
func (f *imageFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, e, _, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if e != nil && e.Type != layers.TypeDir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	var out []fs.DirEntry
	for _, c := range f.children[p] {
		cp := c
		if p != "." {
			cp = p + "/" + c
		}
		var ce *layers.Entry
		if r, ok := f.ov.Lookup(cp); ok {
			ce = f.ov.Entry(r)
		}
		out = append(out, fs.FileInfoToDirEntry(entryInfo(cp, ce)))
	}
	return out, nil
}

// Open opens a regular file.
func (f *imageFS) Open(name string) (fs.File, error) {
	_, e, r, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if e == nil || !e.HasContent() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: profile.ErrNotRegular}
	}
	layer, content := r.Layer, e
	if e.Type == layers.TypeHardlink {
		content = &f.ls[layer].idx.Entries[e.LinkIndex]
	}
	tarFile, err := f.spool(layer)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &imageFile{SectionReader: io.NewSectionReader(tarFile, content.DataOffset, content.Size), info: entryInfo(e.Path, e)}, nil
}

// spool returns the uncompressed tar of layer i, writing it the first time.
func (f *imageFS) spool(i int) (*os.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.spooled[i]; ok {
		return s, nil
	}
	blob := f.ls[i].blob
	if blob == "" {
		return nil, fmt.Errorf("layer %d has no content", i)
	}
	s, err := func() (*os.File, error) {
		in, err := os.Open(blob)
		if err != nil {
			return nil, err
		}
		defer in.Close()
		dec, _, err := layers.Decompress(in)
		if err != nil {
			return nil, err
		}
		defer dec.Close()
		out, err := os.Create(filepath.Join(f.tmp, fmt.Sprintf("layer-%d.tar", i)))
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(out, dec); err != nil {
			out.Close()
			os.Remove(out.Name())
			return nil, err
		}
		return out, nil
	}()
	if err != nil {
		err = fmt.Errorf("reading layer %d %s: %w", i, f.ls[i].desc.Digest, err)
		if f.failed == nil {
			f.failed = err
		}
		return nil, err
	}
	f.spooled[i] = s
	return s, nil
}

// imageFile is an open regular file of the image.
type imageFile struct {
	*io.SectionReader
	info fs.FileInfo
}

func (f *imageFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *imageFile) Close() error               { return nil }

// entryInfo is the FileInfo of an entry; e nil is an implicit directory.
type entryFileInfo struct {
	name string
	e    *layers.Entry
}

func entryInfo(p string, e *layers.Entry) fs.FileInfo { return entryFileInfo{name: path.Base(p), e: e} }

func (i entryFileInfo) Name() string { return i.name }
func (i entryFileInfo) Size() int64 {
	if i.e == nil || !i.e.HasContent() {
		return 0
	}
	return i.e.Size
}
func (i entryFileInfo) Mode() fs.FileMode {
	if i.e == nil {
		return fs.ModeDir | 0o755
	}
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
func (i entryFileInfo) ModTime() time.Time {
	if i.e == nil {
		return time.Time{}
	}
	return i.e.ModTime
}
func (i entryFileInfo) IsDir() bool { return i.Mode().IsDir() }
func (i entryFileInfo) Sys() any    { return nil }
