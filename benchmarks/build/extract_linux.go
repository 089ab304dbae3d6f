package build

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// extractLayer unpacks one layer tar into dir, an empty directory, in the
// form overlayfs reads as a lower layer (as containerd's overlay snapshotter
// does): .wh.NAME entries become 0/0 character devices, .wh..wh..opq marks
// its directory opaque (trusted.overlay.opaque=y). Owners, modes, xattrs
// and the mtimes of files and directories are applied.
//
// Entries may not leave dir: names with "..", and entries below a symlink,
// are errors; hard links must point at an earlier entry of the same layer.
func extractLayer(ctx context.Context, r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		path string
		t    time.Time
	}
	var dirs []dirTime
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		rel, err := cleanEntryName(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "." {
			continue // the layer's root: the overlay root keeps its own attributes
		}
		parent, base := path.Dir(rel), path.Base(rel)
		if err := ensureParents(dir, parent); err != nil {
			return fmt.Errorf("entry %s: %w", hdr.Name, err)
		}
		full := filepath.Join(dir, filepath.FromSlash(rel))
		pdir := filepath.Join(dir, filepath.FromSlash(parent))
		switch {
		case base == whiteoutOpaque:
			if err := syscall.Setxattr(pdir, overlayOpaqueXattr, []byte("y"), 0); err != nil {
				return fmt.Errorf("entry %s: marking %s opaque: %w", hdr.Name, pdir, err)
			}
			continue
		case strings.HasPrefix(base, whiteoutPrefix):
			target := filepath.Join(pdir, strings.TrimPrefix(base, whiteoutPrefix))
			if err := removeNonDir(target, true); err != nil {
				return err
			}
			if err := syscall.Mknod(target, syscall.S_IFCHR, 0); err != nil {
				return &os.PathError{Op: "mknod", Path: target, Err: err}
			}
			if err := os.Chtimes(target, hdr.ModTime, hdr.ModTime); err != nil {
				return err
			}
			continue
		}
		if hdr.Typeflag != tar.TypeDir {
			if err := removeNonDir(full, false); err != nil {
				return err
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			fi, err := os.Lstat(full)
			switch {
			case err == nil && fi.IsDir():
			case err == nil:
				if err := os.Remove(full); err != nil {
					return err
				}
				fallthrough
			default:
				if err := os.Mkdir(full, 0o700); err != nil {
					return err
				}
			}
			dirs = append(dirs, dirTime{full, hdr.ModTime})
		case tar.TypeReg: // the reader reports old-style regular files (TypeRegA) as TypeReg
			f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(f, tr, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("entry %s: %w", hdr.Name, err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, full); err != nil {
				return err
			}
		case tar.TypeLink:
			target, err := cleanEntryName(hdr.Linkname)
			if err != nil {
				return fmt.Errorf("entry %s: link target: %w", hdr.Name, err)
			}
			if err := ensureParents(dir, path.Dir(target)); err != nil {
				return fmt.Errorf("entry %s: link target: %w", hdr.Name, err)
			}
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(target)), full); err != nil {
				return fmt.Errorf("entry %s: hard link to %s (it must be an earlier entry of the same layer): %w", hdr.Name, hdr.Linkname, err)
			}
			continue // a link shares its target's attributes
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			mode := uint32(syscall.S_IFIFO)
			switch hdr.Typeflag {
			case tar.TypeChar:
				mode = syscall.S_IFCHR
			case tar.TypeBlock:
				mode = syscall.S_IFBLK
			}
			dev := mkdev(hdr.Devmajor, hdr.Devminor)
			if err := syscall.Mknod(full, mode|0o600, int(dev)); err != nil {
				return &os.PathError{Op: "mknod", Path: full, Err: err}
			}
		default:
			return fmt.Errorf("entry %s: unsupported tar type %q", hdr.Name, hdr.Typeflag)
		}
		if err := os.Lchown(full, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeSymlink {
			ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, full, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return &os.PathError{Op: "lutimes", Path: full, Err: err}
			}
			continue
		}
		// After chown, which clears set-id bits.
		if err := syscall.Chmod(full, uint32(hdr.Mode&0o7777)); err != nil {
			return &os.PathError{Op: "chmod", Path: full, Err: err}
		}
		for _, k := range slices.Sorted(maps.Keys(hdr.PAXRecords)) {
			name, ok := strings.CutPrefix(k, paxXattrPrefix)
			if !ok {
				continue
			}
			if err := syscall.Setxattr(full, name, []byte(hdr.PAXRecords[k]), 0); err != nil {
				return fmt.Errorf("entry %s: setting xattr %s: %w", hdr.Name, name, err)
			}
		}
		if hdr.Typeflag != tar.TypeDir {
			if err := os.Chtimes(full, hdr.ModTime, hdr.ModTime); err != nil {
				return err
			}
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- { // children first: creating entries changed their parents
		if err := os.Chtimes(dirs[i].path, dirs[i].t, dirs[i].t); err != nil {
			return err
		}
	}
	return nil
}

// cleanEntryName turns a tar entry name into a clean slash-separated path
// relative to the layer root, refusing names that climb out of it.
func cleanEntryName(name string) (string, error) {
	n := strings.TrimLeft(name, "/")
	if n == "" {
		return ".", nil
	}
	for _, c := range strings.Split(n, "/") {
		if c == ".." {
			return "", fmt.Errorf("entry %q leaves the layer", name)
		}
	}
	return path.Clean(n), nil
}

// ensureParents makes rel (slash-separated, inside root) a directory,
// creating missing components 0755 and refusing symlinks and files on the
// way, so nothing is ever written outside root.
func ensureParents(root, rel string) error {
	if rel == "." || rel == "" {
		return nil
	}
	cur := root
	for _, c := range strings.Split(rel, "/") {
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink; layer entries below symlinks are refused", strings.TrimPrefix(cur, root+"/"))
		case !fi.IsDir():
			return fmt.Errorf("%s is not a directory", strings.TrimPrefix(cur, root+"/"))
		}
	}
	return nil
}

// removeNonDir removes what is at p before an entry replaces it. A
// directory is only replaced by a whiteout (then removed with its
// contents); otherwise it is an error.
func removeNonDir(p string, dirOK bool) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if !dirOK {
			return fmt.Errorf("%s: a directory is replaced by a non-directory within one layer", p)
		}
		return os.RemoveAll(p)
	}
	return os.Remove(p)
}

func mkdev(major, minor int64) uint64 {
	ma, mi := uint64(major), uint64(minor)
	return (ma&0xfff)<<8 | (ma&^0xfff)<<32 | (mi & 0xff) | (mi&^0xff)<<12
}
