package optimize

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/internal/funcopt"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Option configures every function of the package.
type Option func(*options) error

type options struct {
	concurrency  int
	logger       *slog.Logger
	indexOptions []layers.Option

	encode       layers.EncodeOptions
	dedupe       bool
	force        bool
	basePolicy   BasePolicy
	baseImages   []v1.Image
	baseLayers   map[v1.Hash]bool
	inferBase    bool
	cachedLayers map[v1.Hash]bool
	prioritized  []string
	profiler     profile.Profiler
	tempDir      string
	progress     func(Progress)
	cache        cache.Cache
	networks     []report.Network
	rates        report.Rates
	estimate     bool
	sparseLimit  int64
	// formatSet says WithFormat was given; without it the layers above a
	// recompressed base follow the base's format (pipeline.withTopFormat).
	formatSet    bool
	startupLevel int
	// mem is the conversion cache as the optimizer uses it.
	mem *memory
}

// BasePolicy says what happens to the layers of the base images.
type BasePolicy int

// Base policies.
const (
	// BaseAuto picks BaseKeep, BaseConvert or (for containerd targets)
	// BaseRecompress by their estimated start on the networks of
	// WithNetworks, on nodes with the base and without it, and says why in
	// the result.
	BaseAuto BasePolicy = iota
	// BaseKeep leaves base layers byte-identical, so nodes that hold the
	// base keep using it. On a node without it, containerd pulls a non-lazy
	// layer whole before the start.
	BaseKeep
	// BaseConvert converts base layers as they are (no dedupe),
	// deterministically, so every image on the same base gets the same
	// converted base layers, which nodes then share. Unless profiling is
	// off, what every dynamically linked program on the base reads first
	// (the loader, its cache and the C library that /bin/sh loads, found
	// from the base alone) goes first, behind a prefetch landmark.
	BaseConvert
	// BaseRecompress recompresses base layers into
	// layers.FormatZstdChunkedContainerd and changes nothing else: each
	// layer's tar stream stays byte for byte, and so its DiffID and the
	// chain ID containerd names its snapshot by. A containerd node that
	// holds the base (from the original image or any other on it) reuses
	// its snapshot and fetches none of it; stargz-snapshotter mounts it
	// lazily on a node without it and prefetches the image's start-up
	// files it holds: their data is copied, compressed, into a zstd
	// skippable frame ahead of the stream (layers.EncodeOptions.KeepOrder),
	// which decompressors skip. The blob grows by those copies and differs
	// from image to image with the files each reads; the DiffID, which is
	// what nodes share, does not. Without profiling nothing is copied, and
	// the blob is the same under every image on the base. For containerd
	// only, with an eStargz target: podman pulls such a layer whole. A layer whose stream cannot be kept (say, it repeats
	// a name, which a TOC cannot hold), that holds a hard link to a file
	// of a lower layer (which a lazy puller cannot resolve), that writes
	// into a directory it has no entry for (a lazy puller would make one
	// up, 0755, over the directory below), or that writes through a
	// symlinked directory (the stream must keep the name), is kept
	// byte-identical instead, and the result says so.
	BaseRecompress
)

func (p BasePolicy) String() string {
	switch p {
	case BaseKeep:
		return "keep"
	case BaseConvert:
		return "convert"
	case BaseRecompress:
		return "recompress"
	}
	return "auto"
}

// ParseBasePolicy parses "auto", "keep", "convert" or "recompress".
func ParseBasePolicy(s string) (BasePolicy, error) {
	switch s {
	case "auto", "":
		return BaseAuto, nil
	case "keep":
		return BaseKeep, nil
	case "convert":
		return BaseConvert, nil
	case "recompress":
		return BaseRecompress, nil
	}
	return 0, fmt.Errorf("unknown base policy %q: use keep, convert, recompress or auto", s)
}

// DefaultConcurrency is how many layers are read or converted at once by
// default.
const DefaultConcurrency = 3

func makeOptions(opts []Option) (*options, error) {
	o := &options{
		concurrency:  DefaultConcurrency,
		logger:       slog.New(slog.DiscardHandler),
		dedupe:       true,
		profiler:     profile.StaticProfiler(),
		networks:     report.DefaultNetworks(),
		rates:        report.DefaultRates,
		sparseLimit:  DefaultSparseLimit,
		baseLayers:   map[v1.Hash]bool{},
		cachedLayers: map[v1.Hash]bool{},
		inferBase:    true,
	}
	if _, err := funcopt.Apply(o, opts); err != nil {
		return nil, err
	}
	if o.startupLevel > layers.FormatZstd.MaxLevel() || o.formatSet && o.startupLevel > o.encode.Format.MaxLevel() {
		return nil, fmt.Errorf("start-up level %d out of range: 1-22 for the zstd formats, 1-9 for the gzip ones (eStargz, gzip)", o.startupLevel)
	}
	if o.basePolicy == BaseRecompress && o.encode.Format != layers.FormatEStargz && o.encode.Format != layers.FormatZstdChunkedContainerd {
		return nil, fmt.Errorf("base policy recompress makes zstd:chunked layers that only containerd's stargz-snapshotter mounts lazily: it needs the estargz or zstd:chunked-containerd format, not %s", o.encode.Format)
	}
	o.indexOptions = append(o.indexOptions, layers.WithLogger(o.logger))
	o.mem = &memory{c: o.cache, logger: o.logger}
	return o, nil
}

// WithConcurrency sets how many layers are read or converted at once. The
// default is DefaultConcurrency (3, as containerd downloads). Output never
// depends on it.
func WithConcurrency(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("concurrency must be at least 1, got %d", n)
		}
		o.concurrency = n
		return nil
	}
}

// WithLogger sets the logger. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithIndexOptions passes options to layers.IndexLayer, such as limits on
// entries and uncompressed size. The default is layers' defaults.
func WithIndexOptions(opts ...layers.Option) Option {
	return func(o *options) error {
		o.indexOptions = append(o.indexOptions, opts...)
		return nil
	}
}

// index indexes l, whose DiffID the image config says is diffID, or takes
// its index from the cache; image is the digest of the image it is read for.
func (o *pipeline) index(ctx context.Context, l v1.Layer, diffID v1.Hash, image string) (*layers.Index, error) {
	if idx, key := o.mem.cachedIndex(ctx, l, diffID); idx != nil {
		return idx, nil
	} else if key != "" {
		idx, err := layers.IndexLayer(ctx, l, o.indexOptions...)
		if err != nil {
			return nil, err
		}
		o.mem.storeIndex(ctx, key, idx, cache.Origin{Image: image, Layer: idx.Digest.String()})
		return idx, nil
	}
	return layers.IndexLayer(ctx, l, o.indexOptions...)
}

// WithCache sets the conversion cache: converted layers, layer indexes and
// start-up profiles are looked up there first and stored there after, and
// so is a record of each optimized image (keyed by its digest and the
// options), which lets the same image with the same options be rebuilt from
// the cached layers without reading its own; a record is used only when the
// rebuilt image has the recorded digest. The default is no cache.
func WithCache(c cache.Cache) Option {
	return func(o *options) error {
		o.cache = c
		return nil
	}
}

// WithFormat sets the encoding of converted layers. Without it they are
// eStargz, but when the base is recompressed (BaseRecompress, which
// BaseAuto may pick), the layers above it are
// layers.FormatZstdChunkedContainerd: the image then needs zstd and
// stargz-snapshotter for lazy pulls anyway, and zstd frames are smaller
// than gzip members, so a start fetches fewer bytes.
func WithFormat(f layers.Format) Option {
	return func(o *options) error {
		o.encode.Format = f
		o.formatSet = true
		return nil
	}
}

// DefaultZstdStartupLevel is the zstd level of the start-up files in the
// zstd formats by default (WithStartupLevel): klauspost/compress's
// "better" encoder. Its strongest (levels 10 to 22) makes node's start-up
// bytes 4% smaller still, but each of its encoders holds 32 MiB of match
// tables, which took the conversion's peak RSS from 253 to 337 MiB.
const DefaultZstdStartupLevel = 7

// WithStartupLevel sets the compression level of the files a container
// reads at start, in the lazy formats: the prioritized ones, and the
// large ones read in part (WithSparseLimit). Every cold start fetches
// them and no start fetches the rest, so a stronger level there saves
// bytes on every start for conversion time spent once. The default, 0, is
// DefaultZstdStartupLevel in the zstd formats and WithLevel's level in the
// gzip ones, where level 9 saves under 1% over the default. Levels are
// zstd's 1-22 or gzip's 1-9 as WithLevel's; without WithFormat, a level
// past 9 is 9 in the layers that stay eStargz.
func WithStartupLevel(level int) Option {
	return func(o *options) error {
		if level < 0 {
			return fmt.Errorf("start-up level must not be negative, got %d", level)
		}
		o.startupLevel = level
		return nil
	}
}

// startupLevelFor is layers.EncodeOptions.StartupLevel for format f. Under
// the default format a level past gzip's strongest is gzip's strongest in
// the eStargz layers.
func (o *options) startupLevelFor(f layers.Format) int {
	if o.startupLevel == 0 && f.Zstd() && f.Lazy() {
		return DefaultZstdStartupLevel
	}
	return min(o.startupLevel, f.MaxLevel())
}

// WithLevel sets the compression level (1-9 for gzip formats, 1-22 for
// zstd formats). The default, 0, is the format's default level
// (layers.DefaultGzipLevel, layers.DefaultZstdLevel).
func WithLevel(level int) Option {
	return func(o *options) error {
		o.encode.Level = level
		return nil
	}
}

// WithChunkSize sets the largest piece of a file one compressed chunk holds
// in the lazy formats. The default is layers.DefaultChunkSize (4 MiB).
func WithChunkSize(n int) Option {
	return func(o *options) error {
		o.encode.ChunkSize = n
		return nil
	}
}

// WithDedupe turns dropping what no container sees on or off. The default is
// on.
func WithDedupe(on bool) Option {
	return func(o *options) error {
		o.dedupe = on
		return nil
	}
}

// WithForce converts layers that are already eStargz or zstd:chunked too.
// The default keeps them byte-identical.
func WithForce(on bool) Option {
	return func(o *options) error {
		o.force = on
		return nil
	}
}

// WithInferredBase says whether an image optimized without WithBaseImage
// has its first layer taken for its base's when its manifest names the
// image it was built on (the OCI annotations
// org.opencontainers.image.base.digest and .name, which buildah and
// BuildKit write): that layer is then a base layer, treated as
// WithBasePolicy says, unless it is lazy already, foreign or cached. An
// image built on another has at least that layer of it, and it is the one
// nodes most often hold: the operating system. Default on.
func WithInferredBase(on bool) Option {
	return func(o *options) error {
		o.inferBase = on
		return nil
	}
}

// WithBaseImage marks every layer of imgs as a base layer, treated as
// WithBasePolicy says. The default is no base image (but see
// WithInferredBase).
func WithBaseImage(imgs ...v1.Image) Option {
	return func(o *options) error {
		for _, img := range imgs {
			if img == nil {
				return errors.New("nil base image")
			}
		}
		o.baseImages = append(o.baseImages, imgs...)
		return nil
	}
}

// WithBasePolicy sets what happens to base layers. The default is BaseAuto.
func WithBasePolicy(p BasePolicy) Option {
	return func(o *options) error {
		if p < BaseAuto || p > BaseRecompress {
			return fmt.Errorf("unknown base policy %d", p)
		}
		o.basePolicy = p
		return nil
	}
}

// WithCachedLayers marks layers (by compressed digest) that nodes already
// hold: they stay byte-identical. The default is none.
func WithCachedLayers(digests ...v1.Hash) Option {
	return func(o *options) error {
		for _, d := range digests {
			o.cachedLayers[d] = true
		}
		return nil
	}
}

// WithPrioritizedFiles sets the files every image reads at start-up,
// absolute paths in access order; they are resolved through the image's
// symlinks and put first in the layers that provide them. The default is
// none (or what WithProfiler returns).
func WithPrioritizedFiles(paths []string) Option {
	return func(o *options) error {
		o.prioritized = append([]string(nil), paths...)
		return nil
	}
}

// WithProfiler sets the profiler that finds each image's start-up files,
// used when WithPrioritizedFiles is not given: profile.StaticProfiler,
// profile.ReadFile, or one of the caller's. Its Name keys the cached
// profiles and the options fingerprint. The default is
// profile.StaticProfiler(); nil turns profiling off.
func WithProfiler(p profile.Profiler) Option {
	return func(o *options) error {
		o.profiler = p
		return nil
	}
}

// DefaultSparseLimit is WithSparseLimit's default.
const DefaultSparseLimit = 8 << 20

// WithSparseLimit leaves start-up files larger than n bytes that programs
// read in part, through mmap (shared objects, the JDK's class image), out of
// the prefetch section: a start fetches the chunks it touches on demand
// instead of the whole file (on the real stack the JVM bench image's start
// fetched 36 MB so, against 60 MB with them prefetched). 0 prefetches every
// start-up file. The default is DefaultSparseLimit (8 MiB).
func WithSparseLimit(n int64) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("sparse limit must not be negative, got %d", n)
		}
		o.sparseLimit = n
		return nil
	}
}

// WithNetworks sets the networks BaseAuto weighs the base policies on.
// The default is report.DefaultNetworks (datacenter, cloud, edge).
func WithNetworks(nets ...report.Network) Option {
	return func(o *options) error {
		if len(nets) == 0 {
			return errors.New("no networks given")
		}
		o.networks = nets
		return nil
	}
}

// WithRates sets the cost model's rates that BaseAuto weighs the base
// policies with and the before/after comparison estimates with (for
// example a node's, read with report.ReadRatesFile). The default is
// report.DefaultRates.
func WithRates(r report.Rates) Option {
	return func(o *options) error {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("rates: %w", err)
		}
		o.rates = r
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

// WithProgress sets a callback for the progress of each layer: read and
// indexed (PhasePull), encoded (PhaseConvert); see Progress. It may be
// called from several goroutines at once. The default is none.
func WithProgress(fn func(Progress)) Option {
	return func(o *options) error {
		o.progress = fn
		return nil
	}
}

// resolveBases reads the layer digests of the base images.
func (o *pipeline) resolveBases(ctx context.Context) error {
	for i, img := range o.baseImages {
		ls, err := img.Layers()
		if err != nil {
			return fmt.Errorf("base image %d: listing layers: %w", i, err)
		}
		for _, l := range ls {
			if err := ctx.Err(); err != nil {
				return err
			}
			d, err := l.Digest()
			if err != nil {
				return fmt.Errorf("base image %d: %w", i, err)
			}
			o.baseLayers[d] = true
		}
	}
	return nil
}

// startupFiles returns the prioritized files for img, and the profile's
// warnings.
func (o *pipeline) startupFiles(ctx context.Context, img v1.Image, fsys profile.FS) ([]string, []string, error) {
	if o.prioritized != nil || o.profiler == nil {
		return o.prioritized, nil, nil
	}
	key, cacheable := o.profileKey(img)
	if cacheable {
		if p := o.mem.cachedProfile(ctx, key); p != nil {
			return p.Files, p.Warnings, nil
		}
	}
	p, err := o.profiler.Profile(ctx, img, fsys)
	if err != nil {
		return nil, nil, fmt.Errorf("profiling start-up files: %w", err)
	}
	if cacheable {
		from := cache.Origin{}
		if d, err := img.Digest(); err == nil {
			from.Image = d.String()
		}
		o.mem.storeProfile(ctx, key, p, from)
	}
	return p.Files, p.Warnings, nil
}

// annotations returns the manifest annotations of an optimized image.
func (o *options) annotations() map[string]string {
	return map[string]string{AnnotationFormat: o.encode.Format.String(), AnnotationOptions: o.fingerprint()}
}

// AnnotationFormat is set on the manifest of every optimized image: the
// layer format it was converted to.
const AnnotationFormat = "dev.coldstart.format"

// profiling says whether start-up files are put first: a profiler or
// WithPrioritizedFiles gives them.
func (o *options) profiling() bool { return o.profiler != nil || o.prioritized != nil }
