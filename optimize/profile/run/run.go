package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"time"

	"github.com/coldstart-dev/coldstart/internal/funcopt"
	"github.com/coldstart-dev/coldstart/internal/rootfs"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// Errors of Image and Root; test with errors.Is.
var (
	// ErrUnsupported reports that this machine cannot observe a run: it
	// needs Linux, root, overlayfs and fanotify. The static profiler
	// (profile.Static, "coldstart profile --mode static") works everywhere.
	ErrUnsupported = errors.New("the run profiler is not available here (it needs Linux, root and fanotify): use the static profiler (--mode static) instead")
	// ErrEntrypoint reports an entrypoint that could not be started: none
	// is configured, it does not exist in the image, it is not executable,
	// or the image's user or working directory cannot be set up.
	ErrEntrypoint = errors.New("cannot start the entrypoint")
	// ErrPlatform reports an image built for another OS or architecture
	// than this machine's: it cannot be started here.
	ErrPlatform = errors.New("the image cannot be started on this machine")
)

// Filler writes an image's merged root filesystem into dir, an empty
// directory that Root creates and removes.
type Filler func(ctx context.Context, dir string) error

// Option configures Image and Root.
type Option func(*options) error

type options struct {
	logger    *slog.Logger
	period    time.Duration
	waitLine  *regexp.Regexp
	waitPort  int
	output    io.Writer
	tempDir   string
	hostname  string
	maxFiles  int
	config    *profile.Config
	indexOpts []layers.Option
}

// DefaultPeriod is how long a run observes the entrypoint when no wait
// condition ends it first.
const DefaultPeriod = 10 * time.Second

// Defaults, documented on each option.
const (
	defaultMaxFiles    = 20000
	defaultHostname    = "coldstart"
	defaultConcurrency = 3 // layers indexed at once by Image
)

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		logger:   slog.New(slog.DiscardHandler),
		period:   DefaultPeriod,
		output:   io.Discard,
		tempDir:  os.TempDir(),
		hostname: defaultHostname,
		maxFiles: defaultMaxFiles,
	}
	if _, err := funcopt.Apply(o, opts); err != nil {
		return nil, err
	}
	return o, nil
}

// WithLogger sets the logger that receives what a run does: the workspace,
// the sandbox set-up, why the run stopped. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("run: WithLogger(nil): logger must not be nil")
		}
		o.logger = l
		return nil
	}
}

// WithPeriod sets how long the entrypoint runs at most; the run ends
// earlier when the process exits or a wait condition is met. Default:
// DefaultPeriod (10s).
func WithPeriod(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("run: WithPeriod(%v): must be positive", d)
		}
		o.period = d
		return nil
	}
}

// WithWaitOnLine ends the run as soon as a line that the process writes to
// its standard output or error matches re: the application says it is ready.
// Default: none.
func WithWaitOnLine(re *regexp.Regexp) Option {
	return func(o *options) error {
		if re == nil {
			return errors.New("run: WithWaitOnLine(nil): regexp must not be nil")
		}
		o.waitLine = re
		return nil
	}
}

// WithWaitOnPort ends the run as soon as a TCP connection to port on the
// sandbox's loopback interface (127.0.0.1 or ::1) is accepted. Default: none.
func WithWaitOnPort(port int) Option {
	return func(o *options) error {
		if port < 1 || port > 65535 {
			return fmt.Errorf("run: WithWaitOnPort(%d): not a TCP port", port)
		}
		o.waitPort = port
		return nil
	}
}

// WithOutput copies what the process writes to its standard output and
// error (interleaved, as written) to w. Default: discard.
func WithOutput(w io.Writer) Option {
	return func(o *options) error {
		if w == nil {
			return errors.New("run: WithOutput(nil): writer must not be nil")
		}
		o.output = w
		return nil
	}
}

// WithTempDir sets the directory in which a run creates its workspace
// ("coldstart-run-PID-*": the extracted root filesystem, the overlay's upper
// and work directories). It must be on a filesystem that can hold an
// overlayfs upper directory (not overlayfs itself). Default: os.TempDir().
func WithTempDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("run: WithTempDir(\"\"): directory must not be empty")
		}
		o.tempDir = dir
		return nil
	}
}

// WithMaxFiles caps the number of files a run profile lists. Default:
// 20000, as profile.WithMaxFiles.
func WithMaxFiles(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("run: WithMaxFiles(%d): must be positive", n)
		}
		o.maxFiles = n
		return nil
	}
}

// WithConfig makes Image run cfg's command (Entrypoint followed by Cmd,
// with its Env, WorkingDir and User) instead of the image config's, as
// "docker run --entrypoint ... IMAGE ARGS" does. Root takes its Config as
// an argument and rejects this option. Default: the image's config.
func WithConfig(cfg profile.Config) Option {
	return func(o *options) error {
		o.config = &cfg
		return nil
	}
}

// WithIndexOptions sets the options with which Image indexes the image's
// layers before it extracts them (layers.WithMaxSize, layers.WithMaxEntries,
// ...). Default: none, the layers package's defaults.
func WithIndexOptions(opts ...layers.Option) Option {
	return func(o *options) error {
		o.indexOpts = append(o.indexOpts, opts...)
		return nil
	}
}

// Supported reports whether a run can work on this machine: nil, or an
// error wrapping ErrUnsupported that says what is missing.
func Supported() error { return supported() }

// Image starts the entrypoint of img in a sandbox and records which files
// of the image it reads, in first-access order: a profile of Source
// profile.SourceRun, with Image set to img's digest and Platform to its
// config's platform.
//
// It indexes img's layers, writes their merged root filesystem into the
// run's workspace (refusing entries that would land outside it; device
// nodes are not created) and runs the command of img's config, or of
// WithConfig, as Root does. img must be a linux image of this machine's
// architecture; otherwise Image fails with an error wrapping ErrPlatform.
func Image(ctx context.Context, img v1.Image, opts ...Option) (*profile.Profile, error) {
	if img == nil {
		return nil, errors.New("run: Image: nil image")
	}
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("reading image digest: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: reading config: %w", d, err)
	}
	cfg := profile.ConfigOf(cf.Config)
	if o.config != nil {
		cfg = *o.config
	}
	if (cf.OS != "" && cf.OS != "linux") || (cf.Architecture != "" && cf.Architecture != runtime.GOARCH) {
		return nil, fmt.Errorf("%w: it is a %s/%s image and this machine runs linux/%s", ErrPlatform, cf.OS, cf.Architecture, runtime.GOARCH)
	}
	fill := func(ctx context.Context, dir string) error {
		ls, ov, err := o.index(ctx, img, cf)
		if err != nil {
			return fmt.Errorf("image %s: %w", d, err)
		}
		res, err := rootfs.Extract(ctx, dir, ls, ov, rootfs.WithLogger(o.logger))
		if err != nil {
			return err
		}
		for _, n := range res.Notes {
			o.logger.Debug("profile: root filesystem", "note", n)
		}
		return nil
	}
	p, err := o.root(ctx, fill, cfg)
	if err != nil {
		return nil, err
	}
	p.Image = d.String()
	if pl := cf.Platform(); pl != nil && pl.OS != "" {
		p.Platform = pl.String()
	}
	return p, nil
}

// index indexes img's layers, checking each against the config's diff_id,
// and merges them.
func (o *options) index(ctx context.Context, img v1.Image, cf *v1.ConfigFile) ([]v1.Layer, *layers.Overlay, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, nil, fmt.Errorf("listing layers: %w", err)
	}
	if len(cf.RootFS.DiffIDs) != len(ls) {
		return nil, nil, fmt.Errorf("config lists %d diff_ids for %d layers", len(cf.RootFS.DiffIDs), len(ls))
	}
	idxs := make([]*layers.Index, len(ls))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(defaultConcurrency)
	for i, l := range ls {
		g.Go(func() error {
			idx, err := layers.IndexLayer(gctx, l, o.indexOpts...)
			if err != nil {
				return fmt.Errorf("layer %d: %w", i, err)
			}
			if !idx.Foreign && idx.DiffID != cf.RootFS.DiffIDs[i] {
				return fmt.Errorf("layer %d %s: %w: config diff_id is %s, layer content hashes to %s",
					i, idx.Digest, layers.ErrDigestMismatch, cf.RootFS.DiffIDs[i], idx.DiffID)
			}
			idxs[i] = idx
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	ov, err := layers.Merge(idxs...)
	if err != nil {
		return nil, nil, err
	}
	return ls, ov, nil
}

// Root starts cfg's command in a sandbox whose root filesystem fill writes,
// and records which of its files the process tree reads, in first-access
// order: a profile of Source profile.SourceRun.
//
// fill writes the image's merged root filesystem into an empty directory of
// the run's workspace. That directory becomes the read-only lower layer of
// an overlay mount, so nothing the process writes changes it. The command is
// cfg.Entrypoint followed by cfg.Cmd, looked up in the PATH of cfg.Env
// (default profile.DefaultPath) inside the image, with cfg.Env (plus PATH,
// HOME and HOSTNAME when unset), in cfg.WorkingDir (created when missing, as
// container runtimes do), as cfg.User resolved through the image's
// /etc/passwd and /etc/group. The process runs as PID 1 of new mount, PID,
// UTS, IPC and network namespaces (only the loopback interface, up), with
// the overlay as its root, /proc, /sys (read-only), a minimal /dev (null,
// zero, full, random, urandom, tty, pts, shm) and a writable /tmp. Device
// nodes of the image are not available. The sandbox isolates the run from
// the host's files and network; it is not a security boundary against a
// hostile image that runs as root.
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
// the workspace is removed, on every path. A workspace left by a run that
// was killed (its owner process is gone) is removed at the start of the next
// run. How the run ended, when it is not what was asked for (a non-zero exit,
// a wait condition never met), is a warning of the profile.
//
// The machine must allow it (see Supported): Linux, root, overlayfs and
// fanotify; otherwise Root fails with an error wrapping ErrUnsupported. An
// entrypoint that cannot be started fails with an error wrapping
// ErrEntrypoint.
//
// Root starts the sandbox by executing its own binary (/proc/self/exe) with
// a marker in the environment: this package's init function then acts as
// the sandbox's set-up and never returns to the program's main.
func Root(ctx context.Context, fill Filler, cfg profile.Config, opts ...Option) (*profile.Profile, error) {
	if fill == nil {
		return nil, errors.New("run: Root: nil Filler")
	}
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.config != nil {
		return nil, errors.New("run: Root: WithConfig is for Image; Root takes its Config as an argument")
	}
	return o.root(ctx, fill, cfg)
}

func (o *options) root(ctx context.Context, fill Filler, cfg profile.Config) (*profile.Profile, error) {
	if len(cfg.Entrypoint)+len(cfg.Cmd) == 0 {
		return nil, fmt.Errorf("%w: the image config has no Entrypoint or Cmd (give one)", ErrEntrypoint)
	}
	if err := supported(); err != nil {
		return nil, err
	}
	return record(ctx, fill, cfg, o)
}
