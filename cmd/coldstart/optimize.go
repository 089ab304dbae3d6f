package main

import (
	"github.com/coldstart-dev/coldstart"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/report"
	"github.com/spf13/cobra"
)

type optimizeFlags struct {
	to, platform, format, report, profile, basePolicy, tmpDir, cacheDir, cacheRef, cacheMax, chunkSize string
	sparseLimit, rates                                                                                 string
	level, concurrency, startupLevel                                                                   int
	bases, cached, networks                                                                            []string
	noDedupe, force, overwrite, noCache, compare, inferBase                                            bool
	lazy                                                                                               bool // --to names eStargz or zstd:chunked
}

func newOptimize(g *globals) *cobra.Command {
	f := &optimizeFlags{}
	c := &cobra.Command{
		Use:     "optimize SRC DST",
		Short:   "Dedupe, reorder and re-encode an image as lazy-pullable layers",
		Long:    optimizeLong,
		Example: optimizeExample,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(g)
			if err != nil {
				return err
			}
			bars := g.progress()
			if bars != nil {
				opts = append(opts, coldstart.WithProgress(bars.update))
			}
			res, err := coldstart.Optimize(cmd.Context(), args[0], args[1], opts...)
			if bars != nil {
				bars.wait()
			}
			if err != nil {
				return err
			}
			defer res.Close()
			return f.print(g, res)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.to, "to", "auto", "layer format: auto (estargz, or zstd:chunked-containerd above a base recompressed into it), estargz, zstd:chunked, gzip, zstd or zstd:chunked-containerd (zstd:chunked that stargz-snapshotter mounts lazily; podman pulls it whole)")
	fl.IntVar(&f.level, "level", 0, "compression level (0: the format's default)")
	fl.IntVar(&f.startupLevel, "startup-level", 0, "compression level of the start-up files in the lazy formats (0: 7 for zstd, --level for gzip; gzip takes at most 9)")
	fl.StringVar(&f.chunkSize, "chunk-size", "0", "largest file chunk in the lazy formats, e.g. 4MiB (0: 4 MiB)")
	fl.StringVar(&f.sparseLimit, "sparse-limit", "8MiB", "leave start-up shared objects and JDK class images larger than this out of the prefetch: read in part, their chunks are fetched on demand (0: prefetch every start-up file)")
	fl.StringVar(&f.profile, "profile", "static", "start-up files to put first: static (predicted from the image), none, or a FILE (profile JSON, ctr-remote record, or a path list)")
	fl.StringVar(&f.profile, "prioritize", "static", "same as --profile FILE")
	_ = fl.MarkHidden("prioritize")
	fl.StringSliceVar(&f.bases, "base", nil, "base image whose layers nodes hold (repeatable, or comma-separated)")
	fl.StringVar(&f.basePolicy, "base-policy", "auto", "what to do with base layers: keep, convert, recompress (zstd:chunked for containerd with the tar stream unchanged: nodes holding the base reuse it, others mount it lazily and prefetch its start-up files), or auto (picks by the estimated start on --network, cold and warm nodes)")
	fl.BoolVar(&f.inferBase, "infer-base", true, "without --base, take the first layer for the base's when the image's annotations name its base (org.opencontainers.image.base.digest, as buildah and BuildKit write): nodes that hold it keep using it")
	fl.StringArrayVar(&f.networks, "network", nil, "network to weigh and estimate on: datacenter, cloud, edge or RATE,RTT (repeatable; default all three)")
	fl.StringVar(&f.rates, "rates", "", "weigh and estimate with the model's rates from this JSON FILE (as report --rates)")
	fl.StringSliceVar(&f.cached, "cached", nil, "digest of a layer nodes hold, kept byte-identical (repeatable, or comma-separated)")
	fl.BoolVar(&f.noDedupe, "no-dedupe", false, "keep entries no container sees")
	fl.BoolVar(&f.force, "force", false, "convert layers that are already eStargz or zstd:chunked too")
	fl.StringVar(&f.platform, "platform", "all", "platforms to optimize: all, OS/ARCH[/VARIANT] or a comma-separated list")
	fl.StringVar(&f.format, "format", "text", "summary format: text, json or markdown (each with the before/after estimate)")
	fl.StringVar(&f.report, "report", "", "write the before/after cold-start comparison to this file (format from the extension: .json, .md, .svg, .html, else text)")
	fl.BoolVar(&f.overwrite, "overwrite", false, "allow DST to be the same as SRC")
	fl.IntVar(&f.concurrency, "concurrency", optimize.DefaultConcurrency, "layers converted at once")
	fl.StringVar(&f.tmpDir, "tmpdir", "", "directory for temporary files (default: the system's)")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "conversion cache directory (default: $XDG_CACHE_HOME/coldstart)")
	fl.StringVar(&f.cacheMax, "cache-max-size", "10GiB", "evict the least recently used cache entries past this size")
	fl.StringVar(&f.cacheRef, "cache-ref", "", "share the conversion cache in a registry: REGISTRY/REPO:TAG (instead of the directory)")
	fl.BoolVar(&f.noCache, "no-cache", false, "neither read nor write the conversion cache")
	fl.BoolVar(&f.compare, "compare", true, "estimate the cold-start cost before and after and print the comparison")
	return c
}

// options turns the flags into the facade's options.
func (f *optimizeFlags) options(g *globals) ([]coldstart.Option, error) {
	if err := checkFormat(f.format, optimize.FormatText, optimize.FormatJSON, optimize.FormatMarkdown); err != nil {
		return nil, err
	}
	fo, lazy, err := formatOptions(f.to, f.startupLevel)
	if err != nil {
		return nil, err
	}
	f.lazy = lazy
	po, err := profileOption(f.profile)
	if err != nil {
		return nil, err
	}
	policy, err := optimize.ParseBasePolicy(f.basePolicy)
	if err != nil {
		return nil, usageErr("--base-policy: %v", err)
	}
	chunk, err := size("chunk-size", f.chunkSize)
	if err != nil {
		return nil, err
	}
	sparse, err := size("sparse-limit", f.sparseLimit)
	if err != nil {
		return nil, err
	}
	cached, err := digests("cached", f.cached)
	if err != nil {
		return nil, err
	}
	nets, err := networks(f.networks)
	if err != nil {
		return nil, err
	}
	rates, err := ratesFlag(f.rates)
	if err != nil {
		return nil, err
	}
	opts, err := g.options()
	if err != nil {
		return nil, err
	}
	oo := append(fo, po, optimize.WithRates(rates), optimize.WithLevel(f.level), optimize.WithChunkSize(int(chunk)),
		optimize.WithDedupe(!f.noDedupe), optimize.WithForce(f.force), optimize.WithBasePolicy(policy),
		optimize.WithInferredBase(f.inferBase), optimize.WithConcurrency(f.concurrency), optimize.WithCachedLayers(cached...), optimize.WithSparseLimit(sparse))
	if len(nets) > 0 {
		oo = append(oo, optimize.WithNetworks(nets...))
		opts = append(opts, coldstart.WithReportOptions(report.WithNetworks(nets...)))
	}
	if c, err := f.openCache(g); err != nil {
		return nil, err
	} else if c != nil {
		oo = append(oo, optimize.WithCache(c))
	}
	return append(opts,
		coldstart.WithPlatforms(f.platform), coldstart.WithTempDir(f.tmpDir), coldstart.WithBases(f.bases...),
		coldstart.WithOverwrite(f.overwrite), coldstart.WithCompare(f.compare || f.report != ""),
		coldstart.WithOptimizeOptions(oo...)), nil
}
