package main

import (
	"errors"
	"fmt"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/spf13/cobra"
)

func newAnalyze(g *globals) *cobra.Command {
	var platform, format string
	c := &cobra.Command{
		Use:   "analyze IMAGE",
		Short: "Show an image's layers and the bytes no container sees",
		Long: `analyze indexes every layer of IMAGE and reports, per layer, its digest,
media type, sizes, file count, lazy format and wasted bytes: regular files that
a later layer overwrote, deleted or hid. For a multi-platform index give
--platform OS/ARCH or --platform all.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := optimize.CheckFormat(format, optimize.FormatText, optimize.FormatJSON, optimize.FormatMarkdown); err != nil {
				return errors.Join(errUsage, err)
			}
			ref, err := imageref.Parse(args[0])
			if err != nil {
				return errors.Join(errUsage, err)
			}
			ropts, err := g.refOptions(platform)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			art, err := imageref.Read(ctx, ref, ropts...)
			if err != nil {
				return err
			}
			opts, err := g.limits()
			if err != nil {
				return err
			}
			if art.Index != nil {
				res, err := optimize.AnalyzeIndex(ctx, art.Index, opts...)
				if err != nil {
					return fmt.Errorf("analyzing %s: %w", ref, err)
				}
				return res.Write(g.stdout, format)
			}
			res, err := optimize.Analyze(ctx, art.Image, opts...)
			if err != nil {
				return fmt.Errorf("analyzing %s: %w", ref, err)
			}
			return res.Write(g.stdout, format)
		},
	}
	c.Flags().StringVar(&platform, "platform", "", "platforms of an index to analyze: OS/ARCH[/VARIANT], a comma-separated list, or all (default: all)")
	c.Flags().StringVar(&format, "format", "text", "output format: text, json or markdown")
	return c
}
