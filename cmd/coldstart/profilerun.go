package main

import (
	"regexp"

	"github.com/coldstart-dev/coldstart/optimize"
	profilerun "github.com/coldstart-dev/coldstart/optimize/profile/run"
	"github.com/spf13/cobra"
)

// runOptions checks the flags before anything is read and returns the run
// mode's options.
func (f *profileFlags) runOptions(cmd *cobra.Command, g *globals) ([]profilerun.Option, error) {
	if f.format != optimize.FormatText && f.format != optimize.FormatJSON {
		return nil, usageErr("unknown format %q: use text or json", f.format)
	}
	switch f.mode {
	case modeStatic:
		for _, name := range []string{"period", "wait-on-line", "wait-on-port", "show-output"} {
			if cmd.Flags().Changed(name) {
				return nil, usageErr("--%s needs --mode run", name)
			}
		}
		return nil, nil
	case modeRun:
	default:
		return nil, usageErr("unknown mode %q: use static or run", f.mode)
	}
	if f.period <= 0 {
		return nil, usageErr("--period %v: must be positive", f.period)
	}
	opts := []profilerun.Option{profilerun.WithPeriod(f.period), profilerun.WithLogger(g.logger())}
	if f.waitLine != "" {
		re, err := regexp.Compile(f.waitLine)
		if err != nil {
			return nil, usageErr("--wait-on-line: %v", err)
		}
		opts = append(opts, profilerun.WithWaitOnLine(re))
	}
	if cmd.Flags().Changed("wait-on-port") {
		if f.waitPort < 1 || f.waitPort > 65535 {
			return nil, usageErr("--wait-on-port %d: not a TCP port", f.waitPort)
		}
		opts = append(opts, profilerun.WithWaitOnPort(f.waitPort))
	}
	if f.tmpDir != "" {
		opts = append(opts, profilerun.WithTempDir(f.tmpDir))
	}
	if f.showOutput {
		opts = append(opts, profilerun.WithOutput(g.stderr))
	}
	return opts, nil
}
