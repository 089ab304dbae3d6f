//go:build linux

package run

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/coldstart-dev/coldstart/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// A workspace is a directory "coldstart-run-PID-RANDOM" holding the lower,
// upper, work and merged directories of one run and an "owner" file with
// the PID and start time of the process that created it. The PID in the
// name lets a later run tell, even before the owner file exists, whether the
// creator still lives; the start time tells a reused PID apart.
const (
	workspacePrefix = "coldstart-run-"
	ownerFile       = "owner"
)

type workspace struct {
	dir string
}

// newWorkspace creates a workspace under base.
func newWorkspace(base string) (*workspace, error) {
	real, err := filepath.EvalSymlinks(base)
	if err != nil {
		return nil, fmt.Errorf("run workspace: %w", err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return nil, fmt.Errorf("run workspace: %w", err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(real, &sfs); err == nil && sfs.Type == unix.OVERLAYFS_SUPER_MAGIC {
		return nil, fmt.Errorf("run workspace: %s is on overlayfs, which cannot hold the upper directory of another overlay: choose a directory on ext4, xfs or tmpfs (WithTempDir, --tmpdir)", real)
	}
	pid := os.Getpid()
	dir, err := os.MkdirTemp(real, fmt.Sprintf("%s%d-", workspacePrefix, pid))
	if err != nil {
		return nil, fmt.Errorf("run workspace: %w", err)
	}
	w := &workspace{dir: dir}
	// overlayfs options separate paths with ',' and ':'.
	if strings.ContainsAny(dir, ",:\\\n") {
		w.remove()
		return nil, fmt.Errorf("run workspace %s: the path must not contain ',', ':' or '\\' (see WithTempDir)", dir)
	}
	st, ok := startTime(pid)
	if !ok {
		w.remove()
		return nil, fmt.Errorf("run workspace: cannot read the start time of process %d", pid)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), fmt.Appendf(nil, "%d %d\n", pid, st), 0o600); err != nil {
		w.remove()
		return nil, fmt.Errorf("run workspace: %w", err)
	}
	for _, sub := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			w.remove()
			return nil, fmt.Errorf("run workspace: %w", err)
		}
	}
	return w, nil
}

func (w *workspace) path(sub string) string { return filepath.Join(w.dir, sub) }

// remove unmounts whatever is mounted inside the workspace and deletes it.
func (w *workspace) remove() error { return removeWorkspace(w.dir) }

// removeWorkspace refuses to delete a directory that still has something
// mounted inside: that could reach the host's files.
func removeWorkspace(dir string) error {
	if err := unmountUnder(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing run workspace: %w", err)
	}
	return nil
}

// unmountUnder detaches every mount at or below dir in this mount namespace,
// deepest first, and checks that none is left.
func unmountUnder(dir string) error {
	for range 4 {
		mps, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unmounting %s: %w", mp, err)
			}
		}
	}
	mps, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(mps) > 0 {
		return fmt.Errorf("run workspace %s: %s is still mounted; not removing it", dir, mps[0])
	}
	return nil
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	out, err := mountinfo.UnderSelf(dir)
	if err != nil {
		return nil, fmt.Errorf("listing mounts: %w", err)
	}
	return out, nil
}

// startTime returns the start time of process pid, in clock ticks after
// boot (field 22 of /proc/PID/stat); ok is false when it does not exist.
func startTime(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// ownerAlive reports whether the process that created the workspace dir
// (its PID in the name is pid) still runs.
func ownerAlive(dir string, pid int) bool {
	st, ok := startTime(pid)
	if !ok {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		// Not written yet, or unreadable: the process lives, keep it.
		return true
	}
	var recPid int
	var recStart uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &recPid, &recStart); err != nil || recPid != pid {
		return true
	}
	return recStart == st
}

// cleanStale removes the workspaces under base whose owner process is gone
// (a run killed with SIGKILL leaves its workspace behind). It returns the
// directories removed; failures are logged and skipped.
func cleanStale(base string, logger *slog.Logger) []string {
	real, err := filepath.EvalSymlinks(base)
	if err != nil {
		return nil
	}
	ents, err := os.ReadDir(real)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, workspacePrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(real, name)
		if ownerAlive(dir, pid) {
			continue
		}
		if err := removeWorkspace(dir); err != nil {
			logger.Warn("profile: stale run workspace not removed", "dir", dir, "err", err)
			continue
		}
		logger.Info("profile: removed the workspace of a run that did not finish", "dir", dir, "pid", pid)
		removed = append(removed, dir)
	}
	return removed
}
