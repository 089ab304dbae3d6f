package optimize_test

import (
	"context"
	"fmt"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// exampleImage is a two-layer image whose second layer deletes a big file
// of the first and re-adds a file unchanged.
func exampleImage() v1.Image {
	big := string(make([]byte, 1<<20))
	l1, _ := testimage.Layer{
		testimage.Dir("app", 0o755),
		testimage.File("app/server", "#!/bin/sh\necho ready\n", testimage.Mode(0o755)),
		testimage.File("app/cache.bin", big),
	}.Compressed(compression.GZip)
	l2, _ := testimage.Layer{
		testimage.Whiteout("app/cache.bin"),
		testimage.File("app/server", "#!/bin/sh\necho ready\n", testimage.Mode(0o755)),
	}.Compressed(compression.GZip)
	img, _ := testimage.Image(v1.Config{Entrypoint: []string{"/app/server"}}, l1, l2)
	return img
}

func ExampleOptimize() {
	ctx := context.Background()
	res, err := optimize.Optimize(ctx, exampleImage(),
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
	// layer 1: rewritten, 2 entries dropped
	// removed bytes: 1048597
	// digest: sha256:54fe0b79b90956e60d1832cf52393f2d427769c6edd6c58058673fc5bc3ec598
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
