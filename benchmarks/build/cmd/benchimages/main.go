// Command benchimages builds coldstart's benchmark images (see package
// benchmarks/build) and prints their sizes.
//
//	go run ./benchmarks/build/cmd/benchimages [-out DIR] [-base] [-verify] [-rebuild] [-v] [NAME...]
//
// Without names it builds every recipe in benchmarks/images. Images are
// cached (see -cache); -out also writes each one as an OCI layout DIR/NAME,
// readable as oci:DIR/NAME, and with -base its debootstrap base image as
// DIR/NAME-base. -verify runs each image until it is ready.
// Needs root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/coldstart-dev/coldstart/benchmarks/build"
	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/internal/units"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchimages:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchimages", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cache := fs.String("cache", "", "cache `dir` (default benchmarks/.work/images in the module)")
	out := fs.String("out", "", "also write each image as an OCI layout `dir`/NAME")
	mirror := fs.String("mirror", "", "Debian mirror `url` (default: the recipe's, "+build.DefaultMirror+")")
	rebuild := fs.Bool("rebuild", false, "build even when the cache holds the image")
	verify := fs.Bool("verify", false, "run each image until it is ready")
	withBase := fs.Bool("base", false, "with -out, also write each image's base image as an OCI layout DIR/NAME-base")
	verbose := fs.Bool("v", false, "show progress and the output of the build steps on stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: benchimages [flags] [NAME...]\nimages: %v\n", build.Names())
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	names := fs.Args()
	if len(names) == 0 {
		names = build.Names()
	}
	opts := []build.Option{build.WithRebuild(*rebuild)}
	if *cache != "" {
		opts = append(opts, build.WithCacheDir(*cache))
	}
	if *mirror != "" {
		opts = append(opts, build.WithMirror(*mirror))
	}
	if *verbose {
		opts = append(opts, build.WithOutput(stderr), build.WithLogger(slog.New(slog.NewTextHandler(stderr, nil))))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tLAYERS\tCOMPRESSED\tUNCOMPRESSED\tBUILD\tREADY\tLAYOUT")
	var errs []error
	for _, name := range names {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		line, err := one(ctx, name, *out, *verify, *withBase, opts)
		if err != nil {
			errs = append(errs, err)
			fmt.Fprintf(tw, "%s\tFAILED\t\t\t\t\t%v\n", name, firstLine(err))
			continue
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	return errors.Join(errs...)
}

func one(ctx context.Context, name, out string, verify, withBase bool, opts []build.Option) (string, error) {
	start := time.Now()
	dir, r, err := build.Image(ctx, name, opts...)
	if err != nil {
		return "", err
	}
	took := time.Since(start)
	info, err := build.ReadInfo(dir)
	if err != nil {
		return "", err
	}
	buildTime := info.Duration.Round(time.Second).String()
	if took < info.Duration/2 {
		buildTime += " (cached)"
	}
	ready := "-"
	if verify {
		res, err := build.Verify(ctx, dir, r, opts...)
		if err != nil {
			return "", err
		}
		ready = res.Ready.Round(time.Millisecond).String()
	}
	where := dir
	if out != "" {
		where = filepath.Join(out, name)
		if err := copyLayout(ctx, dir, where, name); err != nil {
			return "", err
		}
		if withBase {
			base, err := build.BaseImage(ctx, name, opts...)
			if err != nil {
				return "", err
			}
			if err := copyLayout(ctx, base, filepath.Join(out, name+"-base"), name+"-base"); err != nil {
				return "", err
			}
		}
	}
	comp, uncomp := info.Sizes()
	return fmt.Sprintf("%s\t%d\t%s\t%s\t%s\t%s\t%s", name, len(info.Layers), units.Bytes(comp), units.Bytes(uncomp), buildTime, ready, where), nil
}

func copyLayout(ctx context.Context, src, dst, tag string) error {
	sref, err := imageref.Parse("oci:" + src)
	if err != nil {
		return err
	}
	dref, err := imageref.Parse("oci:" + dst + ":" + tag)
	if err != nil {
		return err
	}
	a, err := imageref.Read(ctx, sref)
	if err != nil {
		return err
	}
	return imageref.Write(ctx, dref, a)
}

func firstLine(err error) string {
	s := err.Error()
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
