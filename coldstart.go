package coldstart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/internal/funcopt"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/profile/run"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrInvalid is wrapped by every error that is the caller's: a malformed
// reference or option value, DST equal to SRC without WithOverwrite, options
// that do not go together. The command exits 2 on them.
var ErrInvalid = errors.New("invalid argument")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// callersError is an error of imageref that is the caller's (a malformed
// reference): it wraps ErrInvalid without saying "invalid argument" before
// its own "invalid image reference".
type callersError struct{ err error }

func (e callersError) Error() string        { return e.err.Error() }
func (e callersError) Unwrap() error        { return e.err }
func (e callersError) Is(target error) bool { return target == ErrInvalid }

// Option configures the functions of this package.
type Option func(*options) error

type options struct {
	insecure   bool
	logger     *slog.Logger
	userAgent  string
	platforms  string
	tempDir    string
	limits     []layers.Option
	optimize   []optimize.Option
	report     []report.Option
	run        []run.Option
	runMode    bool
	profiler   profile.Profiler
	editConfig func(*profile.Config) error
	bases      []string
	previous   string
	overwrite  bool
	compare    bool
	measure    bool
	progress   func(optimize.Progress)
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{logger: slog.New(slog.DiscardHandler), userAgent: "coldstart", compare: true}
	if _, err := funcopt.Apply(o, opts); err != nil {
		return nil, err
	}
	return o, nil
}

// WithInsecure talks plain HTTP to registries and skips TLS verification.
// The default is false; localhost registries always use plain HTTP.
func WithInsecure(insecure bool) Option {
	return func(o *options) error { o.insecure = insecure; return nil }
}

// WithLogger receives debug records of everything the functions do. The
// default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return invalid("nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithUserAgent sets the User-Agent of registry requests. The default is
// "coldstart".
func WithUserAgent(ua string) Option {
	return func(o *options) error { o.userAgent = ua; return nil }
}

// WithPlatforms picks images of a multi-platform index: "all",
// "OS/ARCH[/VARIANT]" or a comma-separated list. The default is all of them
// for Optimize, Verify and Analyze, and linux on this machine's architecture
// for the functions that need one image (Profile, Report, Compare).
func WithPlatforms(spec string) Option {
	return func(o *options) error {
		if _, err := imageref.ParsePlatforms(spec); err != nil {
			return fmt.Errorf("%w: platforms: %w", ErrInvalid, err)
		}
		o.platforms = spec
		return nil
	}
}

// WithTempDir puts temporary files in dir. The default is the system's.
func WithTempDir(dir string) Option {
	return func(o *options) error { o.tempDir = dir; return nil }
}

// WithLayerLimits bounds what one layer may hold (layers.WithMaxSize,
// layers.WithMaxEntries), wherever layers are read. The defaults are the
// layers package's.
func WithLayerLimits(opts ...layers.Option) Option {
	return func(o *options) error { o.limits = append(o.limits, opts...); return nil }
}

// WithOptimizeOptions passes options to the optimize package. They come
// after the ones this package sets from its own options (logger, temporary
// directory, limits, bases), so they win.
func WithOptimizeOptions(opts ...optimize.Option) Option {
	return func(o *options) error { o.optimize = append(o.optimize, opts...); return nil }
}

// WithReportOptions passes options to the report package (networks,
// budgets, rates, held layers, measurement). They come after the ones this
// package sets, so they win.
func WithReportOptions(opts ...report.Option) Option {
	return func(o *options) error { o.report = append(o.report, opts...); return nil }
}

// WithProfiler makes Profile use p (for example a file read with
// profile.ReadFile). The default is profile.StaticProfiler.
func WithProfiler(p profile.Profiler) Option {
	return func(o *options) error { o.profiler = p; return nil }
}

// WithRun makes Profile run the image and record what it opens (Linux, root
// and fanotify; see the run package), with opts. The default is the static
// profiler.
func WithRun(opts ...run.Option) Option {
	return func(o *options) error { o.runMode = true; o.run = append(o.run, opts...); return nil }
}

// WithProfileConfig lets Profile change the image's entrypoint, command,
// environment or user before profiling, as "docker run" does. The default
// profiles the image's own config.
func WithProfileConfig(edit func(*profile.Config) error) Option {
	return func(o *options) error { o.editConfig = edit; return nil }
}

// WithBases names images whose layers nodes hold (every image of an
// index counts): Optimize keeps or converts them as optimize.WithBasePolicy
// says, Report counts them as held. The default is none.
func WithBases(refs ...string) Option {
	return func(o *options) error {
		for _, r := range refs {
			if _, err := imageref.Parse(r); err != nil {
				return fmt.Errorf("%w: base: %w", ErrInvalid, err)
			}
		}
		o.bases = append(o.bases, refs...)
		return nil
	}
}

// WithPrevious names an earlier version of the image that nodes hold
// (report.WithPrevious): Report counts its layers as held, and its
// partial pull (containers/storage, podman) fetches only the files that
// are in none of its eStargz and zstd:chunked layers. An index is narrowed
// to the platform asked, as the image is. The default is none.
func WithPrevious(ref string) Option {
	return func(o *options) error {
		if _, err := imageref.Parse(ref); err != nil {
			return fmt.Errorf("%w: previous: %w", ErrInvalid, err)
		}
		o.previous = ref
		return nil
	}
}

// WithOverwrite lets Optimize write DST when it is SRC; the old image
// stays until the new one is complete. The default is false: DST equal to
// SRC is an error wrapping ErrInvalid.
func WithOverwrite(on bool) Option {
	return func(o *options) error { o.overwrite = on; return nil }
}

// WithCompare makes Optimize estimate the cold start of every image before
// and after (Result.Comparisons), from the layer indexes and TOCs it has in
// hand. The default is true.
func WithCompare(on bool) Option {
	return func(o *options) error { o.compare = on; return nil }
}

// WithMeasure makes Report also pull the image for real, fully and lazily,
// from its registry (the reference must name one), and put the measured
// figures beside the estimate; report.WithShaping, passed with
// WithReportOptions, shapes the connection. The default is false.
func WithMeasure(on bool) Option {
	return func(o *options) error { o.measure = on; return nil }
}

// WithProgress makes Optimize report the progress of every layer: reading
// the source (optimize.PhasePull), converting it (optimize.PhaseConvert)
// and writing it to the destination (optimize.PhasePush), numbered as the
// result numbers layers; see optimize.Progress. fn may be called from
// several goroutines at once. The default is none: the functions are
// silent.
func WithProgress(fn func(optimize.Progress)) Option {
	return func(o *options) error { o.progress = fn; return nil }
}

// refOptions are the registry options, with the platforms picked (spec ""
// keeps every image).
func (o *options) refOptions(spec string) ([]imageref.Option, error) {
	ro := []imageref.Option{imageref.WithInsecure(o.insecure), imageref.WithLogger(o.logger), imageref.WithUserAgent(o.userAgent)}
	if spec != "" {
		ps, err := imageref.ParsePlatforms(spec)
		if err != nil {
			return nil, fmt.Errorf("%w: platforms: %w", ErrInvalid, err)
		}
		ro = append(ro, imageref.WithPlatforms(ps))
	}
	return ro, nil
}

// optimizeOptions are the options of the optimize package.
func (o *options) optimizeOptions(bases []v1.Image) []optimize.Option {
	out := []optimize.Option{optimize.WithLogger(o.logger), optimize.WithTempDir(o.tempDir)}
	if o.progress != nil {
		out = append(out, optimize.WithProgress(o.progress))
	}
	if len(o.limits) > 0 {
		out = append(out, optimize.WithIndexOptions(o.limits...))
	}
	if len(bases) > 0 {
		out = append(out, optimize.WithBaseImage(bases...))
	}
	return append(out, o.optimize...)
}

// reportOptions are the options of the report package.
func (o *options) reportOptions(bases []v1.Image) []report.Option {
	out := []report.Option{report.WithLogger(o.logger), report.WithTempDir(o.tempDir)}
	if len(o.limits) > 0 {
		out = append(out, report.WithIndexOptions(o.limits...))
	}
	if len(bases) > 0 {
		out = append(out, report.WithBaseImage(bases...))
	}
	return append(out, o.report...)
}

// parse parses a reference; a malformed one is the caller's error.
func parse(s string) (imageref.Ref, error) {
	r, err := imageref.Parse(s)
	if err != nil {
		return r, callersError{err}
	}
	return r, nil
}

// readAll reads ref with the platforms asked (all by default).
func (o *options) readAll(ctx context.Context, ref imageref.Ref) (*imageref.Artifact, error) {
	ro, err := o.refOptions(o.platforms)
	if err != nil {
		return nil, err
	}
	return imageref.Read(ctx, ref, ro...)
}

// readBases reads the base images: every image of an index counts.
func (o *options) readBases(ctx context.Context) ([]v1.Image, error) {
	var out []v1.Image
	ro, err := o.refOptions("")
	if err != nil {
		return nil, err
	}
	for _, b := range o.bases {
		ref, err := parse(b)
		if err != nil {
			return nil, err
		}
		art, err := imageref.Read(ctx, ref, ro...)
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", ref, err)
		}
		if art.Index == nil {
			out = append(out, art.Image)
			continue
		}
		imgs, err := optimize.IndexImages(ctx, art.Index)
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", ref, err)
		}
		for _, pi := range imgs {
			out = append(out, pi.Image)
		}
	}
	return out, nil
}

// oneImage is one image read for a function that needs exactly one.
type oneImage struct {
	ref imageref.Ref
	img v1.Image
	// indexBytes is the size of the index manifest it came from, 0 when
	// the reference names an image.
	indexBytes int64
}

// readOne reads the one image of ref: an index is narrowed to the platform
// asked, by default linux on this machine's architecture (or its only
// image).
func (o *options) readOne(ctx context.Context, s string) (*oneImage, error) {
	ref, err := parse(s)
	if err != nil {
		return nil, err
	}
	ro, err := o.refOptions("")
	if err != nil {
		return nil, err
	}
	art, err := imageref.Read(ctx, ref, ro...)
	if err != nil {
		return nil, err
	}
	if art.Index == nil {
		if o.platforms != "" && o.platforms != "all" {
			spec, _ := imageref.ParsePlatforms(o.platforms)
			if _, err := imageref.SelectPlatforms(ctx, art, spec); err != nil {
				return nil, err
			}
		}
		return &oneImage{ref: ref, img: art.Image}, nil
	}
	raw, err := art.Index.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	imgs, err := optimize.IndexImages(ctx, art.Index)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	one := &oneImage{ref: ref, indexBytes: int64(len(raw))}
	if len(imgs) == 1 && (o.platforms == "" || o.platforms == "all") {
		one.img = imgs[0].Image
		return one, nil
	}
	want := o.platforms
	if want == "" || want == "all" {
		want = "linux/" + runtime.GOARCH
	}
	if strings.Contains(want, ",") {
		return nil, invalid("%s: platforms %s name several images: name one", ref, want)
	}
	wp, err := v1.ParsePlatform(want)
	if err != nil {
		return nil, invalid("platform %q: %v", want, err)
	}
	var names []string
	for _, pi := range imgs {
		p := pi.Descriptor.Platform
		if p == nil {
			continue
		}
		names = append(names, p.String())
		if p.OS == wp.OS && p.Architecture == wp.Architecture && (wp.Variant == "" || p.Variant == wp.Variant) {
			one.img = pi.Image
			return one, nil
		}
	}
	return nil, invalid("%s is an index of %d images (%s) and none is %s: choose one with the platform", ref, len(imgs), strings.Join(names, ", "), want)
}
