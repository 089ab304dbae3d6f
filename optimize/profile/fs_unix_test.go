//go:build unix

package profile

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
)

func TestDirFSRefusesFIFO(t *testing.T) {
	root := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Skip(err)
	}
	// Opening a FIFO for reading would block until a writer appears.
	if _, err := DirFS(root).Open("/fifo"); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Open(fifo) = %v, want ErrNotRegular", err)
	}
	p := mustStatic(t, DirFS(root), Config{Entrypoint: []string{"/fifo"}})
	if len(p.Files) != 0 || !hasWarning(p, "a named pipe") {
		t.Errorf("files %q warnings %q", p.Files, p.Warnings)
	}
}
