package report

import (
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/coldstart-dev/coldstart/internal/funcopt"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Option configures Estimate, Compare and Calibrate.
type Option func(*options) error

type options struct {
	profile     *profile.Profile
	profiler    profile.Profiler
	held        map[v1.Hash]bool
	baseImages  []v1.Image
	previous    v1.Image
	networks    []Network
	rates       Rates
	concurrency int
	topFiles    int
	name        string
	indexBytes  int64
	budgets     []Budget
	measureRef  string
	platform    *v1.Platform
	shaping     *Network
	insecure    bool
	tempDir     string
	logger      *slog.Logger
	indexOpts   []layers.Option
}

// DefaultTopFiles is how many start-up files a report lists by cost.
const DefaultTopFiles = 10

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		held:        map[v1.Hash]bool{},
		rates:       DefaultRates,
		concurrency: DefaultConcurrency,
		topFiles:    DefaultTopFiles,
		logger:      slog.New(slog.DiscardHandler),
	}
	if _, err := funcopt.Apply(o, opts); err != nil {
		return nil, err
	}
	if o.profile != nil && o.profiler != nil {
		return nil, errors.New("report: WithProfile and WithProfiler are exclusive")
	}
	if o.shaping != nil && o.measureRef == "" {
		return nil, errors.New("report: WithShaping needs WithMeasurement")
	}
	if len(o.networks) == 0 {
		o.networks = DefaultNetworks()
	}
	return o, nil
}

// DefaultConcurrency is how many whole layers a node downloads at once, as
// containerd does; also how many layers are read at once.
const DefaultConcurrency = 3

// WithProfile sets the start-up files. The default is WithProfiler's.
func WithProfile(p *profile.Profile) Option {
	return func(o *options) error {
		if p == nil {
			return errors.New("report: nil profile")
		}
		o.profile = p
		return nil
	}
}

// WithProfiler sets how the start-up files are found, from the image and
// its merged filesystem: profile.StaticProfiler, profile.ReadFile, or one of
// the caller's. The default is profile.StaticProfiler, with WithLogger's
// logger.
func WithProfiler(p profile.Profiler) Option {
	return func(o *options) error {
		if p == nil {
			return errors.New("report: nil profiler")
		}
		o.profiler = p
		return nil
	}
}

// WithCachedLayers marks layers (by compressed digest) that the node
// already holds. The default is none: a cold node.
func WithCachedLayers(digests ...v1.Hash) Option {
	return func(o *options) error {
		for _, d := range digests {
			o.held[d] = true
		}
		return nil
	}
}

// WithBaseImage marks every layer of the base images as held by the node.
// The default is none.
func WithBaseImage(imgs ...v1.Image) Option {
	return func(o *options) error {
		for _, img := range imgs {
			if img == nil {
				return errors.New("report: nil base image")
			}
		}
		o.baseImages = append(o.baseImages, imgs...)
		return nil
	}
}

// WithPrevious names an earlier version of the image that the node holds:
// every layer of it is held (in every scenario), and the files of its
// eStargz and zstd:chunked layers, which a node with partial pulls pulled
// partially, are where a partial pull (PartialPull) copies the files it
// does not fetch, by content digest. It also makes the report show the
// partial pull. The default is none.
func WithPrevious(img v1.Image) Option {
	return func(o *options) error {
		if img == nil {
			return errors.New("report: nil previous image")
		}
		o.previous = img
		return nil
	}
}

// WithNetworks sets the networks to estimate, in order. The default is
// DefaultNetworks (datacenter, cloud, edge).
func WithNetworks(nets ...Network) Option {
	return func(o *options) error {
		for _, n := range nets {
			if n.Name == "" || n.BytesPerSecond < 0 || n.RTT < 0 || math.IsNaN(n.BytesPerSecond) {
				return fmt.Errorf("report: invalid network %+v", n)
			}
		}
		o.networks = append(o.networks, nets...)
		return nil
	}
}

// WithRates sets the node's CPU rates. The default is DefaultRates; see
// Calibrate.
func WithRates(r Rates) Option {
	return func(o *options) error {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("report: rates: %w", err)
		}
		o.rates = r
		return nil
	}
}

// WithConcurrency sets how many whole layers the modelled node downloads
// at once. The default is DefaultConcurrency (3).
func WithConcurrency(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("report: concurrency must be at least 1, got %d", n)
		}
		o.concurrency = n
		return nil
	}
}

// WithTopFiles sets how many start-up files the report lists by cost. The
// default is DefaultTopFiles (10).
func WithTopFiles(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("report: negative file count %d", n)
		}
		o.topFiles = n
		return nil
	}
}

// WithImageName sets the name the report shows for the image. The default
// is none (the digest identifies it).
func WithImageName(s string) Option {
	return func(o *options) error {
		o.name = s
		return nil
	}
}

// WithIndexManifest says the node reaches the image through an index of
// the given size: one more manifest request. The default is a reference to
// the image manifest itself.
func WithIndexManifest(size int64) Option {
	return func(o *options) error {
		if size <= 0 {
			return fmt.Errorf("report: invalid index manifest size %d", size)
		}
		o.indexBytes = size
		return nil
	}
}

// WithBudget adds a budget: the lazy start estimate on n must not exceed
// seconds. n is added to the networks estimated if it is not there. The
// default is no budget.
func WithBudget(n Network, seconds float64) Option {
	return func(o *options) error {
		if !(seconds > 0) || math.IsInf(seconds, 0) {
			return fmt.Errorf("report: budget for %s must be a positive number of seconds, got %g", n.Name, seconds)
		}
		o.budgets = append(o.budgets, Budget{Network: n, Seconds: seconds})
		return nil
	}
}

// WithMeasurement measures a real full pull and a real lazy start of the
// image from the registry reference ref (which must name the image
// estimated) and puts the figures beside the prediction. The default is no
// measurement.
func WithMeasurement(ref string) Option {
	return func(o *options) error {
		if ref == "" {
			return errors.New("report: empty measurement reference")
		}
		o.measureRef = ref
		return nil
	}
}

// WithPlatform selects the image of an index for the measurement. The
// default is the only image, or linux on the running architecture.
func WithPlatform(p v1.Platform) Option {
	return func(o *options) error {
		o.platform = &p
		return nil
	}
}

// WithShaping puts the in-process shaping proxy, set to n, between the
// measuring client and the registry. The default is no shaping.
func WithShaping(n Network) Option {
	return func(o *options) error {
		o.shaping = &n
		return nil
	}
}

// WithInsecure measures over plain HTTP. The default is HTTPS except for
// local registries.
func WithInsecure(on bool) Option {
	return func(o *options) error {
		o.insecure = on
		return nil
	}
}

// WithIndexOptions passes options to the layer indexer, such as limits on
// entries and uncompressed size. The default is the layers package's.
func WithIndexOptions(opts ...layers.Option) Option {
	return func(o *options) error {
		o.indexOpts = append(o.indexOpts, opts...)
		return nil
	}
}

// WithTempDir sets where temporary files go. The default is os.TempDir().
func WithTempDir(dir string) Option {
	return func(o *options) error {
		o.tempDir = dir
		return nil
	}
}

// WithLogger sets the logger. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("report: nil logger")
		}
		o.logger = l
		return nil
	}
}
