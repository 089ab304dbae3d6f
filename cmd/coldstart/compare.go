package main

import (
	"context"
	"strings"

	"github.com/coldstart-dev/coldstart"
	"github.com/coldstart-dev/coldstart/optimize/report"
	"github.com/spf13/cobra"
)

func newCompare(g *globals) *cobra.Command {
	f := &reportFlags{}
	c := &cobra.Command{
		Use:     "compare IMAGE IMAGE2",
		Short:   "Estimate the cold start of two images side by side",
		Long:    compareLong,
		Example: compareExample,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd.Context(), g)
			if err != nil {
				return err
			}
			return runCompare(cmd.Context(), g, f.format, args[0], args[1], opts)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.profile, "profile", "static", `start-up files: "static" or a FILE`)
	fl.StringVar(&f.platform, "platform", "", "the image of a multi-platform index: OS/ARCH[/VARIANT]")
	fl.StringSliceVar(&f.cached, "cached", nil, "digest of a layer the node holds (repeatable, or comma-separated)")
	fl.StringSliceVar(&f.bases, "base", nil, "image whose layers the node holds (repeatable, or comma-separated)")
	fl.StringArrayVar(&f.networks, "network", nil, "network to estimate: datacenter, cloud, edge or RATE,RTT (repeatable)")
	fl.StringArrayVar(&f.budgets, "budget", nil, "NETWORK=SECONDS: fail when IMAGE2's lazy start estimate exceeds it (repeatable)")
	fl.StringVar(&f.format, "format", "text", "output format: "+strings.Join(report.Formats, ", "))
	fl.StringVar(&f.tmpDir, "tmpdir", "", "directory for temporary files (default: the system's)")
	return c
}

func runCompare(ctx context.Context, g *globals, format, before, after string, opts []coldstart.Option) error {
	c, err := coldstart.Compare(ctx, before, after, opts...)
	if err != nil {
		return err
	}
	if err := c.Write(g.stdout, format); err != nil {
		return err
	}
	return c.After.CheckBudgets()
}
