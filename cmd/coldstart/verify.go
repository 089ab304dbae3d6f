package main

import (
	"errors"
	"fmt"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/spf13/cobra"
)

// errVerifyFailed makes verify exit 1 after printing the differences.
var errVerifyFailed = errors.New("images differ")

func newVerify(g *globals) *cobra.Command {
	var platform, format, tmpDir string
	c := &cobra.Command{
		Use:   "verify SRC DST",
		Short: "Check that DST has the same merged filesystem as SRC and that its lazy layers verify",
		Long: `verify compares the merged filesystems of SRC and DST, platform by platform
(paths, types, modes, owners, mtimes, link targets, xattrs, content), and
checks every eStargz and zstd:chunked layer of DST: its TOC against the
descriptor's TOC digest and every chunk against the TOC. Exit 0 only when all
holds; otherwise it names the first differences.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := optimize.CheckFormat(format, optimize.FormatText, optimize.FormatJSON); err != nil {
				return errors.Join(errUsage, err)
			}
			ropts, err := g.refOptions(platform)
			if err != nil {
				return err
			}
			var arts [2]any
			for i, a := range args {
				ref, err := imageref.Parse(a)
				if err != nil {
					return errors.Join(errUsage, err)
				}
				art, err := imageref.Read(cmd.Context(), ref, ropts...)
				if err != nil {
					return err
				}
				arts[i] = art.Image
				if art.Index != nil {
					arts[i] = art.Index
				}
			}
			opts, err := g.limits()
			if err != nil {
				return err
			}
			v, err := optimize.Verify(cmd.Context(), arts[0], arts[1], append(opts, optimize.WithTempDir(tmpDir))...)
			if err != nil {
				return fmt.Errorf("verifying %s against %s: %w", args[1], args[0], err)
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
