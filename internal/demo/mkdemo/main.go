// Command mkdemo writes coldstart's demo image (see package
// internal/demo) to an OCI image layout directory and prints its digest:
//
//	go run ./internal/demo/mkdemo [-binary PATH] [-tag latest] DIR
//
// Run it from the coldstart checkout: unless -binary names a prebuilt
// demoapp, it compiles testdata/demoapp with the go command in PATH.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/coldstart-dev/coldstart/internal/demo"
)

func main() {
	binary := flag.String("binary", "", "prebuilt demoapp binary (default: compile testdata/demoapp)")
	tag := flag.String("tag", "latest", "tag recorded in the layout's index.json")
	verbose := flag.Bool("v", false, "log each step to stderr")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkdemo [flags] DIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	opts := []demo.Option{demo.WithTag(*tag)}
	if *binary != "" {
		opts = append(opts, demo.WithBinary(*binary))
	}
	if *verbose {
		opts = append(opts, demo.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	}
	d, err := demo.Write(ctx, flag.Arg(0), opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdemo:", err)
		os.Exit(1)
	}
	fmt.Println(d)
}
