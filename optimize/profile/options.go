package profile

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/coldstart-dev/coldstart/internal/funcopt"
)

// Option configures Static, StaticProfiler and ReadPathList.
type Option func(*options) error

type options struct {
	logger     *slog.Logger
	maxFiles   int
	maxDepth   int
	maxRead    int64
	maxModules int
	config     *Config
}

// Defaults, documented on each option.
const (
	defaultMaxFiles   = 20000
	defaultMaxDepth   = 8
	defaultMaxRead    = 1 << 20
	defaultMaxModules = 5000
	maxWarnings       = 100
)

// defaultOptions are the options with every default.
func defaultOptions() *options {
	return &options{
		logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		maxFiles:   defaultMaxFiles,
		maxDepth:   defaultMaxDepth,
		maxRead:    defaultMaxRead,
		maxModules: defaultMaxModules,
	}
}

func makeOptions(opts []Option) (*options, error) {
	o := defaultOptions()
	if _, err := funcopt.Apply(o, opts); err != nil {
		return nil, err
	}
	return o, nil
}

// WithLogger sets the logger that receives debug records of what the
// profiler follows and every warning. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("profile: WithLogger(nil): logger must not be nil")
		}
		o.logger = l
		return nil
	}
}

// WithMaxFiles caps the number of files a profile lists; when it is reached
// the profile is cut there and carries a warning. Default: 20000.
func WithMaxFiles(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("profile: WithMaxFiles(%d): must be positive", n)
		}
		o.maxFiles = n
		return nil
	}
}

// WithMaxDepth caps how deep processes nest: a script that runs a script that
// runs a program is depth 2. Shebang chains are bounded separately, like the
// kernel, at 5 interpreters. Default: 8.
func WithMaxDepth(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("profile: WithMaxDepth(%d): must be positive", n)
		}
		o.maxDepth = n
		return nil
	}
}

// WithMaxReadBytes caps how many bytes of one script, source file or
// configuration file the profiler reads to find what it uses; the rest is
// ignored with a warning. ELF files are never read whole: only their headers,
// bounded separately. Default: 1 MiB.
func WithMaxReadBytes(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("profile: WithMaxReadBytes(%d): must be positive", n)
		}
		o.maxRead = n
		return nil
	}
}

// WithMaxModules caps how many Python and Node.js modules the import graph
// visits in one profile. Default: 5000.
func WithMaxModules(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("profile: WithMaxModules(%d): must be positive", n)
		}
		o.maxModules = n
		return nil
	}
}

// WithConfig makes StaticProfiler profile cfg's command (Entrypoint
// followed by Cmd, with its Env, WorkingDir and User) instead of the image
// config's, as "docker run --entrypoint ... IMAGE ARGS" does. Static takes
// its Config as an argument and rejects this option. Default: the image's
// config.
func WithConfig(cfg Config) Option {
	return func(o *options) error {
		o.config = &cfg
		return nil
	}
}
