package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
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
		Long: `profile lists the files IMAGE reads when a container starts, in the order
they are first read: the profile that "coldstart optimize --profile FILE" puts
first in each layer.

--mode static (the default) predicts them without running anything: the
entrypoint through PATH and links, ELF interpreters and libraries, "#!" chains,
shell scripts, and Python, Node.js and Java start-up.

--mode run starts the entrypoint and records what it really opens: the
image's filesystem is extracted (refusing entries that would land outside it),
mounted as an overlay, and the process runs as the image's user in new mount,
PID, UTS, IPC and network namespaces (loopback only) while fanotify records
every file opened. The run ends when the process exits, when a line of its
output matches --wait-on-line, when --wait-on-port accepts a connection inside
the sandbox, or after --period; then every process of the sandbox is killed
and everything is unmounted and removed. It needs Linux, root and fanotify,
and an image of this machine's architecture.

Arguments after IMAGE replace the image's Cmd, as with "docker run"; put
them after "--" when they start with "-" (profile IMAGE -- sh -c 'exec app').
--args ARG (repeatable) does the same. --entrypoint, --user and --env override the config in both modes.

Output: --format text (one path per line after "#" comment lines, usable as a
path list) or json, on standard output; --out FILE writes the profile JSON
atomically (and then standard output stays quiet unless --format is given).`,
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

// config applies the overrides of the command line to the image's config,
// as "docker run" does.
func (f *profileFlags) config(cmd *cobra.Command, pc *profile.Config, extra []string) error {
	if cmd.Flags().Changed("entrypoint") {
		pc.Entrypoint, pc.Cmd = nil, nil
		if strings.HasPrefix(strings.TrimSpace(f.entrypoint), "[") {
			if err := json.Unmarshal([]byte(f.entrypoint), &pc.Entrypoint); err != nil {
				return usageErr("--entrypoint: not a JSON array of strings: %v", err)
			}
		} else if f.entrypoint != "" {
			pc.Entrypoint = []string{f.entrypoint}
		}
	}
	if cmd.Flags().Changed("args") && len(extra) > 0 {
		return usageErr("give the arguments either after IMAGE or with --args, not both")
	}
	if cmd.Flags().Changed("args") {
		pc.Cmd = f.args
	}
	if len(extra) > 0 {
		pc.Cmd = extra
	}
	for _, kv := range f.env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return usageErr("--env %q: want KEY=VALUE", kv)
		}
		pc.Env = append(slices.Clip(pc.Env), kv)
	}
	if cmd.Flags().Changed("user") {
		pc.User = f.user
	}
	if len(pc.Entrypoint)+len(pc.Cmd) == 0 {
		return usageErr("the image has no Entrypoint or Cmd: give one with --entrypoint or arguments after IMAGE")
	}
	return nil
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
	opts = append(opts, coldstart.WithTempDir(f.tmpDir), coldstart.WithProfileConfig(func(pc *profile.Config) error {
		return f.config(cmd, pc, extra)
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
