package main

import (
	"errors"

	"github.com/coldstart-dev/coldstart"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/spf13/cobra"
)

// errVerifyFailed makes verify exit 1 after printing the differences.
var errVerifyFailed = errors.New("images differ")

func newVerify(g *globals) *cobra.Command {
	var platform, format, tmpDir string
	c := &cobra.Command{
		Use:     "verify SRC DST",
		Short:   "Check that DST shows a container what SRC shows, and that its lazy layers verify",
		Long:    verifyLong,
		Example: verifyExample,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format, optimize.FormatText, optimize.FormatJSON); err != nil {
				return err
			}
			opts, err := g.options()
			if err != nil {
				return err
			}
			opts = append(opts, coldstart.WithTempDir(tmpDir))
			if platform != "" {
				opts = append(opts, coldstart.WithPlatforms(platform))
			}
			v, err := coldstart.Verify(cmd.Context(), args[0], args[1], opts...)
			if err != nil {
				return err
			}
			if err := v.Write(g.stdout, format); err != nil {
				return err
			}
			if !v.OK {
				return errVerifyFailed
			}
			return nil
		},
	}
	c.Flags().StringVar(&platform, "platform", "all", "platforms to compare: all, OS/ARCH[/VARIANT] or a list")
	c.Flags().StringVar(&format, "format", "text", "output format: text or json")
	c.Flags().StringVar(&tmpDir, "tmpdir", "", "directory for temporary files")
	return c
}
