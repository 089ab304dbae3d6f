package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/internal/units"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newReport) }

type reportFlags struct {
	profile, platform, compare, shape, format, tmpDir string
	cached, bases, networks, budgets                  []string
	measure, calibrate                                bool
	top                                               int
}

func newReport(g *globals) *cobra.Command {
	f := &reportFlags{}
	c := &cobra.Command{
		Use:   "report IMAGE",
		Short: "Estimate (and measure) what a cold start of an image costs",
		Long: `report says what starting IMAGE costs on a node: bytes, requests and
estimated seconds to ready for a full pull (every layer downloaded, three at a
time, then unpacked), a lazy start (eStargz / zstd:chunked layers mounted from
their TOC, prefetch range, then the start-up files' chunks on demand; from the
first layer that cannot be mounted lazily up, containerd downloads every layer
in full), the lower bound (the TOCs and exactly the start-up files' chunks) and,
when some layer is not lazy yet, an estimate of the lazy start after
optimizing. Networks: datacenter (10 Gbit/s, 1 ms), cloud (1 Gbit/s, 10 ms),
edge (100 Mbit/s, 50 ms) or RATE,RTT such as 200Mbit,20ms.

The start-up files come from --profile: "static" (the default) predicts them
from the entrypoint; a FILE is a profile JSON, the JSON lines of ctr-remote's
--record-out, or a list of paths, one per line.

--measure pulls IMAGE (a registry reference) for real, fully and lazily,
and prints the measured figures beside the prediction; --shape RATE,RTT puts
an in-process proxy with that bandwidth and round-trip time between coldstart
and the registry. --budget NETWORK=SECONDS makes the command fail (exit 1),
after printing the report, when the lazy start estimate on NETWORK exceeds
SECONDS; with --compare the budgets apply to IMAGE2.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReport(cmd.Context(), g, f, args[0])
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.profile, "profile", "static", `start-up files: "static" or a FILE (profile JSON, record-out JSON lines, or a path list)`)
	fl.StringVar(&f.platform, "platform", "", "the image of a multi-platform index: OS/ARCH[/VARIANT] (default: linux on this machine's architecture)")
	fl.StringArrayVar(&f.cached, "cached", nil, "digest of a layer the node holds (repeatable)")
	fl.StringArrayVar(&f.bases, "base", nil, "image whose layers the node holds (repeatable)")
	fl.StringArrayVar(&f.networks, "network", nil, "network to estimate: datacenter, cloud, edge or RATE,RTT (repeatable; default: the three named)")
	fl.StringVar(&f.compare, "compare", "", "a second image to put beside IMAGE, with after/before ratios")
	fl.BoolVar(&f.measure, "measure", false, "also measure a real full pull and lazy start from the registry")
	fl.StringVar(&f.shape, "shape", "", "with --measure: shape the connection to RATE,RTT (e.g. 100Mbit,50ms)")
	fl.BoolVar(&f.calibrate, "calibrate", false, "measure this machine's decompression and unpack rates first (a few seconds)")
	fl.StringArrayVar(&f.budgets, "budget", nil, "NETWORK=SECONDS: fail when the lazy start estimate exceeds it (repeatable)")
	fl.StringVar(&f.format, "format", "text", "output format: "+strings.Join(report.Formats, ", "))
	fl.IntVar(&f.top, "top", report.DefaultTopFiles, "how many costly start-up files to list")
	fl.StringVar(&f.tmpDir, "tmpdir", "", "directory for temporary files (default: the system's)")
	return c
}

func runReport(ctx context.Context, g *globals, f *reportFlags, image string) error {
	if err := report.CheckFormat(f.format); err != nil {
		return errors.Join(errUsage, err)
	}
	if f.shape != "" && !f.measure {
		return errors.Join(errUsage, errors.New("--shape needs --measure"))
	}
	if f.measure && f.compare != "" {
		return errors.Join(errUsage, errors.New("--measure and --compare cannot be combined: measure each image on its own"))
	}
	ref, err := imageref.Parse(image)
	if err != nil {
		return errors.Join(errUsage, err)
	}
	if f.measure && ref.Transport != imageref.TransportRegistry {
		return errors.Join(errUsage, fmt.Errorf("--measure needs a registry image, not %s", ref))
	}
	opts, err := reportOptions(g, f)
	if err != nil {
		return err
	}
	var shaping *report.Network
	if f.shape != "" {
		n, err := report.ParseNetwork(f.shape)
		if err != nil {
			return errors.Join(errUsage, fmt.Errorf("--shape: %w", err))
		}
		shaping = &n
	}
	ropts, err := g.refOptions(f.platform)
	if err != nil {
		return err
	}
	bases, err := readBases(ctx, f.bases, ropts)
	if err != nil {
		return err
	}
	if len(bases) > 0 {
		opts = append(opts, report.WithBaseImage(bases...))
	}
	if f.calibrate {
		fmt.Fprintln(g.stderr, "coldstart: calibrating this machine's decompression and unpack rates...")
		rates, err := report.Calibrate(ctx, report.WithLogger(g.logger()), report.WithTempDir(f.tmpDir))
		if err != nil {
			return err
		}
		opts = append(opts, report.WithRates(rates))
	}
	img, iopts, err := readOne(ctx, ref, f.platform, ropts)
	if err != nil {
		return err
	}
	if f.compare == "" {
		iopts = append(iopts, report.WithImageName(ref.String()))
		if f.measure {
			iopts = append(iopts, report.WithMeasurement(ref.Name), report.WithInsecure(g.insecure))
			if p, ok := platformOf(f.platform); ok {
				iopts = append(iopts, report.WithPlatform(p))
			}
			if shaping != nil {
				iopts = append(iopts, report.WithShaping(*shaping))
			}
		}
		r, err := report.Estimate(ctx, img, append(opts, iopts...)...)
		if err != nil {
			return fmt.Errorf("reporting on %s: %w", ref, err)
		}
		if err := r.Write(g.stdout, f.format); err != nil {
			return err
		}
		return r.CheckBudgets()
	}
	ref2, err := imageref.Parse(f.compare)
	if err != nil {
		return errors.Join(errUsage, fmt.Errorf("--compare: %w", err))
	}
	img2, _, err := readOne(ctx, ref2, f.platform, ropts)
	if err != nil {
		return fmt.Errorf("--compare: %w", err)
	}
	c, err := report.Compare(ctx, img, img2, opts...)
	if err != nil {
		return fmt.Errorf("comparing %s and %s: %w", ref, ref2, err)
	}
	c.Before.Image, c.After.Image = ref.String(), ref2.String()
	if err := c.Write(g.stdout, f.format); err != nil {
		return err
	}
	return c.After.CheckBudgets()
}

// reportOptions turns the flags shared by both images into options.
func reportOptions(g *globals, f *reportFlags) ([]report.Option, error) {
	maxSize, err := units.ParseBytes(g.maxLayerSize)
	if err != nil || maxSize <= 0 {
		return nil, errors.Join(errUsage, fmt.Errorf("--max-layer-size: %v", err))
	}
	if g.maxEntries <= 0 {
		return nil, errors.Join(errUsage, errors.New("--max-entries must be positive"))
	}
	if f.top < 0 {
		return nil, errors.Join(errUsage, errors.New("--top must not be negative"))
	}
	opts := []report.Option{
		report.WithLogger(g.logger()), report.WithTempDir(f.tmpDir), report.WithTopFiles(f.top),
		report.WithIndexOptions(layers.WithMaxSize(maxSize), layers.WithMaxEntries(g.maxEntries)),
	}
	switch f.profile {
	case "static", "":
	default:
		p, err := profile.ReadFile(f.profile)
		if err != nil {
			return nil, errors.Join(errUsage, fmt.Errorf("--profile: %w", err))
		}
		opts = append(opts, report.WithProfiler(p))
	}
	for _, d := range f.cached {
		h, err := v1.NewHash(d)
		if err != nil {
			return nil, errors.Join(errUsage, fmt.Errorf("--cached %q: %w", d, err))
		}
		opts = append(opts, report.WithCachedLayers(h))
	}
	var nets []report.Network
	for _, s := range f.networks {
		n, err := report.ParseNetwork(s)
		if err != nil {
			return nil, errors.Join(errUsage, fmt.Errorf("--network: %w", err))
		}
		nets = append(nets, n)
	}
	if len(nets) > 0 {
		opts = append(opts, report.WithNetworks(nets...))
	}
	for _, s := range f.budgets {
		b, err := report.ParseBudget(s)
		if err != nil {
			return nil, errors.Join(errUsage, fmt.Errorf("--budget: %w", err))
		}
		opts = append(opts, report.WithBudget(b.Network, b.Seconds))
	}
	return opts, nil
}

// readOne reads ref and returns one image: the image itself, or the image
// of an index for the platform asked (default linux on this machine's
// architecture, or the only one), with the option that accounts for the
// index request.
func readOne(ctx context.Context, ref imageref.Ref, platform string, ropts []imageref.Option) (v1.Image, []report.Option, error) {
	art, err := imageref.Read(ctx, ref, ropts...)
	if err != nil {
		return nil, nil, err
	}
	if art.Index == nil {
		return art.Image, nil, nil
	}
	imgs, err := optimize.IndexImages(ctx, art.Index)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ref, err)
	}
	raw, err := art.Index.RawManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ref, err)
	}
	iopts := []report.Option{report.WithIndexManifest(int64(len(raw)))}
	if len(imgs) == 1 {
		return imgs[0].Image, iopts, nil
	}
	want, _ := platformOf(platform)
	var names []string
	for _, pi := range imgs {
		p := pi.Descriptor.Platform
		if p == nil {
			continue
		}
		names = append(names, p.String())
		if p.OS == want.OS && p.Architecture == want.Architecture && (want.Variant == "" || p.Variant == want.Variant) {
			return pi.Image, iopts, nil
		}
	}
	return nil, nil, errors.Join(errUsage, fmt.Errorf("%s is an index of %d images (%s): choose one with --platform", ref, len(imgs), strings.Join(names, ", ")))
}

// platformOf parses --platform; without one it is linux on this machine's
// architecture (ok false).
func platformOf(s string) (v1.Platform, bool) {
	if s == "" || strings.Contains(s, ",") || s == "all" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, false
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, false
	}
	return *p, true
}
