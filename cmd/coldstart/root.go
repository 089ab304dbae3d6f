package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

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

func newRoot() *cobra.Command {
	return newRootWith(&globals{stdout: os.Stdout, stderr: os.Stderr})
}

func newRootWith(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "coldstart",
		Short:         "Make container images start fast",
		Long:          rootLong,
		Example:       rootExample,
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
