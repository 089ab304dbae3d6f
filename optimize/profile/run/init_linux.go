//go:build linux

package run

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/profile/internal/imagepath"
	"golang.org/x/sys/unix"
)

// The sandbox set-up runs in a copy of this binary started by Run in new
// namespaces: argv[0] is initArg0 and the environment holds initEnv=1.
const (
	initEnv  = "COLDSTART_PROFILE_RUN_INIT"
	initArg0 = "coldstart-profile-init"
	// File descriptors of the set-up process: Run writes the sandbox
	// configuration and then "go" to ctlFD; the set-up process reports on
	// statusFD.
	ctlFD    = 3
	statusFD = 4
)

// Messages of the set-up process, one per line on statusFD.
const (
	msgMounted = "mounted"          // the overlay is mounted: mark it
	msgWarn    = "warn "            // a warning for the profile
	msgExec    = "exec"             // about to execve the entrypoint
	msgErrUser = "error entrypoint" // the entrypoint cannot start
	msgErr     = "error setup"      // the sandbox cannot be set up
	msgGo      = "go"               // from Run: the mark is in place
)

// initConfig is what Run tells the set-up process.
type initConfig struct {
	Lower, Upper, Work, Merged string
	Argv                       []string
	Env                        []string
	Dir                        string
	UID, GID                   int
	Groups                     []int
	Hostname                   string
}

func init() {
	if os.Getenv(initEnv) == "1" && len(os.Args) > 0 && os.Args[0] == initArg0 {
		os.Exit(sandboxInit())
	}
}

// sandboxInit runs as PID 1 of the new namespaces: it mounts the overlay,
// waits for Run to mark it, builds /proc, /dev, /sys and /tmp, pivots into
// the overlay, becomes the image's user and executes the entrypoint. It
// returns only on failure, after reporting it.
func sandboxInit() int {
	unix.CloseOnExec(ctlFD)
	unix.CloseOnExec(statusFD)
	ctl := bufio.NewReader(os.NewFile(ctlFD, "ctl"))
	status := os.NewFile(statusFD, "status")
	say := func(format string, args ...any) {
		fmt.Fprintf(status, format+"\n", args...)
	}
	fail := func(kind string, err error) int {
		say("%s %s", kind, strings.ReplaceAll(err.Error(), "\n", " "))
		return 127
	}
	line, err := ctl.ReadBytes('\n')
	if err != nil {
		return fail(msgErr, fmt.Errorf("reading the sandbox configuration: %w", err))
	}
	var c initConfig
	if err := json.Unmarshal(line, &c); err != nil {
		return fail(msgErr, fmt.Errorf("reading the sandbox configuration: %w", err))
	}
	// Nothing mounted here may reach the host's mount namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fail(msgErr, fmt.Errorf("making mounts private: %w", err))
	}
	opts := "lowerdir=" + c.Lower + ",upperdir=" + c.Upper + ",workdir=" + c.Work
	if err := unix.Mount("overlay", c.Merged, "overlay", unix.MS_NODEV, opts); err != nil {
		return fail(msgErr, fmt.Errorf("mounting the overlay (%s): %w; the workspace must be on a filesystem that can hold an overlay upper directory, such as ext4, xfs or tmpfs (see WithTempDir, --tmpdir)", opts, err))
	}
	say(msgMounted)
	if line, err := ctl.ReadString('\n'); err != nil || strings.TrimSpace(line) != msgGo {
		return fail(msgErr, errors.New("run ended before the sandbox started"))
	}
	if err := unix.Sethostname([]byte(c.Hostname)); err != nil {
		say("%shostname not set: %v", msgWarn, err)
	}
	if err := loopbackUp(); err != nil {
		say("%sloopback interface not up: %v", msgWarn, err)
	}
	for _, w := range setupMounts(c.Merged) {
		say("%s%s", msgWarn, w)
	}
	if err := pivot(c.Merged); err != nil {
		return fail(msgErr, err)
	}
	if err := enterDir(c.Dir); err != nil {
		return fail(msgErrUser, err)
	}
	prog, err := lookPathIn(c.Argv[0], pathOf(c.Env))
	if err != nil {
		return fail(msgErrUser, err)
	}
	groups := c.Groups
	if groups == nil {
		groups = []int{}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fail(msgErrUser, fmt.Errorf("setgroups %v: %w", groups, err))
	}
	if err := syscall.Setgid(c.GID); err != nil {
		return fail(msgErrUser, fmt.Errorf("setgid %d: %w", c.GID, err))
	}
	if err := syscall.Setuid(c.UID); err != nil {
		return fail(msgErrUser, fmt.Errorf("setuid %d: %w", c.UID, err))
	}
	say(msgExec)
	err = syscall.Exec(prog, c.Argv, c.Env)
	return fail(msgErrUser, fmt.Errorf("exec %s: %w", prog, err))
}

// loopbackUp brings the network namespace's lo interface up.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// mountDir makes sure p (in the overlay) is a real directory to mount on:
// it is created when missing; a link or a file is left alone.
func mountDir(p string, mode fs.FileMode) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(p, mode); err != nil {
			return err
		}
		return os.Chmod(p, mode)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is %s in the image", filepath.Base(p), imagepath.Describe(fi.Mode()))
	}
	return nil
}

// setupMounts mounts /proc, /sys, /dev and its children inside the overlay
// and makes sure /tmp exists. It returns warnings for what it could not do.
func setupMounts(root string) []string {
	var warns []string
	warn := func(what string, err error) {
		warns = append(warns, fmt.Sprintf("%s not set up in the sandbox: %v", what, err))
	}
	in := func(p string) string { return filepath.Join(root, p) }
	const nosuid = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := mountDir(in("proc"), 0o555); err != nil {
		warn("/proc", err)
	} else if err := unix.Mount("proc", in("proc"), "proc", nosuid, ""); err != nil {
		warn("/proc", err)
	}
	if err := mountDir(in("sys"), 0o555); err != nil {
		warn("/sys", err)
	} else if err := unix.Mount("sysfs", in("sys"), "sysfs", nosuid|unix.MS_RDONLY, ""); err != nil {
		warn("/sys", err)
	}
	if err := mountDir(in("dev"), 0o755); err != nil {
		warn("/dev", err)
	} else if err := unix.Mount("tmpfs", in("dev"), "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		warn("/dev", err)
	} else {
		for _, d := range []struct {
			name         string
			major, minor uint32
		}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
			p := in("dev/" + d.name)
			if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
				warn("/dev/"+d.name, err)
			} else if err := os.Chmod(p, 0o666); err != nil {
				warn("/dev/"+d.name, err)
			}
		}
		for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
			"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"} {
			if err := os.Symlink(target, in("dev/"+name)); err != nil {
				warn("/dev/"+name, err)
			}
		}
		if err := os.Mkdir(in("dev/pts"), 0o755); err != nil {
			warn("/dev/pts", err)
		} else if err := unix.Mount("devpts", in("dev/pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
			warn("/dev/pts", err)
		}
		if err := os.Mkdir(in("dev/shm"), fs.ModeSticky|0o777); err != nil {
			warn("/dev/shm", err)
		} else if err := unix.Mount("shm", in("dev/shm"), "tmpfs", nosuid, "mode=1777,size=65536k"); err != nil {
			warn("/dev/shm", err)
		}
	}
	if err := mountDir(in("tmp"), fs.ModeSticky|0o777); err != nil {
		warn("/tmp", err)
	}
	return warns
}

// pivot makes root the root of the mount namespace and detaches the old
// root, so that no host path is reachable from the sandbox.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("entering the overlay: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("entering the new root: %w", err)
	}
	return nil
}

// enterDir changes to the working directory, creating it when missing.
func enterDir(dir string) error {
	if err := unix.Chdir(dir); err == nil {
		return nil
	} else if !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("working directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the working directory %s: %w", dir, err)
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("working directory %s: %w", dir, err)
	}
	return nil
}

// pathOf returns the value of the last PATH in env (KEY=VALUE pairs), ""
// when there is none.
func pathOf(env []string) string {
	p := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			p = v
		}
	}
	return p
}

// lookPathIn finds file like execvp with the given PATH: a name with a slash
// is used as it is; otherwise the first executable regular file in PATH. It
// only stats, so it opens nothing the profile would record.
func lookPathIn(file, pathList string) (string, error) {
	if file == "" {
		return "", errors.New("empty command name")
	}
	if strings.Contains(file, "/") {
		if err := checkExec(file); err != nil {
			return "", fmt.Errorf("%s: %w", file, err)
		}
		return file, nil
	}
	if pathList == "" {
		pathList = profile.DefaultPath
	}
	var firstErr error
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		err := checkExec(p)
		if err == nil {
			return p, nil
		}
		if firstErr == nil && !errors.Is(err, fs.ErrNotExist) {
			firstErr = fmt.Errorf("%s: %w", p, err)
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", fmt.Errorf("%s: executable file not found in PATH %s", file, pathList)
}

func checkExec(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s)", imagepath.Describe(fi.Mode()))
	}
	if fi.Mode()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}
