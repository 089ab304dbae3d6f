package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/coldstart-dev/coldstart"
	"github.com/coldstart-dev/coldstart/internal/units"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/spf13/cobra"
)

// globals holds the flags every command shares.
type globals struct {
	maxLayerSize string
	maxEntries   int
	insecure     bool
	debug        bool
	quiet        bool
	stdout       io.Writer
	stderr       io.Writer
	// terminal, when set, replaces the terminal check (see term.go).
	terminal func(io.Writer) (bool, int)
}

// subcommands lists the constructors of every command, in help order.
var subcommands = []func(*globals) *cobra.Command{newAnalyze, newOptimize, newVerify, newProfile, newReport, newCompare, newCache}

// errUsage marks errors that are the caller's: exit code 2.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) || errors.Is(err, coldstart.ErrInvalid) {
		return 2
	}
	return 1
}

// message is the one line printed for err: the usage marker is not shown.
func message(err error) string {
	if errors.Is(err, errVerifyFailed) {
		return err.Error()
	}
	var parts []string
	for _, e := range unjoin(err) {
		if e != errUsage {
			parts = append(parts, e.Error())
		}
	}
	return strings.Join(parts, ": ")
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func usageErr(format string, args ...any) error {
	return errors.Join(errUsage, fmt.Errorf(format, args...))
}

func newRoot() *cobra.Command {
	return newRootWith(&globals{stdout: os.Stdout, stderr: os.Stderr})
}

func newRootWith(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "coldstart",
		Short: "Make container images start fast",
		Long: `coldstart makes container images start fast: it removes the bytes no
container sees, puts the files read at start-up first, re-encodes layers as
lazy-pullable eStargz or zstd:chunked while keeping cached layers
byte-identical, and reports what a cold start costs.

Image references:
  REGISTRY/REPO[:TAG|@DIGEST]   a registry (auth from the Docker config)
  oci:DIR[:TAG]                 an OCI image layout directory
  docker-archive:FILE           a docker save tarball

Exit status: 0 on success, 1 when the work failed (or verify found
differences, or a budget was exceeded), 2 on a usage error.`,
		Example: `  coldstart optimize registry.example.com/app:1 registry.example.com/app:1-esgz
  coldstart verify oci:./app oci:./app-esgz
  coldstart report registry.example.com/app:1 --network edge`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SuggestionsMinimumDistance = 2
	root.PersistentFlags().BoolVar(&g.insecure, "insecure", false, "use plain HTTP and skip TLS verification for registries (localhost is always plain HTTP)")
	root.PersistentFlags().BoolVar(&g.debug, "debug", false, "log what happens, to stderr")
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "no progress output")
	root.PersistentFlags().StringVar(&g.maxLayerSize, "max-layer-size", units.Bytes(layers.DefaultMaxSize), "refuse a layer that inflates past this size (e.g. 64MiB, 10GiB)")
	root.PersistentFlags().IntVar(&g.maxEntries, "max-entries", layers.DefaultMaxEntries, "refuse a layer with more tar entries than this")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr("%s: %v (see '%s --help')", c.CommandPath(), err, c.CommandPath())
	})
	for _, sub := range subcommands {
		root.AddCommand(sub(g))
	}
	return root
}

// noArgs refuses arguments, suggesting a command for a mistyped one.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return usageErr("%s (see '%s --help')", msg, cmd.CommandPath())
}

// exactArgs is cobra.ExactArgs with a message that names the command and
// its usage.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		return usageErr("%s takes %d argument(s), got %d: usage: %s", cmd.CommandPath(), n, len(args), cmd.UseLine())
	}
}

// version is the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// options are the facade options of the global flags.
func (g *globals) options() ([]coldstart.Option, error) {
	n, err := units.ParseBytes(g.maxLayerSize)
	if err != nil || n <= 0 {
		return nil, usageErr("--max-layer-size: %v", err)
	}
	if g.maxEntries <= 0 {
		return nil, usageErr("--max-entries must be positive")
	}
	return []coldstart.Option{
		coldstart.WithInsecure(g.insecure),
		coldstart.WithLogger(g.logger()),
		coldstart.WithLayerLimits(layers.WithMaxSize(n), layers.WithMaxEntries(g.maxEntries)),
	}, nil
}

func (g *globals) logger() *slog.Logger {
	if !g.debug {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// note prints a line about what is happening to stderr, unless --quiet.
func (g *globals) note(msg string) {
	if !g.quiet {
		fmt.Fprintln(g.stderr, "coldstart:", msg)
	}
}
