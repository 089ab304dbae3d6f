//go:build !linux

package rootfs

import (
	"errors"
	"io/fs"
	"os"

	"github.com/coldstart-dev/coldstart/layers"
)

func (x *extractor) mkfifo(p string, e *layers.Entry) (bool, error) {
	x.notef("%q: named pipes are not created on this system", e.Name)
	return false, nil
}

func (x *extractor) setTimes(p string, e *layers.Entry) error {
	if e.ModTime.IsZero() || e.Type == layers.TypeSymlink {
		return nil
	}
	return x.root.Chtimes(p, e.ModTime, e.ModTime)
}

func setXattr(*os.File, string, string) error {
	return &fs.PathError{Op: "setxattr", Err: errors.ErrUnsupported}
}
