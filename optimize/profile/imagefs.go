package profile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/layers"
)

// LayerReader gives random access to the uncompressed tar of layer i of an
// overlay; file contents are read at their Entry.DataOffset.
type LayerReader func(layer int) (io.ReaderAt, error)

// ImageFS is the merged filesystem of an image as an FS: ov answers what
// is visible, open reads file contents. Directories that only exist as the
// parents of entries are listed as implicit 0755 directories. A hard link
// is its target's inode: same content, mode, owner and mtime.
func ImageFS(ov *layers.Overlay, open LayerReader) FS {
	f := &imageFS{ov: ov, open: open, children: map[string][]string{}}
	seen := map[string]bool{}
	for _, p := range ov.Paths() {
		for c := p; c != "." && c != ""; {
			if seen[c] {
				break
			}
			seen[c] = true
			dir := path.Dir(c)
			f.children[dir] = append(f.children[dir], path.Base(c))
			c = dir
		}
	}
	for _, names := range f.children {
		sort.Strings(names)
	}
	return f
}

type imageFS struct {
	ov       *layers.Overlay
	open     LayerReader
	children map[string][]string
}

func relPath(name string) (string, error) {
	if !strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%q is not an absolute path", name)
	}
	p := path.Clean(name)
	if p == "/" {
		return ".", nil
	}
	return p[1:], nil
}

// lookup returns the cleaned path and the entry at name (nil for an
// implicit directory), with hard links resolved to their target.
func (f *imageFS) lookup(op, name string) (string, *layers.Entry, layers.Ref, error) {
	p, err := relPath(name)
	if err != nil {
		return "", nil, layers.Ref{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	r, ok := f.ov.Lookup(p)
	if !ok {
		if _, dir := f.children[p]; dir || p == "." {
			return p, nil, layers.Ref{Layer: -1}, nil
		}
		return "", nil, r, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	e := f.ov.Entry(r)
	if e.Type == layers.TypeHardlink {
		if e.LinkIndex >= 0 {
			r.Entry = e.LinkIndex
			return p, f.ov.Entry(r), r, nil
		}
		if tr, ok := f.ov.Lookup(e.Linkname); ok && f.ov.Entry(tr).Type == layers.TypeReg {
			return p, f.ov.Entry(tr), tr, nil
		}
	}
	return p, e, r, nil
}

func (f *imageFS) Lstat(name string) (fs.FileInfo, error) {
	p, e, _, err := f.lookup("lstat", name)
	if err != nil {
		return nil, err
	}
	return entryInfo{name: path.Base(p), e: e}, nil
}

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

func (f *imageFS) Open(name string) (fs.File, error) {
	p, e, r, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if e == nil || e.Type != layers.TypeReg {
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	ra, err := f.open(r.Layer)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &imageFile{SectionReader: io.NewSectionReader(ra, e.DataOffset, e.Size), info: entryInfo{name: path.Base(p), e: e}}, nil
}

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
		cp := path.Join(p, c)
		var ce *layers.Entry
		if r, ok := f.ov.Lookup(cp); ok {
			ce = f.ov.Entry(r)
		}
		out = append(out, fs.FileInfoToDirEntry(entryInfo{name: c, e: ce}))
	}
	return out, nil
}

// imageFile is an open regular file of the image.
type imageFile struct {
	*io.SectionReader
	info fs.FileInfo
}

func (f *imageFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *imageFile) Close() error               { return nil }

// entryInfo describes an entry; e nil is an implicit directory.
type entryInfo struct {
	name string
	e    *layers.Entry
}

func (i entryInfo) Name() string { return i.name }
func (i entryInfo) Size() int64 {
	if i.e == nil || !i.e.HasContent() {
		return 0
	}
	return i.e.Size
}
func (i entryInfo) ModTime() time.Time {
	if i.e == nil {
		return time.Time{}
	}
	return i.e.ModTime
}
func (i entryInfo) IsDir() bool { return i.Mode().IsDir() }
func (i entryInfo) Sys() any    { return nil }
func (i entryInfo) Mode() fs.FileMode {
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
