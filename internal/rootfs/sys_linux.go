//go:build linux

package rootfs

import (
	"os"
	"path"

	"github.com/coldstart-dev/coldstart/layers"
	"golang.org/x/sys/unix"
)

// mkfifo creates the named pipe p, relative to its parent's handle so that
// no link is followed.
func (x *extractor) mkfifo(p string, e *layers.Entry) (bool, error) {
	d, err := x.parent(path.Dir(p))
	if err != nil {
		return false, err
	}
	if err := unix.Mknodat(int(d.Fd()), path.Base(p), unix.S_IFIFO|0o600, 0); err != nil {
		return false, &os.PathError{Op: "mkfifo", Path: p, Err: err}
	}
	return true, nil
}

// setTimes sets p's access and modification times to the entry's mtime
// without following a final symbolic link.
func (x *extractor) setTimes(p string, e *layers.Entry) error {
	if e.ModTime.IsZero() {
		return nil
	}
	d, err := x.parent(path.Dir(p))
	if err != nil {
		return err
	}
	ts := unix.NsecToTimespec(e.ModTime.UnixNano())
	if err := unix.UtimesNanoAt(int(d.Fd()), path.Base(p), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: p, Err: err}
	}
	return nil
}

func setXattr(f *os.File, name, value string) error {
	return unix.Fsetxattr(int(f.Fd()), name, []byte(value), 0)
}
