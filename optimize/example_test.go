package optimize_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the time of every entry and of the image.
var epoch = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// entry is one tar entry of an example layer: a directory when its name
// ends in "/", else a regular file.
type entry struct {
	name string
	mode int64
	body string
}

// gzipLayer writes entries as a gzip-compressed OCI layer.
func gzipLayer(entries ...entry) v1.Layer {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range entries {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: e.mode, Size: int64(len(e.body)), ModTime: epoch}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			log.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			log.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		log.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		log.Fatal(err)
	}
	return l
}

// exampleImage is a two-layer linux/amd64 OCI image whose second layer
// deletes a big file of the first (a whiteout, ".wh.NAME") and re-adds a
// file unchanged.
func exampleImage() v1.Image {
	script := "#!/bin/sh\necho ready\n"
	l1 := gzipLayer(entry{"app/", 0o755, ""}, entry{"app/server", 0o755, script},
		entry{"app/cache.bin", 0o644, string(make([]byte, 1<<20))})
	l2 := gzipLayer(entry{"app/.wh.cache.bin", 0o644, ""}, entry{"app/server", 0o755, script})
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: "amd64", OS: "linux", Created: v1.Time{Time: epoch}, RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Entrypoint: []string{"/app/server"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	// The history text is part of the output config, and so of the digests
	// pinned below: it is kept as the examples were first pinned with it.
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: l1, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "testimage layer 0"}},
		mutate.Addendum{Layer: l2, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "testimage layer 1"}})
	if err != nil {
		log.Fatal(err)
	}
	return img
}

func ExampleImage() {
	ctx := context.Background()
	res, err := optimize.Image(ctx, exampleImage(),
		optimize.WithPrioritizedFiles([]string{"/app/server"}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Close() // after writing res.Image somewhere
	for i, l := range res.Layers {
		fmt.Printf("layer %d: %s, %d entries dropped\n", i, l.Action, l.DroppedEntries)
	}
	fmt.Println("removed bytes:", res.RemovedBytes)
	fmt.Println("digest:", res.Digest)
	// Output:
	// layer 0: rewritten, 1 entries dropped
	// layer 1: dropped, 2 entries dropped
	// removed bytes: 1048597
	// digest: sha256:67621654aebc2bf8319cf4996f512b03e36c1de8c0d92eaacc506cf28e2d722e
}

func ExampleAnalyze() {
	a, err := optimize.Analyze(context.Background(), exampleImage())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("wasted %d of %d file bytes, efficiency %.2f\n", a.WastedBytes, a.FileBytes, a.Efficiency)
	fmt.Println("largest:", a.TopWasted[0].Path)
	// Output:
	// wasted 1048597 of 1048618 file bytes, efficiency 0.00
	// largest: /app/cache.bin
}

// ProfileImage finds the start-up files of an image; here with the static
// profiler, which follows the entrypoint script to its interpreter.
func ExampleProfileImage() {
	p, err := optimize.ProfileImage(context.Background(), exampleImage(), profile.StaticProfiler())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Source, p.Platform, p.Files)
	for _, w := range p.Warnings {
		fmt.Println("warning:", w)
	}
	// Output:
	// static linux/amd64 [/app/server]
	// warning: /app/server: interpreter /bin/sh not found in the image
}
