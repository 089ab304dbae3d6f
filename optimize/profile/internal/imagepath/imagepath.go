package imagepath

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// MaxSymlinks is the number of symbolic links one resolution may follow
// before it fails, like Linux's ELOOP limit.
const MaxSymlinks = 40

// Errors of Resolve, inside an *fs.PathError.
var (
	// ErrSymlinkLoop reports a path whose resolution followed more than
	// MaxSymlinks symbolic links (ELOOP).
	ErrSymlinkLoop = errors.New("too many levels of symbolic links")
	// ErrNotDir reports a path element used as a directory that is not one.
	ErrNotDir = errors.New("not a directory")
)

// FS is what Resolve reads: Lstat and Readlink of absolute, slash-separated
// image paths whose parent directories are already resolved.
type FS interface {
	Lstat(name string) (fs.FileInfo, error)
	Readlink(name string) (string, error)
}

// Resolved is a path resolved inside the image.
type Resolved struct {
	Real  string      // the path with every link resolved
	Links []string    // the links followed, in order
	Info  fs.FileInfo // Lstat of Real
}

// Resolve follows name (absolute) through symbolic links inside the image
// root, element by element. Errors are *fs.PathError with Op "resolve",
// Path name and the cause stripped of any path (see Underlying).
func Resolve(fsys FS, name string) (Resolved, error) {
	var r Resolved
	rest := Split(name)
	cur := "/"
	n := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case ".":
			continue
		case "..":
			cur = path.Dir(cur)
			r.Info = nil
			continue
		}
		next := path.Join(cur, c)
		fi, err := fsys.Lstat(next)
		if err != nil {
			return r, &fs.PathError{Op: "resolve", Path: name, Err: Underlying(err)}
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			n++
			if n > MaxSymlinks {
				return r, &fs.PathError{Op: "resolve", Path: name, Err: ErrSymlinkLoop}
			}
			target, err := fsys.Readlink(next)
			if err != nil {
				return r, &fs.PathError{Op: "resolve", Path: name, Err: Underlying(err)}
			}
			if target == "" {
				return r, &fs.PathError{Op: "resolve", Path: name, Err: fs.ErrNotExist}
			}
			r.Links = append(r.Links, next)
			if path.IsAbs(target) {
				cur = "/"
			}
			rest = append(Split(target), rest...)
			continue
		}
		if len(rest) > 0 && !fi.IsDir() {
			return r, &fs.PathError{Op: "resolve", Path: name, Err: ErrNotDir}
		}
		cur = next
		r.Info = fi
	}
	if r.Info == nil {
		fi, err := fsys.Lstat(cur)
		if err != nil {
			return r, &fs.PathError{Op: "resolve", Path: name, Err: Underlying(err)}
		}
		r.Info = fi
	}
	r.Real = cur
	return r, nil
}

// Underlying strips the path from an *fs.PathError, so that an error names
// image paths only, never a host path behind them.
func Underlying(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Split splits a slash-separated path into its elements, dropping empty
// ones.
func Split(p string) []string {
	parts := strings.Split(p, "/")
	out := parts[:0]
	for _, s := range parts {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Describe is a short human name for a file type ("a directory", "a
// symbolic link", ...), for messages.
func Describe(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsRegular():
		return "a regular file"
	}
	return fmt.Sprintf("a special file (%v)", m.Type())
}
