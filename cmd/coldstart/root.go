package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/internal/units"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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
}

// subcommands lists the constructors of every command, in help order. Each
// command's file adds itself in an init function.
var subcommands = []func(*globals) *cobra.Command{newAnalyze, newOptimize, newVerify}

// errUsage marks errors that are the caller's: exit code 2.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
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
  docker-archive:FILE           a docker save tarball`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&g.insecure, "insecure", false, "use plain HTTP and skip TLS verification for registries (localhost is always plain HTTP)")
	root.PersistentFlags().BoolVar(&g.debug, "debug", false, "log what happens, to stderr")
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "no progress output")
	root.PersistentFlags().StringVar(&g.maxLayerSize, "max-layer-size", units.Bytes(layers.DefaultMaxSize), "refuse a layer that inflates past this size (e.g. 64MiB, 10GiB)")
	root.PersistentFlags().IntVar(&g.maxEntries, "max-entries", layers.DefaultMaxEntries, "refuse a layer with more tar entries than this")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return errors.Join(errUsage, err)
	})
	for _, sub := range subcommands {
		root.AddCommand(sub(g))
	}
	return root
}

// limits returns the optimize options for --max-layer-size and
// --max-entries.
func (g *globals) limits() ([]optimize.Option, error) {
	idx, err := g.indexOptions()
	if err != nil {
		return nil, err
	}
	return []optimize.Option{optimize.WithLogger(g.logger()), optimize.WithIndexOptions(idx...)}, nil
}

// indexOptions are the layer index limits of --max-layer-size and
// --max-entries.
func (g *globals) indexOptions() ([]layers.Option, error) {
	n, err := units.ParseBytes(g.maxLayerSize)
	if err != nil || n <= 0 {
		return nil, errors.Join(errUsage, fmt.Errorf("--max-layer-size: %v", err))
	}
	if g.maxEntries <= 0 {
		return nil, errors.Join(errUsage, fmt.Errorf("--max-entries must be positive"))
	}
	return []layers.Option{layers.WithMaxSize(n), layers.WithMaxEntries(g.maxEntries)}, nil
}

func (g *globals) logger() *slog.Logger {
	if !g.debug {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (g *globals) refOptions(platform string) ([]imageref.Option, error) {
	opts := []imageref.Option{imageref.WithInsecure(g.insecure), imageref.WithLogger(g.logger()),
		imageref.WithUserAgent("coldstart")}
	if platform != "" {
		spec, err := imageref.ParsePlatforms(platform)
		if err != nil {
			return nil, errors.Join(errUsage, err)
		}
		opts = append(opts, imageref.WithPlatforms(spec))
	}
	return opts, nil
}

// readImageFor reads the one image of ref for platform: an index is
// narrowed to platform, by default linux on this machine's architecture; a
// single image must match platform when one is given.
func readImageFor(ctx context.Context, ref imageref.Ref, platform string, ropts []imageref.Option) (v1.Image, error) {
	art, err := imageref.Read(ctx, ref, ropts...)
	if err != nil {
		return nil, err
	}
	if art.Index != nil && platform == "" {
		platform = "linux/" + runtime.GOARCH
	}
	if platform != "" {
		spec, err := imageref.ParsePlatforms(platform)
		if err != nil {
			return nil, errors.Join(errUsage, fmt.Errorf("--platform: %w", err))
		}
		if art, err = imageref.SelectPlatforms(ctx, art, spec); err != nil {
			return nil, err
		}
	}
	if art.Image == nil {
		return nil, errors.Join(errUsage, fmt.Errorf("%s: --platform %s selects several images: name one platform", ref, platform))
	}
	return art.Image, nil
}
