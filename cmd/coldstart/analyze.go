package main

import (
	"github.com/coldstart-dev/coldstart"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/spf13/cobra"
)

func newAnalyze(g *globals) *cobra.Command {
	var platform, format string
	c := &cobra.Command{
		Use:     "analyze IMAGE",
		Short:   "Show an image's layers and the bytes no container sees",
		Long:    analyzeLong,
		Example: analyzeExample,
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format, optimize.FormatText, optimize.FormatJSON, optimize.FormatMarkdown); err != nil {
				return err
			}
			opts, err := g.options()
			if err != nil {
				return err
			}
			if platform != "" {
				opts = append(opts, coldstart.WithPlatforms(platform))
			}
			a, err := coldstart.Analyze(cmd.Context(), args[0], opts...)
			if err != nil {
				return err
			}
			if format == optimize.FormatText {
				return a.WriteText(g.stdout, g.width())
			}
			return a.Write(g.stdout, format)
		},
	}
	c.Flags().StringVar(&platform, "platform", "", "platforms of an index to analyze: OS/ARCH[/VARIANT], a comma-separated list, or all (default: all)")
	c.Flags().StringVar(&format, "format", "text", "output format: text, json or markdown")
	return c
}
