package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/internal/imageref"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	profilerun "github.com/coldstart-dev/coldstart/optimize/profile/run"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newProfile) }

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
				return errors.Join(errUsage, errors.New("profile needs an IMAGE"))
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

// profileConfig applies the overrides of the command line to the image's
// config.
func profileConfig(cmd *cobra.Command, f *profileFlags, c v1.Config, extra []string) (profile.Config, error) {
	pc := profile.Config{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User}
	if cmd.Flags().Changed("entrypoint") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(f.entrypoint), "["):
			var ep []string
			if err := json.Unmarshal([]byte(f.entrypoint), &ep); err != nil {
				return pc, errors.Join(errUsage, fmt.Errorf("--entrypoint: not a JSON array of strings: %v", err))
			}
			pc.Entrypoint = ep
		case f.entrypoint == "":
			pc.Entrypoint = nil
		default:
			pc.Entrypoint = []string{f.entrypoint}
		}
		pc.Cmd = nil
	}
	if cmd.Flags().Changed("args") && len(extra) > 0 {
		return pc, errors.Join(errUsage, errors.New("give the arguments either after IMAGE or with --args, not both"))
	}
	if cmd.Flags().Changed("args") {
		pc.Cmd = f.args
	}
	if len(extra) > 0 {
		pc.Cmd = extra
	}
	for _, kv := range f.env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return pc, errors.Join(errUsage, fmt.Errorf("--env %q: want KEY=VALUE", kv))
		}
		pc.Env = append(append([]string{}, pc.Env...), kv)
	}
	if cmd.Flags().Changed("user") {
		pc.User = f.user
	}
	if len(pc.Entrypoint)+len(pc.Cmd) == 0 {
		return pc, errors.Join(errUsage, errors.New("the image has no Entrypoint or Cmd: give one with --entrypoint or arguments after IMAGE"))
	}
	return pc, nil
}

// checkProfileFlags rejects what cannot work before anything is read.
func checkProfileFlags(cmd *cobra.Command, f *profileFlags) ([]profilerun.Option, error) {
	if f.format != optimize.FormatText && f.format != optimize.FormatJSON {
		return nil, errors.Join(errUsage, fmt.Errorf("unknown format %q: use text or json", f.format))
	}
	switch f.mode {
	case modeStatic:
		for _, name := range []string{"period", "wait-on-line", "wait-on-port", "show-output"} {
			if cmd.Flags().Changed(name) {
				return nil, errors.Join(errUsage, fmt.Errorf("--%s needs --mode run", name))
			}
		}
		return nil, nil
	case modeRun:
	default:
		return nil, errors.Join(errUsage, fmt.Errorf("unknown mode %q: use static or run", f.mode))
	}
	var opts []profilerun.Option
	if f.period <= 0 {
		return nil, errors.Join(errUsage, fmt.Errorf("--period %v: must be positive", f.period))
	}
	opts = append(opts, profilerun.WithPeriod(f.period))
	if f.waitLine != "" {
		re, err := regexp.Compile(f.waitLine)
		if err != nil {
			return nil, errors.Join(errUsage, fmt.Errorf("--wait-on-line: %v", err))
		}
		opts = append(opts, profilerun.WithWaitOnLine(re))
	}
	if cmd.Flags().Changed("wait-on-port") {
		if f.waitPort < 1 || f.waitPort > 65535 {
			return nil, errors.Join(errUsage, fmt.Errorf("--wait-on-port %d: not a TCP port", f.waitPort))
		}
		opts = append(opts, profilerun.WithWaitOnPort(f.waitPort))
	}
	if f.tmpDir != "" {
		opts = append(opts, profilerun.WithTempDir(f.tmpDir))
	}
	return opts, nil
}

func runProfile(cmd *cobra.Command, g *globals, f *profileFlags, imageArg string, extra []string) error {
	runOpts, err := checkProfileFlags(cmd, f)
	if err != nil {
		return err
	}
	ref, err := imageref.Parse(imageArg)
	if err != nil {
		return errors.Join(errUsage, err)
	}
	ropts, err := g.refOptions("")
	if err != nil {
		return err
	}
	opts, err := g.limits()
	if err != nil {
		return err
	}
	opts = append(opts, optimize.WithTempDir(f.tmpDir))
	if f.mode == modeRun {
		// Fail early, before reading anything.
		if err := profilerun.Supported(); err != nil {
			return err
		}
	}
	ctx := cmd.Context()
	img, err := readProfileImage(ctx, ref, f.platform, ropts)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("%s: reading config: %w", ref, err)
	}
	pc, err := profileConfig(cmd, f, cf.Config, extra)
	if err != nil {
		return err
	}
	var p *profile.Profile
	switch f.mode {
	case modeStatic:
		static := profile.StaticProfiler(profile.WithConfig(pc), profile.WithLogger(g.logger()))
		p, err = optimize.ProfileImage(ctx, img, static, opts...)
		if err != nil {
			return fmt.Errorf("profiling %s: %w", ref, err)
		}
	case modeRun:
		idxOpts, err := g.indexOptions()
		if err != nil {
			return err
		}
		runOpts = append(runOpts, profilerun.WithConfig(pc), profilerun.WithLogger(g.logger()), profilerun.WithIndexOptions(idxOpts...))
		if f.showOutput {
			runOpts = append(runOpts, profilerun.WithOutput(g.stderr))
		}
		p, err = profilerun.Image(ctx, img, runOpts...)
		if errors.Is(err, profilerun.ErrPlatform) {
			return errors.Join(errUsage, fmt.Errorf("%s: %w: use --mode static", ref, err))
		}
		if err != nil {
			return fmt.Errorf("profiling %s: %w", ref, err)
		}
	}
	if pl := cf.Platform(); pl != nil && pl.OS != "" {
		p.Platform = pl.String()
	}
	if f.out != "" {
		if err := writeFileAtomic(f.out, func(w *bufio.Writer) error { return p.WriteJSON(w) }); err != nil {
			return err
		}
		if !g.quiet {
			fmt.Fprintf(g.stderr, "profile of %s (%s): %d files written to %s\n", ref, p.Source, len(p.Files), f.out)
		}
		if !cmd.Flags().Changed("format") {
			return nil
		}
	}
	return writeProfile(g.stdout, p, f.format)
}

// readProfileImage reads the one image to profile: an index is narrowed to
// --platform, by default linux on this machine's architecture.
func readProfileImage(ctx context.Context, ref imageref.Ref, platform string, ropts []imageref.Option) (v1.Image, error) {
	art, err := imageref.Read(ctx, ref, ropts...)
	if err != nil {
		return nil, err
	}
	if art.Index == nil {
		if platform != "" {
			spec, err := imageref.ParsePlatforms(platform)
			if err != nil {
				return nil, errors.Join(errUsage, fmt.Errorf("--platform: %w", err))
			}
			if _, err := imageref.SelectPlatforms(ctx, art, spec); err != nil {
				return nil, err
			}
		}
		return art.Image, nil
	}
	if platform == "" {
		platform = "linux/" + runtime.GOARCH
	}
	spec, err := imageref.ParsePlatforms(platform)
	if err != nil {
		return nil, errors.Join(errUsage, fmt.Errorf("--platform: %w", err))
	}
	sel, err := imageref.SelectPlatforms(ctx, art, spec)
	if err != nil {
		return nil, err
	}
	if sel.Image == nil {
		return nil, errors.Join(errUsage, fmt.Errorf("%s: --platform %s selects several images: name one platform", ref, platform))
	}
	return sel.Image, nil
}

// writeProfile writes p as JSON, or as text: "#" lines with the source and
// the warnings, then one path per line (a path list that --profile reads).
func writeProfile(w io.Writer, p *profile.Profile, format string) error {
	if format == optimize.FormatJSON {
		return p.WriteJSON(w)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# coldstart profile (%s)", p.Source)
	if p.Platform != "" {
		fmt.Fprintf(bw, " %s", p.Platform)
	}
	if p.Image != "" {
		fmt.Fprintf(bw, " %s", p.Image)
	}
	fmt.Fprintf(bw, ": %d files\n", len(p.Files))
	for _, warn := range p.Warnings {
		fmt.Fprintf(bw, "# warning: %s\n", strings.ReplaceAll(warn, "\n", " "))
	}
	for _, file := range p.Files {
		fmt.Fprintln(bw, file)
	}
	return bw.Flush()
}
