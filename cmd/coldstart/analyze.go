package main

import (
	"github.com/coldstart-dev/coldstart"
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
--platform OS/ARCH or --platform all. Text fits the terminal's width
($COLUMNS, or 80 columns, when standard output is not a terminal).`,
		Example: `  coldstart analyze registry.example.com/app:1
  coldstart analyze oci:./app --format json | jq .wastedBytes`,
		Args: exactArgs(1),
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
