package profile

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/coldstart-dev/coldstart/optimize/profile/internal/imagepath"
)

// FS is an image's merged root filesystem, read-only.
//
// Names are absolute, slash-separated paths inside the image ("/usr/bin/ls").
// Intermediate symbolic links in a name are resolved inside the image root;
// the last element is not followed by Lstat and Readlink. The profiler itself
// only ever asks for names whose directories are already resolved, so an
// implementation backed by an index of layer entries may treat every name
// literally.
type FS interface {
	// Lstat describes name without following a final symbolic link.
	Lstat(name string) (fs.FileInfo, error)
	// Readlink returns the target of the symbolic link name, as stored.
	Readlink(name string) (string, error)
	// Open opens the regular file name for reading. Callers bound their reads.
	// A file that implements io.ReaderAt (or io.Seeker) lets the ELF reader
	// jump to the program and dynamic headers instead of reading a prefix.
	Open(name string) (fs.File, error)
	// ReadDir lists the directory name, sorted by name.
	ReadDir(name string) ([]fs.DirEntry, error)
}

// DirFS returns an FS that treats the host directory root as an image root.
//
// Every symbolic link met on the way, absolute or relative, is resolved inside
// root the way a container sees it: an absolute target starts again at root
// and ".." never climbs above root. No host file outside root is ever opened
// or stat'ed through the returned FS. Open refuses anything but regular files
// (so a FIFO in the tree cannot block the profiler). The tree must not change
// while it is read: a link swapped in between resolution and open is not
// detected.
func DirFS(root string) FS {
	return dirFS{root: filepath.Clean(root)}
}

type dirFS struct{ root string }

// host returns the host path of the image path name with every symbolic link
// resolved inside root; with followLast the last element is resolved too.
func (d dirFS) host(op, name string, followLast bool) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	rest := imagepath.Split(name)
	cur := "/"
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		if len(rest) == 0 && !followLast {
			cur = next
			break
		}
		hp := filepath.Join(d.root, filepath.FromSlash(next))
		fi, err := os.Lstat(hp)
		if err != nil {
			return "", &fs.PathError{Op: op, Path: name, Err: imagepath.Underlying(err)}
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			links++
			if links > imagepath.MaxSymlinks {
				return "", &fs.PathError{Op: op, Path: name, Err: ErrSymlinkLoop}
			}
			target, err := os.Readlink(hp)
			if err != nil {
				return "", &fs.PathError{Op: op, Path: name, Err: imagepath.Underlying(err)}
			}
			if target == "" {
				return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
			}
			if path.IsAbs(target) {
				cur = "/"
			}
			rest = append(imagepath.Split(target), rest...)
			continue
		}
		if len(rest) > 0 && !fi.IsDir() {
			return "", &fs.PathError{Op: op, Path: name, Err: imagepath.ErrNotDir}
		}
		cur = next
	}
	return filepath.Join(d.root, filepath.FromSlash(cur)), nil
}

func (d dirFS) Lstat(name string) (fs.FileInfo, error) {
	hp, err := d.host("lstat", name, false)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(hp)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: imagepath.Underlying(err)}
	}
	return fi, nil
}

func (d dirFS) Readlink(name string) (string, error) {
	hp, err := d.host("readlink", name, false)
	if err != nil {
		return "", err
	}
	t, err := os.Readlink(hp)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: imagepath.Underlying(err)}
	}
	return filepath.ToSlash(t), nil
}

func (d dirFS) Open(name string) (fs.File, error) {
	hp, err := d.host("open", name, true)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(hp)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: imagepath.Underlying(err)}
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	f, err := os.Open(hp)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: imagepath.Underlying(err)}
	}
	return f, nil
}

func (d dirFS) ReadDir(name string) ([]fs.DirEntry, error) {
	hp, err := d.host("readdir", name, true)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(hp)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: imagepath.Underlying(err)}
	}
	return ents, nil
}

// cleanAbs turns p into a clean absolute image path, resolving it against
// dir when it is relative.
func cleanAbs(dir, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	if dir == "" {
		dir = "/"
	}
	return path.Join(dir, p)
}
