package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/internal/units"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
)

type optimizeFlags struct {
	to, platform, format, report, prioritize, profile, basePolicy, tmpDir, cacheDir, cacheRef, cacheMax string
	level, chunkSize, concurrency                                                                       int
	bases, cached, networks                                                                             []string
	noDedupe, force, overwrite, noCache, compare                                                        bool
}

func newOptimize(g *globals) *cobra.Command {
	f := &optimizeFlags{}
	c := &cobra.Command{
		Use:   "optimize SRC DST",
		Short: "Dedupe, reorder and re-encode an image as lazy-pullable layers",
		Long: `optimize reads SRC, drops what no container sees, puts start-up files first,
re-encodes the layers as eStargz (or zstd:chunked, gzip, zstd) and writes DST.
Layers nodes already hold (--base images, --cached digests, layers that are
already lazy) stay byte-identical. DST is complete or untouched: blobs are
written before manifests, the index last.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runOptimize(cmd, g, f, args[0], args[1])
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.to, "to", "estargz", "layer format: estargz, zstdchunked, gzip or zstd")
	fl.IntVar(&f.level, "level", 0, "compression level (0: the format's default)")
	fl.IntVar(&f.chunkSize, "chunk-size", 0, "largest file chunk in the lazy formats, in bytes (0: 4 MiB)")
	fl.StringVar(&f.profile, "profile", "static", "start-up files to put first: static (predicted from the image), none, or a FILE (profile JSON, ctr-remote record, or a path list)")
	fl.StringVar(&f.prioritize, "prioritize", "", "file listing start-up paths, one per line, in access order (same as --profile FILE)")
	fl.StringSliceVar(&f.bases, "base", nil, "base image whose layers nodes hold (repeatable)")
	fl.StringVar(&f.basePolicy, "base-policy", "auto", "what to do with base layers: keep, convert, or auto (picks by the estimated start on --network, cold and warm nodes)")
	fl.StringArrayVar(&f.networks, "network", nil, "network auto weighs on: datacenter, cloud, edge or RATE,RTT (repeatable; default all three)")
	fl.StringSliceVar(&f.cached, "cached", nil, "digest of a layer nodes hold, kept byte-identical (repeatable)")
	fl.BoolVar(&f.noDedupe, "no-dedupe", false, "keep entries no container sees")
	fl.BoolVar(&f.force, "force", false, "convert layers that are already eStargz or zstd:chunked too")
	fl.StringVar(&f.platform, "platform", "all", "platforms to optimize: all, OS/ARCH[/VARIANT] or a comma-separated list")
	fl.StringVar(&f.format, "format", "text", "summary format: text, json or markdown")
	fl.StringVar(&f.report, "report", "", "write the before/after cold-start comparison to this file (format from the extension: .json, .md, .svg, .html, else text)")
	fl.BoolVar(&f.overwrite, "overwrite", false, "allow DST to be the same as SRC")
	fl.IntVar(&f.concurrency, "concurrency", optimize.DefaultConcurrency, "layers converted at once")
	fl.StringVar(&f.tmpDir, "tmpdir", "", "directory for temporary files (default: the system's)")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "conversion cache directory (default: $XDG_CACHE_HOME/coldstart)")
	fl.StringVar(&f.cacheMax, "cache-max-size", "10GiB", "evict the least recently used cache entries past this size")
	fl.StringVar(&f.cacheRef, "cache-ref", "", "share the conversion cache in a registry: REGISTRY/REPO:TAG (instead of the directory)")
	fl.BoolVar(&f.noCache, "no-cache", false, "neither read nor write the conversion cache")
	fl.BoolVar(&f.compare, "compare", true, "estimate the cold-start cost before and after and print the comparison (reads every layer of both images again)")
	return c
}

func runOptimize(cmd *cobra.Command, g *globals, f *optimizeFlags, srcArg, dstArg string) error {
	if err := optimize.CheckFormat(f.format, optimize.FormatText, optimize.FormatJSON, optimize.FormatMarkdown); err != nil {
		return errors.Join(errUsage, err)
	}
	format, err := layers.ParseFormat(f.to)
	if err != nil {
		return errors.Join(errUsage, err)
	}
	policy, err := optimize.ParseBasePolicy(f.basePolicy)
	if err != nil {
		return errors.Join(errUsage, err)
	}
	src, err := imageref.Parse(srcArg)
	if err != nil {
		return errors.Join(errUsage, err)
	}
	dst, err := imageref.Parse(dstArg)
	if err != nil {
		return errors.Join(errUsage, err)
	}
	if imageref.SameDestination(src, dst) && !f.overwrite {
		return errors.Join(errUsage, fmt.Errorf("DST %s is SRC: give --overwrite to replace it (the old image stays until the new one is complete)", dst))
	}
	ropts, err := g.refOptions(f.platform)
	if err != nil {
		return err
	}
	opts, err := g.limits()
	if err != nil {
		return err
	}
	opts = append(opts,
		optimize.WithFormat(format),
		optimize.WithLevel(f.level),
		optimize.WithChunkSize(f.chunkSize),
		optimize.WithDedupe(!f.noDedupe),
		optimize.WithForce(f.force),
		optimize.WithBasePolicy(policy),
		optimize.WithConcurrency(f.concurrency),
		optimize.WithTempDir(f.tmpDir),
	)
	for _, d := range f.cached {
		h, err := v1.NewHash(d)
		if err != nil {
			return errors.Join(errUsage, fmt.Errorf("--cached %q: %w", d, err))
		}
		opts = append(opts, optimize.WithCachedLayers(h))
	}
	if len(f.networks) > 0 {
		var nets []report.Network
		for _, n := range f.networks {
			nw, err := report.ParseNetwork(n)
			if err != nil {
				return errors.Join(errUsage, fmt.Errorf("--network: %w", err))
			}
			nets = append(nets, nw)
		}
		opts = append(opts, optimize.WithNetworks(nets...))
	}
	if c, err := f.openCache(g); err != nil {
		return err
	} else if c != nil {
		opts = append(opts, optimize.WithCache(c))
	}
	if f.prioritize != "" {
		f.profile = f.prioritize
	}
	switch f.profile {
	case "static":
		opts = append(opts, optimize.WithProfiler(profile.StaticProfiler()))
	case "none", "":
		opts = append(opts, optimize.WithProfiler(nil))
	case "run":
		return errors.Join(errUsage, errors.New("--profile run: record a profile with 'coldstart profile --mode run IMAGE --out FILE' and pass --profile FILE"))
	default:
		p, err := profile.ReadFile(f.profile)
		if err != nil {
			return errors.Join(errUsage, fmt.Errorf("--profile: %w", err))
		}
		opts = append(opts, optimize.WithProfiler(p))
	}
	ctx := cmd.Context()
	bases, err := readBases(ctx, f.bases, ropts)
	if err != nil {
		return err
	}
	opts = append(opts, optimize.WithBaseImage(bases...))
	art, err := imageref.Read(ctx, src, ropts...)
	if err != nil {
		return err
	}
	bars := g.progress()
	if bars != nil {
		opts = append(opts, optimize.WithProgress(bars.update))
	}
	var in any = art.Image
	if art.Index != nil {
		in = art.Index
	}
	res, err := optimize.Optimize(ctx, in, opts...)
	if bars != nil {
		bars.wait()
	}
	if err != nil {
		return fmt.Errorf("optimizing %s: %w", src, err)
	}
	defer res.Close()
	out := &imageref.Artifact{Image: res.Image, Index: res.Index}
	if err := imageref.Write(ctx, dst, out, imageref.WithInsecure(g.insecure), imageref.WithLogger(g.logger())); err != nil {
		return err
	}
	if dst.Transport == imageref.TransportDockerArchive && format.Lazy() {
		// docker save's format has no layer descriptors to annotate.
		fmt.Fprintf(g.stderr, "coldstart: warning: a docker archive drops layer annotations: the %s layers of %s lose the TOC digest their lazy puller verifies; optimizing the image again (after docker load and push) puts it back\n", format, dst)
	}
	if err := res.Write(g.stdout, f.format); err != nil {
		return err
	}
	if !f.compare && f.report == "" {
		return nil
	}
	cmps, err := compareBeforeAfter(ctx, art, res)
	if err != nil {
		// The image is written; the comparison is a bonus.
		fmt.Fprintf(g.stderr, "coldstart: before/after comparison: %v\n", err)
		return nil
	}
	if f.format == optimize.FormatText {
		for _, c := range cmps {
			fmt.Fprintln(g.stdout)
			if err := c.Write(g.stdout, report.FormatText); err != nil {
				return err
			}
		}
	}
	if f.report != "" {
		return writeReportFile(f.report, cmps)
	}
	return nil
}

// compareBeforeAfter estimates the cold-start cost of every input image and
// its output, platform by platform.
func compareBeforeAfter(ctx context.Context, in *imageref.Artifact, res *optimize.Result) ([]*report.Comparison, error) {
	var before, after []v1.Image
	if in.Index != nil {
		bi, err := optimize.IndexImages(ctx, in.Index)
		if err != nil {
			return nil, err
		}
		ai, err := optimize.IndexImages(ctx, res.Index)
		if err != nil {
			return nil, err
		}
		if len(bi) != len(ai) {
			return nil, fmt.Errorf("%d images before, %d after", len(bi), len(ai))
		}
		for i := range bi {
			before, after = append(before, bi[i].Image), append(after, ai[i].Image)
		}
	} else {
		before, after = []v1.Image{in.Image}, []v1.Image{res.Image}
	}
	var out []*report.Comparison
	for i := range before {
		c, err := report.Compare(ctx, before[i], after[i])
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// writeReportFile writes the before/after comparison, in the format the
// extension names (.json, .md, .svg, .html, else text), by temp file and
// rename.
func writeReportFile(path string, cmps []*report.Comparison) error {
	format := report.FormatText
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		format = report.FormatJSON
	case ".md", ".markdown":
		format = report.FormatMarkdown
	case ".svg":
		format = report.FormatSVG
	case ".html", ".htm":
		format = report.FormatHTML
	}
	return writeFileAtomic(path, func(w *bufio.Writer) error {
		for _, c := range cmps {
			if err := c.Write(w, format); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeFileAtomic(path string, fill func(*bufio.Writer) error) error {
	dir := "."
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir = path[:i+1]
	}
	tmp, err := os.CreateTemp(dir, ".coldstart-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	if err := fill(w); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// openCache opens the conversion cache the flags name, or none.
func (f *optimizeFlags) openCache(g *globals) (cache.Cache, error) {
	if f.noCache {
		return nil, nil
	}
	if f.cacheRef != "" {
		c, err := cache.NewRegistry(f.cacheRef, cache.WithInsecure(g.insecure), cache.WithLogger(g.logger()))
		if err != nil {
			return nil, errors.Join(errUsage, fmt.Errorf("--cache-ref: %w", err))
		}
		return c, nil
	}
	max, err := units.ParseBytes(f.cacheMax)
	if err != nil {
		return nil, errors.Join(errUsage, fmt.Errorf("--cache-max-size: %w", err))
	}
	dir := f.cacheDir
	if dir == "" {
		if dir, err = cache.DefaultDir(); err != nil {
			return nil, fmt.Errorf("conversion cache: %w (give --cache-dir or --no-cache)", err)
		}
	}
	c, err := cache.NewDir(dir, cache.WithMaxSize(max), cache.WithLogger(g.logger()))
	if err != nil {
		return nil, fmt.Errorf("conversion cache %s: %w", dir, err)
	}
	return c, nil
}

// readBases reads the --base images: every image of an index counts.
func readBases(ctx context.Context, refs []string, ropts []imageref.Option) ([]v1.Image, error) {
	var out []v1.Image
	for _, b := range refs {
		ref, err := imageref.Parse(b)
		if err != nil {
			return nil, errors.Join(errUsage, fmt.Errorf("--base: %w", err))
		}
		art, err := imageref.Read(ctx, ref, ropts...)
		if err != nil {
			return nil, fmt.Errorf("--base: %w", err)
		}
		if art.Index == nil {
			out = append(out, art.Image)
			continue
		}
		imgs, err := optimize.IndexImages(ctx, art.Index)
		if err != nil {
			return nil, fmt.Errorf("--base %s: %w", ref, err)
		}
		for _, pi := range imgs {
			out = append(out, pi.Image)
		}
	}
	return out, nil
}
