package run_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/profile/run"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image records what an image's entrypoint really opens at start. This
// image is built here from a static busybox of the host: one layer with
// /bin/busybox and /etc/motd. The example needs root on Linux, so it is
// compiled but not run by go test.
func ExampleImage() {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		log.Fatal(err)
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"bin/busybox", 0o755, bb}, {"etc/motd", 0o644, []byte("hello\n")}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			log.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			log.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar.Bytes())), nil
	})
	if err != nil {
		log.Fatal(err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64",
		Config: v1.Config{Entrypoint: []string{"/bin/busybox", "sh", "-c", "cat /etc/motd; echo ready"}}})
	if err != nil {
		log.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		log.Fatal(err)
	}

	p, err := run.Image(context.Background(), img, run.WithPeriod(5*time.Second))
	switch {
	case errors.Is(err, run.ErrUnsupported), errors.Is(err, run.ErrPlatform):
		fmt.Println("cannot run here; use profile.Static:", err)
		return
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(p.Files) // [/bin/busybox /etc/motd]
}

// Root runs a command over a root filesystem that a Filler writes: here a
// static busybox copied from the host.
func ExampleRoot() {
	fill := func(ctx context.Context, dir string) error {
		b, err := os.ReadFile("/bin/busybox")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755)
	}
	cfg := profile.Config{Entrypoint: []string{"/bin/busybox", "sh", "-c", "echo ready"}}
	p, err := run.Root(context.Background(), fill, cfg, run.WithPeriod(5*time.Second))
	if errors.Is(err, run.ErrUnsupported) {
		fmt.Println("cannot run here; use profile.Static:", err)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Files) // [/bin/busybox]
}
