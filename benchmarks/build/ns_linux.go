package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coldstart-dev/coldstart/internal/mountinfo"
)

// tools are the host commands the builder runs, by absolute path.
type tools struct {
	unshare, debootstrap string
}

// lookTools checks that the builder can work here: root, and the commands
// it needs (debootstrap only when a base must be made).
func lookTools(debootstrap bool) (*tools, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: building and running images needs root (chroot, overlayfs, namespaces)", ErrUnsupported)
	}
	t := &tools{}
	var err error
	if t.unshare, err = exec.LookPath("unshare"); err != nil {
		return nil, fmt.Errorf("%w: unshare not found (apt-get install util-linux)", ErrUnsupported)
	}
	for _, c := range []string{"mount", "chroot"} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Errorf("%w: %s not found", ErrUnsupported, c)
		}
	}
	if debootstrap {
		if t.debootstrap, err = exec.LookPath("debootstrap"); err != nil {
			return nil, fmt.Errorf("%w: debootstrap not found (apt-get install debootstrap)", ErrUnsupported)
		}
	}
	return t, nil
}

// hostPath is the PATH the namespace scripts find mount and chroot with.
const hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// nsRun runs script with /bin/sh -eu in new mount and PID namespaces, with
// args as $1..., so every mount the script makes and every process it
// starts end with it, whatever happens to this process. The script's own
// commands (mount, chroot) are found on hostPath; the environment of the
// command it finally execs is env. Output goes to out; the error of a
// failed run carries the end of it.
func nsRun(ctx context.Context, t *tools, script string, args []string, env []string, out io.Writer) error {
	tail := newTail(4 << 10)
	cmd := nsCommand(ctx, t, script, args, env)
	cmd.Stdout = io.MultiWriter(out, tail)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w (%v); output ends:\n%s", ErrStepFailed, err, tail.String())
	}
	return nil
}

func nsCommand(ctx context.Context, t *tools, script string, args []string, env []string) *exec.Cmd {
	full := "PATH=" + shellQuote(hostPath) + "\n" + script
	argv := append([]string{"--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
		"/bin/sh", "-euc", full, "coldstart-build"}, args...)
	cmd := exec.CommandContext(ctx, t.unshare, argv...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// The shell script that mounts a step's overlay and the file systems a
// chroot needs. $1 is the mount point, $2 the overlayfs options.
const mountScript = `M=$1
mount -t overlay overlay -o "$2" "$M"
mount -t proc proc "$M/proc"
mount --rbind /dev "$M/dev"
if [ -f "$M/etc/resolv.conf" ] && [ ! -L "$M/etc/resolv.conf" ]; then
	mount --bind /etc/resolv.conf "$M/etc/resolv.conf"
fi
`

// overlayOptions is the option string of an overlayfs mount of lowers
// (top first) under upper. Without upper the mount is read-only.
func overlayOptions(lowers []string, upper, work string) string {
	s := "lowerdir=" + strings.Join(lowers, ":")
	if upper != "" {
		s += ",upperdir=" + upper + ",workdir=" + work
	}
	// Like docker's overlay2: renaming a lower directory copies it up
	// (redirect_dir=off), a chmod copies data too (metacopy=off), and no
	// index, so the upper directory alone is the change set.
	return s + ",redirect_dir=off,metacopy=off,index=off"
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func newTail(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// lockFile takes an exclusive flock on p, waiting (and watching ctx) while
// another process holds it.
func lockFile(ctx context.Context, p string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tempDir makes a temporary tree in cacheDir/tmp whose name carries this
// process's ID, after removing the trees of processes that are gone
// (killed builds leave theirs behind).
func tempDir(cacheDir, what string) (string, error) {
	root := filepath.Join(cacheDir, "tmp")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		parts := strings.Split(e.Name(), "-")
		if len(parts) < 3 {
			continue
		}
		pid, err := strconv.Atoi(parts[len(parts)-2])
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			removeTree(filepath.Join(root, e.Name())) // best effort: a failure leaves it for next time
		}
	}
	return os.MkdirTemp(root, fmt.Sprintf("%s-%d-", what, os.Getpid()))
}

// removeTree removes dir unless something is mounted inside it (all the
// builder's mounts live in namespaces that end with their commands; a
// mount seen here would make RemoveAll delete through it).
func removeTree(dir string) error {
	mounts, err := mountinfo.UnderSelf(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("not removing %s: %s is mounted inside it", dir, mounts[0])
	}
	return os.RemoveAll(dir)
}
