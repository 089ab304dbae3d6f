package profile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"time"
)

// Errors of Run; test with errors.Is.
var (
	// ErrRunUnsupported reports that this machine cannot observe a run:
	// Run needs Linux, root, overlayfs and fanotify. The static profiler
	// (Static, "coldstart profile --mode static") works everywhere.
	ErrRunUnsupported = errors.New("the run profiler is not available here (it needs Linux, root and fanotify): use the static profiler (--mode static) instead")
	// ErrEntrypoint reports an entrypoint that could not be started: none
	// is configured, it does not exist in the image, it is not executable,
	// or the image's user or working directory cannot be set up.
	ErrEntrypoint = errors.New("cannot start the entrypoint")
)

// Filler writes an image's merged root filesystem into dir, an empty
// directory that Run creates and removes. internal/rootfs.Extract is one.
type Filler func(ctx context.Context, dir string) error

// RunOption configures Run.
type RunOption func(*runOptions) error

type runOptions struct {
	logger   *slog.Logger
	period   time.Duration
	waitLine *regexp.Regexp
	waitPort int
	output   io.Writer
	tempDir  string
	hostname string
	maxFiles int
}

// DefaultPeriod is how long Run observes the entrypoint when no wait
// condition ends the run first.
const DefaultPeriod = 10 * time.Second

func makeRunOptions(opts []RunOption) (*runOptions, error) {
	o := &runOptions{
		logger:   slog.New(slog.DiscardHandler),
		period:   DefaultPeriod,
		output:   io.Discard,
		tempDir:  os.TempDir(),
		hostname: "coldstart",
		maxFiles: defaultMaxFiles,
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// WithRunLogger sets the logger that receives what Run does: the workspace,
// the sandbox set-up, why the run stopped. Default: discard.
func WithRunLogger(l *slog.Logger) RunOption {
	return func(o *runOptions) error {
		if l == nil {
			return errors.New("profile: WithRunLogger(nil): logger must not be nil")
		}
		o.logger = l
		return nil
	}
}

// WithPeriod sets how long the entrypoint runs at most; the run ends
// earlier when the process exits or a wait condition is met. Default:
// DefaultPeriod (10s).
func WithPeriod(d time.Duration) RunOption {
	return func(o *runOptions) error {
		if d <= 0 {
			return fmt.Errorf("profile: WithPeriod(%v): must be positive", d)
		}
		o.period = d
		return nil
	}
}

// WithWaitOnLine ends the run as soon as a line that the process writes to
// its standard output or error matches re: the application says it is ready.
// Default: none.
func WithWaitOnLine(re *regexp.Regexp) RunOption {
	return func(o *runOptions) error {
		if re == nil {
			return errors.New("profile: WithWaitOnLine(nil): regexp must not be nil")
		}
		o.waitLine = re
		return nil
	}
}

// WithWaitOnPort ends the run as soon as a TCP connection to port on the
// sandbox's loopback interface (127.0.0.1 or ::1) is accepted. Default: none.
func WithWaitOnPort(port int) RunOption {
	return func(o *runOptions) error {
		if port < 1 || port > 65535 {
			return fmt.Errorf("profile: WithWaitOnPort(%d): not a TCP port", port)
		}
		o.waitPort = port
		return nil
	}
}

// WithOutput copies what the process writes to its standard output and
// error (interleaved, as written) to w. Default: discard.
func WithOutput(w io.Writer) RunOption {
	return func(o *runOptions) error {
		if w == nil {
			return errors.New("profile: WithOutput(nil): writer must not be nil")
		}
		o.output = w
		return nil
	}
}

// WithRunTempDir sets the directory in which Run creates its workspace
// ("coldstart-run-PID-*": the extracted root filesystem, the overlay's upper
// and work directories). It must be on a filesystem that can hold an
// overlayfs upper directory (not overlayfs itself). Default: os.TempDir().
func WithRunTempDir(dir string) RunOption {
	return func(o *runOptions) error {
		if dir == "" {
			return errors.New("profile: WithRunTempDir(\"\"): directory must not be empty")
		}
		o.tempDir = dir
		return nil
	}
}

// WithRunMaxFiles caps the number of files a run profile lists. Default:
// 20000, as WithMaxFiles.
func WithRunMaxFiles(n int) RunOption {
	return func(o *runOptions) error {
		if n <= 0 {
			return fmt.Errorf("profile: WithRunMaxFiles(%d): must be positive", n)
		}
		o.maxFiles = n
		return nil
	}
}

// RunSupported reports whether Run can work on this machine: nil, or an
// error wrapping ErrRunUnsupported that says what is missing.
func RunSupported() error { return runSupported() }

// Run starts the entrypoint of an image in a sandbox and records which files
// of the image it reads, in first-access order: a profile of Source
// SourceRun.
//
// fill writes the image's merged root filesystem into an empty directory of
// Run's workspace. That directory becomes the read-only lower layer of an
// overlay mount, so nothing the process writes changes it. The command is
// cfg.Entrypoint followed by cfg.Cmd, looked up in the PATH of cfg.Env
// (default DefaultPath) inside the image, with cfg.Env (plus PATH, HOME and
// HOSTNAME when unset), in cfg.WorkingDir (created when missing, as container
// runtimes do), as cfg.User resolved through the image's /etc/passwd and
// /etc/group. The process runs as PID 1 of new mount, PID, UTS, IPC and
// network namespaces (only the loopback interface, up), with the overlay as
// its root, /proc, /sys (read-only), a minimal /dev (null, zero, full, random,
// urandom, tty, pts, shm) and a writable /tmp. Device nodes of the image are
// not available. The sandbox isolates the run from the host's files and
// network; it is not a security boundary against a hostile image that runs
// as root.
//
// A fanotify mark on the overlay's filesystem reports every file the process
// tree opens, executes or reads; the profile lists the regular files of the
// image in the order they were first opened (files the process creates are
// left out). The kernel reports programs as they are executed and the ELF
// interpreter as it maps it, so both are listed.
//
// The run ends at the first of: the process exits, a line matches
// WithWaitOnLine, the port of WithWaitOnPort accepts a connection, the
// period ends (WithPeriod, default 10s), ctx is done. Then every process of
// the sandbox is killed, the overlay disappears with its mount namespace, and
// the workspace is removed, on every path. A workspace left by a Run that was
// killed (its owner process is gone) is removed at the start of the next
// Run. How the run ended, when it is not what was asked for (a non-zero exit,
// a wait condition never met), is a warning of the profile.
//
// The machine must allow it (see RunSupported): Linux, root, overlayfs and
// fanotify; otherwise Run fails with an error wrapping ErrRunUnsupported. An
// entrypoint that cannot be started fails with an error wrapping
// ErrEntrypoint.
//
// Run starts the sandbox by executing its own binary (/proc/self/exe) with
// a marker in the environment: this package's init function then acts as
// the sandbox's set-up and never returns to the program's main.
func Run(ctx context.Context, fill Filler, cfg Config, opts ...RunOption) (*Profile, error) {
	if fill == nil {
		return nil, errors.New("profile: Run: nil Filler")
	}
	o, err := makeRunOptions(opts)
	if err != nil {
		return nil, err
	}
	if len(cfg.Entrypoint)+len(cfg.Cmd) == 0 {
		return nil, fmt.Errorf("%w: the image config has no Entrypoint or Cmd (give one)", ErrEntrypoint)
	}
	if err := runSupported(); err != nil {
		return nil, err
	}
	return run(ctx, fill, cfg, o)
}
