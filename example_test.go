package coldstart_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/coldstart-dev/coldstart"
	"github.com/coldstart-dev/coldstart/imageref"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Optimize an image in an OCI layout into another layout, then check that
// it shows a container the same files. Here the second layer of the input
// deletes a 1 MiB file of the first, which the output does not carry.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "coldstart-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	src, dst := "oci:"+filepath.Join(dir, "app"), "oci:"+filepath.Join(dir, "app-esgz")
	writeExampleImage(ctx, src)

	res, err := coldstart.Optimize(ctx, src, dst, coldstart.WithCompare(false))
	if err != nil {
		log.Fatal(err)
	}
	defer res.Close()
	fmt.Println("removed bytes:", res.RemovedBytes)
	fmt.Println("digest:", res.Digest)

	v, err := coldstart.Verify(ctx, src, dst)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same filesystem:", v.OK)
	// Output:
	// removed bytes: 1048576
	// digest: sha256:7274ab0897a936b30332fb219a1666d1bf057acba74aa8a1d74bf7afa9e4b8e0
	// same filesystem: true
}

// writeExampleImage writes a two-layer image built from tar bytes.
func writeExampleImage(ctx context.Context, ref string) {
	epoch := time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)
	layer := func(files map[string]string, names ...string) v1.Layer {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, n := range names {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o755, Size: int64(len(files[n])), ModTime: epoch}); err != nil {
				log.Fatal(err)
			}
			if _, err := tw.Write([]byte(files[n])); err != nil {
				log.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			log.Fatal(err)
		}
		return static.NewLayer(b.Bytes(), types.OCIUncompressedLayer)
	}
	l1 := layer(map[string]string{"app/server": "#!/bin/sh\necho ready\n", "app/cache.bin": string(make([]byte, 1<<20))}, "app/server", "app/cache.bin")
	l2 := layer(map[string]string{"app/.wh.cache.bin": ""}, "app/.wh.cache.bin")
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, &v1.ConfigFile{Architecture: "amd64", OS: "linux", Created: v1.Time{Time: epoch},
		RootFS: v1.RootFS{Type: "layers"}, Config: v1.Config{Entrypoint: []string{"/app/server"}}})
	if err != nil {
		log.Fatal(err)
	}
	if img, err = mutate.Append(img, mutate.Addendum{Layer: l1}, mutate.Addendum{Layer: l2}); err != nil {
		log.Fatal(err)
	}
	r, err := imageref.Parse(ref)
	if err != nil {
		log.Fatal(err)
	}
	if err := imageref.Write(ctx, r, &imageref.Artifact{Image: img}); err != nil {
		log.Fatal(err)
	}
}
