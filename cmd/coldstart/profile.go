package main

import (
	"bufio"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/coldstart-dev/coldstart"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	profilerun "github.com/coldstart-dev/coldstart/optimize/profile/run"
	"github.com/spf13/cobra"
)

// Profile modes.
const (
	modeStatic = "static"
	modeRun    = "run"
)

type profileFlags struct {
	mode, platform, format, out, tmpDir string
	entrypoint, user, waitLine          string
	args, env                           []string
	period                              time.Duration
	waitPort                            int
	showOutput                          bool
}

func newProfile(g *globals) *cobra.Command {
	f := &profileFlags{}
	c := &cobra.Command{
		Use:   "profile IMAGE [-- ARG...]",
		Short: "Find the files an image reads at start-up",
		Long:  profileLong,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("%s needs an IMAGE: usage: %s", cmd.CommandPath(), cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProfile(cmd, g, f, args[0], args[1:])
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.mode, "mode", modeStatic, "how to find the files: static (predict) or run (start the entrypoint and record)")
	fl.StringVar(&f.platform, "platform", "", "the image of a multi-platform index: OS/ARCH[/VARIANT] (default: linux on this machine's architecture)")
	fl.StringVar(&f.format, "format", "text", "output format: text or json")
	fl.StringVar(&f.out, "out", "", "write the profile JSON to this file")
	fl.StringVar(&f.entrypoint, "entrypoint", "", `replace the image's Entrypoint (a command, or a JSON array such as '["/bin/sh","-c"]'); the image's Cmd is dropped unless arguments are given`)
	fl.StringArrayVar(&f.args, "args", nil, "replace the image's Cmd (repeatable, one argument each)")
	fl.StringArrayVar(&f.env, "env", nil, "set an environment variable, KEY=VALUE (repeatable)")
	fl.StringVar(&f.user, "user", "", "run as this user instead of the image's: NAME|UID[:GROUP|GID]")
	fl.DurationVar(&f.period, "period", profilerun.DefaultPeriod, "run mode: stop after this long")
	fl.StringVar(&f.waitLine, "wait-on-line", "", "run mode: stop when a line of the process's output matches this regular expression")
	fl.IntVar(&f.waitPort, "wait-on-port", 0, "run mode: stop when this TCP port accepts a connection inside the sandbox")
	fl.BoolVar(&f.showOutput, "show-output", false, "run mode: copy the process's output to standard error")
	fl.StringVar(&f.tmpDir, "tmpdir", "", "directory for the run's workspace and temporary files (default: the system's)")
	return c
}

// override is what the command line changes of the image's config, as
// "docker run" does.
func (f *profileFlags) override(cmd *cobra.Command, extra []string) (profile.Override, error) {
	fl := cmd.Flags()
	if fl.Changed("args") && len(extra) > 0 {
		return profile.Override{}, usageErr("give the arguments either after IMAGE or with --args, not both")
	}
	o := profile.Override{Entrypoint: f.entrypoint, SetEntrypoint: fl.Changed("entrypoint"), Env: f.env, User: f.user, SetUser: fl.Changed("user")}
	if fl.Changed("args") {
		o.Cmd = f.args
	}
	if len(extra) > 0 {
		o.Cmd = extra
	}
	return o, nil
}

func runProfile(cmd *cobra.Command, g *globals, f *profileFlags, imageArg string, extra []string) error {
	runOpts, err := f.runOptions(cmd, g)
	if err != nil {
		return err
	}
	opts, err := g.options()
	if err != nil {
		return err
	}
	ov, err := f.override(cmd, extra)
	if err != nil {
		return err
	}
	opts = append(opts, coldstart.WithTempDir(f.tmpDir), coldstart.WithProfileConfig(func(pc *profile.Config) error {
		if err := pc.Apply(ov); err != nil {
			return usageErr("--%v", err) // "--env ...", "--entrypoint ..."
		}
		if len(pc.Entrypoint)+len(pc.Cmd) == 0 {
			return usageErr("the image has no Entrypoint or Cmd: give one with --entrypoint or arguments after IMAGE")
		}
		return nil
	}))
	if f.platform != "" {
		opts = append(opts, coldstart.WithPlatforms(f.platform))
	}
	if f.mode == modeRun {
		opts = append(opts, coldstart.WithRun(runOpts...))
	}
	p, err := coldstart.Profile(cmd.Context(), imageArg, opts...)
	if errors.Is(err, coldstart.ErrCannotRun) {
		return usageErr("%v; this machine runs linux/%s: use --mode static", err, runtime.GOARCH)
	}
	if err != nil {
		return err
	}
	if f.out != "" {
		if err := writeFileAtomic(f.out, func(w *bufio.Writer) error { return p.WriteJSON(w) }); err != nil {
			return err
		}
		if !g.quiet {
			fmt.Fprintf(g.stderr, "profile of %s (%s): %d files written to %s\n", imageArg, p.Source, len(p.Files), f.out)
		}
		if !cmd.Flags().Changed("format") {
			return nil
		}
	}
	if f.format == optimize.FormatJSON {
		return p.WriteJSON(g.stdout)
	}
	return p.WriteText(g.stdout)
}
