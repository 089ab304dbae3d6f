// Command stargz-grpc serves stargz-snapshotter's snapshotter (the
// github.com/containerd/stargz-snapshotter service package) on a gRPC unix
// socket, where containerd reaches it as a proxy snapshotter plugin. It is
// this module's own small stand-in for upstream's containerd-stargz-grpc,
// whose cmd module the Go module proxy does not serve.
//
//	stargz-grpc -address SOCKET -root DIR [-config FILE.toml] [-log-level info]
//
// The config file is stargz-snapshotter's service.Config in TOML, the same
// keys as upstream's /etc/containerd-stargz-grpc/config.toml (for example
// [[resolver.host."HOST".mirrors]] with insecure = true for plain HTTP).
// On SIGINT or SIGTERM it stops serving, unmounts every FUSE mount it made
// and exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/contrib/snapshotservice"
	"github.com/containerd/log"
	"github.com/containerd/stargz-snapshotter/service"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/grpc"
)

func main() {
	address := flag.String("address", "", "unix socket to serve the snapshotter on (required)")
	root := flag.String("root", "", "root directory of the snapshotter's state (required)")
	configPath := flag.String("config", "", "TOML configuration file (stargz-snapshotter service.Config)")
	logLevel := flag.String("log-level", "info", "log level: trace, debug, info, warn, error")
	flag.Parse()
	if *address == "" || *root == "" {
		fmt.Fprintln(os.Stderr, "usage: stargz-grpc -address SOCKET -root DIR [-config FILE] [-log-level LEVEL]")
		os.Exit(2)
	}
	if err := log.SetLevel(*logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "stargz-grpc:", err)
		os.Exit(2)
	}
	if err := run(*address, *root, *configPath); err != nil {
		fmt.Fprintln(os.Stderr, "stargz-grpc:", err)
		os.Exit(1)
	}
}

func readConfig(path string) (*service.Config, error) {
	cfg := &service.Config{}
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := toml.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	return cfg, nil
}

func run(address, root, configPath string) error {
	cfg, err := readConfig(configPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = log.WithLogger(ctx, log.L)

	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	sn, err := service.NewStargzSnapshotterService(ctx, root, cfg)
	if err != nil {
		return fmt.Errorf("starting the snapshotter: %w", err)
	}
	// Close unmounts every layer the snapshotter mounted, committed ones too.
	defer func() {
		if err := sn.Close(); err != nil {
			log.G(ctx).WithError(err).Warn("closing the snapshotter")
		}
	}()

	if err := os.MkdirAll(filepath.Dir(address), 0o700); err != nil {
		return err
	}
	if err := os.RemoveAll(address); err != nil {
		return err
	}
	l, err := net.Listen("unix", address)
	if err != nil {
		return err
	}
	rpc := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(rpc, snapshotservice.FromSnapshotter(sn))
	served := make(chan error, 1)
	go func() { served <- rpc.Serve(l) }()
	log.G(ctx).WithField("address", address).Info("serving")

	select {
	case <-ctx.Done():
		log.G(ctx).Info("signalled: stopping")
		rpc.Stop()
		return nil
	case err := <-served:
		return err
	}
}
