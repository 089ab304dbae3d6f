package main

import (
	"context"
	"strings"

	"github.com/coldstart-dev/coldstart"
	"github.com/coldstart-dev/coldstart/optimize/report"
	"github.com/spf13/cobra"
)

type reportFlags struct {
	profile, platform, compare, shape, format, tmpDir string
	cached, bases, networks, budgets                  []string
	measure, calibrate                                bool
	top                                               int
	previous, rates                                   string
}

func newReport(g *globals) *cobra.Command {
	f := &reportFlags{}
	c := &cobra.Command{
		Use:     "report IMAGE",
		Short:   "Estimate (and measure) what a cold start of an image costs",
		Long:    reportLong,
		Example: reportExample,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd.Context(), g)
			if err != nil {
				return err
			}
			if f.compare != "" {
				return runCompare(cmd.Context(), g, f.format, args[0], f.compare, opts)
			}
			r, err := coldstart.Report(cmd.Context(), args[0], opts...)
			if err != nil {
				return err
			}
			if err := r.Write(g.stdout, f.format); err != nil {
				return err
			}
			return r.CheckBudgets()
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.profile, "profile", "static", `start-up files: "static" or a FILE (profile JSON, record-out JSON lines, or a path list)`)
	fl.StringVar(&f.platform, "platform", "", "the image of a multi-platform index: OS/ARCH[/VARIANT] (default: linux on this machine's architecture)")
	fl.StringSliceVar(&f.cached, "cached", nil, "digest of a layer the node holds (repeatable, or comma-separated)")
	fl.StringSliceVar(&f.bases, "base", nil, "image whose layers the node holds (repeatable, or comma-separated)")
	fl.StringArrayVar(&f.networks, "network", nil, "network to estimate: datacenter, cloud, edge or RATE,RTT (repeatable; default: the three named)")
	fl.StringVar(&f.previous, "previous", "", "an earlier version of IMAGE that the node holds (its layers, and for podman's partial pull its files)")
	fl.StringVar(&f.compare, "compare", "", "a second image to put beside IMAGE")
	_ = fl.MarkDeprecated("compare", "use 'coldstart compare IMAGE IMAGE2'")
	fl.BoolVar(&f.measure, "measure", false, "also measure a real full pull and lazy start from the registry")
	fl.StringVar(&f.shape, "shape", "", "with --measure: shape the connection to RATE,RTT (e.g. 100Mbit,50ms)")
	fl.BoolVar(&f.calibrate, "calibrate", false, "measure this machine's decompression and unpack rates first (a few seconds)")
	fl.StringVar(&f.rates, "rates", "", "take the model's rates from this JSON FILE (a report's \"rates\", or a node's that benchmarks/realstack measured); --calibrate then measures this machine's on top")
	fl.StringArrayVar(&f.budgets, "budget", nil, "NETWORK=SECONDS: fail when the lazy start estimate exceeds it (repeatable)")
	fl.StringVar(&f.format, "format", "text", "output format: "+strings.Join(report.Formats, ", "))
	fl.IntVar(&f.top, "top", report.DefaultTopFiles, "how many costly start-up files to list")
	fl.StringVar(&f.tmpDir, "tmpdir", "", "directory for temporary files (default: the system's)")
	return c
}

// options turns the flags into the facade's options.
func (f *reportFlags) options(ctx context.Context, g *globals) ([]coldstart.Option, error) {
	if err := checkFormat(f.format, report.Formats...); err != nil {
		return nil, err
	}
	if f.shape != "" && !f.measure {
		return nil, usageErr("--shape needs --measure")
	}
	if f.measure && f.compare != "" {
		return nil, usageErr("--measure and --compare cannot be combined: measure each image on its own")
	}
	if f.top < 0 {
		return nil, usageErr("--top must not be negative")
	}
	opts, err := g.options()
	if err != nil {
		return nil, err
	}
	ro := []report.Option{report.WithTopFiles(f.top)}
	if f.profile != "static" && f.profile != "" {
		p, err := profileFile(f.profile)
		if err != nil {
			return nil, err
		}
		ro = append(ro, report.WithProfiler(p))
	}
	cached, err := digests("cached", f.cached)
	if err != nil {
		return nil, err
	}
	if len(cached) > 0 {
		ro = append(ro, report.WithCachedLayers(cached...))
	}
	nets, err := networks(f.networks)
	if err != nil {
		return nil, err
	}
	if len(nets) > 0 {
		ro = append(ro, report.WithNetworks(nets...))
	}
	for _, s := range f.budgets {
		b, err := report.ParseBudget(s)
		if err != nil {
			// The error names the budget ("budget \"edge\": ..."): say
			// it is the flag's.
			return nil, usageErr("--%v", err)
		}
		ro = append(ro, report.WithBudget(b.Network, b.Seconds))
	}
	if f.shape != "" {
		n, err := report.ParseNetwork(f.shape)
		if err != nil {
			return nil, usageErr("--shape: %v", err)
		}
		ro = append(ro, report.WithShaping(n))
	}
	rates, err := ratesFlag(f.rates)
	if err != nil {
		return nil, err
	}
	if f.calibrate {
		g.note("calibrating this machine's decompression and unpack rates...")
		if rates, err = report.Calibrate(ctx, report.WithRates(rates), report.WithLogger(g.logger()), report.WithTempDir(f.tmpDir)); err != nil {
			return nil, err
		}
	}
	ro = append(ro, report.WithRates(rates))
	opts = append(opts, coldstart.WithTempDir(f.tmpDir), coldstart.WithBases(f.bases...),
		coldstart.WithMeasure(f.measure), coldstart.WithReportOptions(ro...))
	if f.platform != "" {
		opts = append(opts, coldstart.WithPlatforms(f.platform))
	}
	if f.previous != "" {
		opts = append(opts, coldstart.WithPrevious(f.previous))
	}
	return opts, nil
}
