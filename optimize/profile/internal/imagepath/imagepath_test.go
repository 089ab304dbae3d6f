package imagepath

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// mapFS serves fstest.MapFS entries by absolute name, literally: a symbolic
// link's target is its Data.
type mapFS fstest.MapFS

func (m mapFS) Lstat(name string) (fs.FileInfo, error) {
	if name == "/" {
		return fstest.MapFS(m).Lstat(".")
	}
	if _, ok := m[name[1:]]; !ok {
		return nil, &fs.PathError{Op: "lstat", Path: "/host/root" + name, Err: fs.ErrNotExist}
	}
	return fstest.MapFS(m).Lstat(name[1:])
}

func (m mapFS) Readlink(name string) (string, error) {
	f, ok := m[name[1:]]
	if !ok || f.Mode&fs.ModeSymlink == 0 {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return string(f.Data), nil
}

func TestResolve(t *testing.T) {
	link := func(target string) *fstest.MapFile {
		return &fstest.MapFile{Mode: fs.ModeSymlink | 0o777, Data: []byte(target)}
	}
	dir := &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	file := &fstest.MapFile{Mode: 0o644}
	m := mapFS{
		"usr": dir, "usr/bin": dir, "usr/bin/dash": file, "usr/lib": dir,
		"bin":         link("usr/bin"),
		"usr/bin/sh":  link("dash"),
		"etc":         dir,
		"etc/abs":     link("/bin/sh"),
		"etc/up":      link("../../../../usr/bin/dash"),
		"etc/loop":    link("loop"),
		"etc/empty":   link(""),
		"etc/dangles": link("/nowhere"),
	}
	tests := []struct {
		name  string
		real  string
		links []string
		err   error
	}{
		{"/bin/sh", "/usr/bin/dash", []string{"/bin", "/usr/bin/sh"}, nil},
		{"/etc/abs", "/usr/bin/dash", []string{"/etc/abs", "/bin", "/usr/bin/sh"}, nil},
		{"/etc/up", "/usr/bin/dash", []string{"/etc/up"}, nil},
		{"/../../usr/./bin/../lib", "/usr/lib", nil, nil},
		{"/bin", "/usr/bin", []string{"/bin"}, nil},
		{"/", "/", nil, nil},
		{"/etc/loop", "", nil, ErrSymlinkLoop},
		{"/etc/empty", "", nil, fs.ErrNotExist},
		{"/etc/dangles", "", nil, fs.ErrNotExist},
		{"/usr/bin/dash/x", "", nil, ErrNotDir},
	}
	for _, tc := range tests {
		r, err := Resolve(m, tc.name)
		if tc.err != nil {
			var pe *fs.PathError
			if !errors.Is(err, tc.err) || !errors.As(err, &pe) || pe.Path != tc.name || pe.Op != "resolve" {
				t.Errorf("Resolve(%q) error %v, want %v in a resolve PathError", tc.name, err, tc.err)
			}
			if err != nil && fmt.Sprint(err) != "resolve "+tc.name+": "+tc.err.Error() {
				t.Errorf("Resolve(%q) error %q names more than the image path", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.name, err)
			continue
		}
		if r.Real != tc.real || !cmp.Equal(r.Links, tc.links) || r.Info == nil {
			t.Errorf("Resolve(%q) = %q via %q (info %v), want %q via %q", tc.name, r.Real, r.Links, r.Info, tc.real, tc.links)
		}
	}
}

func TestSplit(t *testing.T) {
	if d := cmp.Diff([]string{"a", "b", ".."}, Split("//a/b/../")); d != "" {
		t.Error(d)
	}
	if got := Split("/"); len(got) != 0 {
		t.Errorf("Split(/) = %q", got)
	}
}
