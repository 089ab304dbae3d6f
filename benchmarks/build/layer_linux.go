package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// OCI whiteout names (image-spec layer.md).
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Overlayfs marks an opaque directory with this xattr set to "y"; its own
// bookkeeping xattrs all start with overlayXattrPrefix.
const (
	overlayOpaqueXattr = "trusted.overlay.opaque"
	overlayXattrPrefix = "trusted.overlay."
	paxXattrPrefix     = "SCHILY.xattr."
)

// layerInfo describes a layer blob written by writeLayer.
type layerInfo struct {
	Digest  v1.Hash `json:"digest"`  // of the gzip stream
	DiffID  v1.Hash `json:"diffID"`  // of the tar stream
	Size    int64   `json:"size"`    // gzip bytes
	TarSize int64   `json:"tarSize"` // tar bytes
}

// writeLayer writes the tree below dir as a gzip-compressed (klauspost
// gzip, default level) OCI layer tar to file, created atomically.
//
// The tree is an overlayfs upper directory or a whole root filesystem:
// entries are written in lexical order, with their owners, modes, mtimes
// (whole seconds) and xattrs; files linked to each other are written once
// and then as hard links; overlayfs whiteouts (0/0 character devices) become
// .wh.NAME entries and opaque directories get a .wh..wh..opq entry;
// overlayfs's own xattrs and sockets are left out. skip, when not nil, leaves
// out the entries it returns true for (and, for directories, their
// contents); rel is slash-separated and relative to dir.
func writeLayer(ctx context.Context, dir, file string, skip func(rel string) bool) (info layerInfo, err error) {
	f, err := os.CreateTemp(filepath.Dir(file), ".layer-*")
	if err != nil {
		return info, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	gzSum, tarSum := sha256.New(), sha256.New()
	gzCount, tarCount := &countWriter{}, &countWriter{}
	gz, err := gzip.NewWriterLevel(io.MultiWriter(f, gzSum, gzCount), gzip.DefaultCompression)
	if err != nil {
		return info, err
	}
	tw := tar.NewWriter(io.MultiWriter(gz, tarSum, tarCount))
	w := &treeWriter{ctx: ctx, root: dir, tw: tw, skip: skip, links: map[inode]string{}}
	if err := w.dir(""); err != nil {
		return info, err
	}
	if err := tw.Close(); err != nil {
		return info, err
	}
	if err := gz.Close(); err != nil {
		return info, err
	}
	if err := f.Close(); err != nil {
		return info, err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return info, err
	}
	if err := os.Rename(f.Name(), file); err != nil {
		return info, err
	}
	return layerInfo{
		Digest:  sumHash(gzSum),
		DiffID:  sumHash(tarSum),
		Size:    gzCount.n,
		TarSize: tarCount.n,
	}, nil
}

func sumHash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

type inode struct{ dev, ino uint64 }

type treeWriter struct {
	ctx   context.Context
	root  string
	tw    *tar.Writer
	skip  func(string) bool
	links map[inode]string
	buf   []byte
}

func (w *treeWriter) dir(rel string) error {
	entries, err := os.ReadDir(filepath.Join(w.root, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	for _, e := range entries { // ReadDir sorts by name
		if err := w.entry(path.Join(rel, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (w *treeWriter) entry(rel string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.skip != nil && w.skip(rel) {
		return nil
	}
	full := filepath.Join(w.root, filepath.FromSlash(rel))
	var st syscall.Stat_t
	if err := syscall.Lstat(full, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: full, Err: err}
	}
	base := path.Base(rel)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return fmt.Errorf("%s: a file name starting with %q cannot be stored in an OCI layer", full, whiteoutPrefix)
	}
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0).UTC(),
	}
	var opaque bool
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFCHR:
		if st.Rdev == 0 { // an overlayfs whiteout (possibly one of many links to a shared inode)
			return w.tw.WriteHeader(&tar.Header{
				Name:     path.Join(path.Dir(rel), whiteoutPrefix+base),
				Typeflag: tar.TypeReg,
				ModTime:  hdr.ModTime,
			})
		}
		hdr.Typeflag = tar.TypeChar
		hdr.Devmajor, hdr.Devminor = devMajor(st.Rdev), devMinor(st.Rdev)
	case syscall.S_IFBLK:
		hdr.Typeflag = tar.TypeBlock
		hdr.Devmajor, hdr.Devminor = devMajor(st.Rdev), devMinor(st.Rdev)
	case syscall.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case syscall.S_IFSOCK:
		return nil // like docker: sockets are not image content
	case syscall.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case syscall.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name = rel + "/"
	case syscall.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if st.Nlink > 1 {
			key := inode{dev: st.Dev, ino: st.Ino}
			if first, ok := w.links[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				w.links[key] = rel
			}
		}
	default:
		return fmt.Errorf("%s: unsupported file type %#o", full, st.Mode&syscall.S_IFMT)
	}
	if hdr.Typeflag != tar.TypeSymlink && hdr.Typeflag != tar.TypeLink {
		xattrs, err := w.xattrs(full)
		if err != nil {
			return err
		}
		for k, v := range xattrs {
			if k == overlayOpaqueXattr {
				opaque = hdr.Typeflag == tar.TypeDir && v == "y"
				continue
			}
			if strings.HasPrefix(k, overlayXattrPrefix) || strings.HasPrefix(k, "user.overlay.") {
				continue
			}
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords[paxXattrPrefix+k] = v
		}
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		return w.copyFile(full, hdr.Size)
	case tar.TypeDir:
		if opaque {
			if err := w.tw.WriteHeader(&tar.Header{
				Name:     rel + "/" + whiteoutOpaque,
				Typeflag: tar.TypeReg,
				ModTime:  hdr.ModTime,
			}); err != nil {
				return err
			}
		}
		return w.dir(rel)
	}
	return nil
}

func (w *treeWriter) copyFile(full string, size int64) error {
	f, err := os.OpenFile(full, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if w.buf == nil {
		w.buf = make([]byte, 256<<10)
	}
	n, err := io.CopyBuffer(w.tw, io.LimitReader(f, size), w.buf)
	if err != nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	if n != size {
		return fmt.Errorf("%s: file shrank from %d to %d bytes while it was read", full, size, n)
	}
	return nil
}

// xattrs returns the extended attributes of a file or directory (not
// following symlinks is the caller's job: it never asks for symlinks).
func (w *treeWriter) xattrs(full string) (map[string]string, error) {
	names, err := listXattrs(full)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		v, err := getXattr(full, n)
		if errors.Is(err, syscall.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading xattr %s: %w", full, n, err)
		}
		out[n] = string(v)
	}
	return out, nil
}

func listXattrs(p string) ([]string, error) {
	for {
		n, err := syscall.Listxattr(p, nil)
		if errors.Is(err, syscall.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, &os.PathError{Op: "listxattr", Path: p, Err: err}
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		n, err = syscall.Listxattr(p, buf)
		if errors.Is(err, syscall.ERANGE) {
			continue // grew in between
		}
		if err != nil {
			return nil, &os.PathError{Op: "listxattr", Path: p, Err: err}
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func getXattr(p, name string) ([]byte, error) {
	for {
		n, err := syscall.Getxattr(p, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, n)
		n, err = syscall.Getxattr(p, name, buf)
		if errors.Is(err, syscall.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func devMajor(dev uint64) int64 { return int64(((dev >> 8) & 0xfff) | ((dev >> 32) &^ 0xfff)) }
func devMinor(dev uint64) int64 { return int64((dev & 0xff) | ((dev >> 12) &^ 0xff)) }

// fileLayer is a layer blob on disk whose digests are known.
type fileLayer struct {
	path string
	info layerInfo
}

var _ v1.Layer = (*fileLayer)(nil)

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.info.Digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.info.DiffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.info.Size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }

func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading layer %s: %w", l.info.Digest, err)
	}
	return &readCloser{Reader: zr, close: func() error { return errors.Join(zr.Close(), f.Close()) }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }
