package profile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A Profiler finds the start-up files of an image: optimize prioritizes
// them, report costs them. fsys is img's merged root filesystem.
//
// Name identifies the profiler and everything that shapes its output: two
// profilers with the same name give the same profile for the same image, so
// that profiles can be cached by it. Profile returns a new Profile on every
// call; the caller may change it (optimize sets its Image).
//
// StaticProfiler predicts the files, Parse and ReadFile import them from a
// file; ProfilerFunc makes a Profiler of a function. The run profiler
// (package run) is not a Profiler: what a run records is not a function of
// the image alone.
type Profiler interface {
	Profile(ctx context.Context, img v1.Image, fsys FS) (*Profile, error)
	Name() string
}

// ProfilerFunc turns a function into a Profiler with the given name.
func ProfilerFunc(name string, fn func(ctx context.Context, img v1.Image, fsys FS) (*Profile, error)) Profiler {
	return funcProfiler{name, fn}
}

type funcProfiler struct {
	name string
	fn   func(ctx context.Context, img v1.Image, fsys FS) (*Profile, error)
}

func (f funcProfiler) Profile(ctx context.Context, img v1.Image, fsys FS) (*Profile, error) {
	return f.fn(ctx, img, fsys)
}

func (f funcProfiler) Name() string { return f.name }

// staticVersion names the static profiler's rules in the Name of
// StaticProfiler. It changes whenever a rule changes what Static lists, so
// that profiles cached (and images optimized) under the old rules are not
// taken for the new ones.
const staticVersion = "static/3"

// StaticProfiler returns Static as a Profiler: it profiles the command of
// the image's config (or of WithConfig) over the image's filesystem, and
// sets the profile's Platform from the config. Its Name is "static/3" with
// the default options; a non-default bound or WithConfig adds a digest of
// them. WithLogger does not change the name. An invalid option makes every
// Profile call fail.
func StaticProfiler(opts ...Option) Profiler {
	o, err := makeOptions(opts)
	if err != nil {
		return staticProfiler{name: staticVersion + "/invalid", err: err}
	}
	return staticProfiler{name: o.staticName(), o: o}
}

type staticProfiler struct {
	name string
	o    *options
	err  error
}

func (s staticProfiler) Name() string { return s.name }

func (s staticProfiler) Profile(ctx context.Context, img v1.Image, fsys FS) (*Profile, error) {
	if s.err != nil {
		return nil, s.err
	}
	if img == nil {
		return nil, errors.New("profile: StaticProfiler: nil image")
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg := ConfigOf(cf.Config)
	if s.o.config != nil {
		cfg = *s.o.config
	}
	p, err := static(ctx, fsys, cfg, s.o)
	if err != nil {
		return nil, err
	}
	if pl := cf.Platform(); pl != nil && pl.OS != "" {
		p.Platform = pl.String()
	}
	return p, nil
}

// staticName is staticVersion, followed by a digest of the options that
// change what Static lists when they are not the defaults.
func (o *options) staticName() string {
	type shaping struct {
		MaxFiles, MaxDepth, MaxModules int
		MaxRead                        int64
		Config                         *Config
	}
	got := shaping{o.maxFiles, o.maxDepth, o.maxModules, o.maxRead, o.config}
	if got == (shaping{defaultMaxFiles, defaultMaxDepth, defaultMaxModules, defaultMaxRead, nil}) {
		return staticVersion
	}
	b, err := json.Marshal(got)
	if err != nil {
		panic(err) // plain ints and strings always marshal
	}
	sum := sha256.Sum256(b)
	return staticVersion + "/" + hex.EncodeToString(sum[:8])
}
