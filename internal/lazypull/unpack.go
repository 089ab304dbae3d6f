package lazypull

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/coldstart-dev/coldstart/layers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Unpacked describes a layer Unpack extracted.
type Unpacked struct {
	// Entries are the layer's tar entries in order (whiteouts and opaque
	// markers as layers.TypeWhiteout and layers.TypeOpaque; eStargz's TOC
	// and landmarks left out), with Path, Type, Mode, Size and Linkname set.
	Entries []layers.Entry
	// DiffID is the digest of the uncompressed tar stream, Size its length.
	DiffID v1.Hash
	Size   int64
	// Skipped counts entries that could not be created (device nodes, or a
	// path that leads outside the root through a symbolic link).
	Skipped int
}

// Unpack decompresses the layer blob r (gzip, zstd or an uncompressed tar)
// and applies it to the directory root as containerd's applier does: it
// creates directories, files (content, mode, modification time), symbolic
// and hard links; it applies whiteouts and opaque directories to what lower
// layers left in root; it hashes the tar stream for the DiffID. Ownership,
// extended attributes and device nodes are not applied. Every operation
// stays inside root (os.Root), whatever the layer's links say.
func Unpack(ctx context.Context, root *os.Root, r io.Reader) (*Unpacked, error) {
	dec, _, err := layers.Decompress(r)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	h := sha256.New()
	cnt := &countReader{r: io.TeeReader(dec, h)}
	tr := tar.NewReader(cnt)
	u := &Unpacked{}
	up := &unpacker{root: root, dirs: map[string]*os.Root{}, written: map[string]bool{}, buf: make([]byte, 256<<10)}
	defer up.closeDirs()
	for n := 0; ; n++ {
		if n&255 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar entry %d: %w", n, err)
		}
		switch hdr.Name {
		case layers.TOCName, layers.PrefetchLandmark, layers.NoPrefetchLandmark:
			// Part of an eStargz blob, not of the filesystem.
			continue
		}
		p, err := layers.CleanPath(hdr.Name)
		if err != nil {
			return nil, err
		}
		if p == "." {
			continue
		}
		e := layers.Entry{Path: p, Name: hdr.Name, Mode: hdr.Mode & 0o7777, LinkIndex: -1, ModTime: hdr.ModTime}
		base := path.Base(p)
		if strings.HasPrefix(base, ".wh.") && !strings.HasPrefix(base, ".wh..wh.") || base == ".wh..wh..opq" {
			dir := path.Dir(p)
			if base == ".wh..wh..opq" {
				e.Type, e.Path = layers.TypeOpaque, dir
				if err := up.clearDir(dir); err != nil {
					u.Skipped++
				}
			} else {
				e.Type, e.Path = layers.TypeWhiteout, path.Join(dir, strings.TrimPrefix(base, ".wh."))
				if err := up.removeAll(e.Path); err != nil {
					u.Skipped++
				}
			}
			u.Entries = append(u.Entries, e)
			continue
		}
		if err := up.apply(hdr, &e, tr); err != nil {
			u.Skipped++
		}
		up.written[e.Path] = true
		u.Entries = append(u.Entries, e)
	}
	if _, err := io.CopyBuffer(io.Discard, cnt, up.buf); err != nil {
		return nil, fmt.Errorf("reading the end of the layer: %w", err)
	}
	u.DiffID = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	u.Size = cnt.n
	return u, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// maxDirHandles bounds the directory handles an unpacker keeps open: tar
// entries come grouped by directory, so a few suffice.
const maxDirHandles = 32

// unpacker applies entries to root. It keeps handles on the directories it
// writes to, so that creating a file costs one lookup instead of one per
// path element; a handle is dropped as soon as the directory, or one of its
// ancestors, is removed or replaced.
type unpacker struct {
	root    *os.Root
	dirs    map[string]*os.Root
	order   []string
	written map[string]bool
	buf     []byte
}

func (u *unpacker) closeDirs() {
	for _, d := range u.dirs {
		d.Close()
	}
	u.dirs, u.order = map[string]*os.Root{}, nil
}

// dir returns a handle on the directory dir ("." for the root), creating
// the directories on the way when create is set.
func (u *unpacker) dir(dir string, create bool) (*os.Root, error) {
	if dir == "." {
		return u.root, nil
	}
	if d, ok := u.dirs[dir]; ok {
		return d, nil
	}
	d, err := u.root.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := u.root.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		d, err = u.root.OpenRoot(dir)
	}
	if err != nil {
		return nil, err
	}
	if len(u.order) >= maxDirHandles {
		old := u.order[0]
		u.order = u.order[1:]
		if h, ok := u.dirs[old]; ok {
			h.Close()
			delete(u.dirs, old)
		}
	}
	u.dirs[dir] = d
	u.order = append(u.order, dir)
	return d, nil
}

// forget drops the handles on p and below it.
func (u *unpacker) forget(p string) {
	keep := u.order[:0]
	for _, k := range u.order {
		if k == p || strings.HasPrefix(k, p+"/") || p == "." {
			u.dirs[k].Close()
			delete(u.dirs, k)
			continue
		}
		keep = append(keep, k)
	}
	u.order = keep
}

func (u *unpacker) removeAll(p string) error {
	u.forget(p)
	return u.root.RemoveAll(p)
}

// replace removes what is at base in d (the directory p is in), so that a
// new entry can take its place.
func (u *unpacker) replace(d *os.Root, p, base string) error {
	fi, err := d.Lstat(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		u.forget(p)
		return d.RemoveAll(base)
	}
	return d.Remove(base)
}

// create runs fn in p's directory, and again after clearing the way when
// something already is at p.
func (u *unpacker) create(p string, fn func(d *os.Root, base string) error) error {
	d, err := u.dir(path.Dir(p), true)
	if err != nil {
		return err
	}
	base := path.Base(p)
	err = fn(d, base)
	if errors.Is(err, fs.ErrExist) {
		if err := u.replace(d, p, base); err != nil {
			return err
		}
		err = fn(d, base)
	}
	return err
}

// apply creates one entry.
func (u *unpacker) apply(hdr *tar.Header, e *layers.Entry, r io.Reader) error {
	p := e.Path
	mode := fs.FileMode(hdr.Mode & 0o777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		e.Type = layers.TypeDir
		d, err := u.dir(path.Dir(p), true)
		if err != nil {
			return err
		}
		base := path.Base(p)
		// The owner keeps write access, so that the layer's entries below
		// can be created whoever runs this.
		perm := mode | 0o700
		err = d.Mkdir(base, perm)
		if errors.Is(err, fs.ErrExist) {
			if fi, err := d.Lstat(base); err == nil && fi.IsDir() {
				return d.Chmod(base, perm)
			}
			if err := u.replace(d, p, base); err != nil {
				return err
			}
			err = d.Mkdir(base, perm)
		}
		if err != nil {
			return err
		}
		if perm&0o022 != 0 {
			return d.Chmod(base, perm) // the umask took these bits away
		}
		return nil
	case tar.TypeReg:
		e.Type, e.Size = layers.TypeReg, hdr.Size
		return u.create(p, func(d *os.Root, base string) error {
			f, err := d.OpenFile(base, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(f, r, u.buf)
			if err == nil {
				err = f.Chmod(mode)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			return d.Chtimes(base, hdr.ModTime, hdr.ModTime)
		})
	case tar.TypeSymlink:
		e.Type, e.Linkname = layers.TypeSymlink, hdr.Linkname
		return u.create(p, func(d *os.Root, base string) error { return d.Symlink(hdr.Linkname, base) })
	case tar.TypeLink:
		e.Type = layers.TypeHardlink
		target, err := layers.CleanPath(hdr.Linkname)
		if err != nil {
			return err
		}
		e.Linkname = target
		if fi, err := u.root.Lstat(target); err == nil {
			e.Size = fi.Size()
		}
		if _, err := u.dir(path.Dir(p), true); err != nil {
			return err
		}
		err = u.root.Link(target, p)
		if errors.Is(err, fs.ErrExist) {
			d, _ := u.dir(path.Dir(p), true)
			if err := u.replace(d, p, path.Base(p)); err != nil {
				return err
			}
			err = u.root.Link(target, p)
		}
		return err
	case tar.TypeChar:
		e.Type = layers.TypeChar
	case tar.TypeBlock:
		e.Type = layers.TypeBlock
	case tar.TypeFifo:
		e.Type = layers.TypeFIFO
	default:
		return fmt.Errorf("entry %q: unsupported type %q", hdr.Name, hdr.Typeflag)
	}
	return errors.New("device nodes are not created")
}

// clearDir removes what lower layers put in dir: every child not written
// by the current layer.
func (u *unpacker) clearDir(dir string) error {
	f, err := u.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		c := path.Join(dir, n)
		if !u.written[c] {
			if err := u.removeAll(c); err != nil {
				return err
			}
		}
	}
	return nil
}
