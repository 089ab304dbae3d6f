package testimage_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/google/go-containerregistry/pkg/compression"
)

func ExampleLayer() {
	l := testimage.Layer{
		testimage.Dir("etc", 0o755),
		testimage.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
		testimage.Symlink("bin", "usr/bin"),
	}
	layer, err := l.Compressed(compression.GZip)
	if err != nil {
		panic(err)
	}
	diffID, _ := layer.DiffID()
	fmt.Println(len(l.Tar()), diffID)
	// Output: 3072 sha256:87292b804c62e2d10a3b96662c3fbfad4ea44cf7d4955e4c218d4e14d3926132
}

func ExampleApply() {
	base := testimage.Layer{
		testimage.Dir("etc", 0o755),
		testimage.File("etc/motd", "hello"),
		testimage.File("etc/old", "obsolete"),
	}
	upper := testimage.Layer{
		testimage.Whiteout("etc/old"),
		testimage.File("etc/motd", "hello", testimage.Mode(0o600)),
	}
	tree, err := testimage.Apply(base.Tar(), upper.Tar())
	if err != nil {
		panic(err)
	}
	for _, n := range tree.Nodes() {
		fmt.Printf("%s %s %04o from layer %d entry %d\n", n.Path, n.Type, n.Mode, n.Origin.Layer, n.Origin.Entry)
	}
	wasted, _ := testimage.WastedBytes(base.Tar(), upper.Tar())
	fmt.Println("wasted bytes:", wasted)
	// Output:
	// etc dir 0755 from layer 0 entry 0
	// etc/motd file 0600 from layer 1 entry 1
	// wasted bytes: 13
}

func ExampleRandom() {
	r := rand.New(rand.NewPCG(1, 2))
	layers := testimage.Random(r, testimage.RandomOptions{Layers: 3})
	raw := make([][]byte, len(layers))
	for i, l := range layers {
		raw[i] = l.Tar()
	}
	tree, err := testimage.Apply(raw...)
	if err != nil {
		panic(err)
	}
	for i, l := range layers {
		fmt.Printf("layer %d: %d entries\n", i, len(l))
	}
	fmt.Println("merged paths:", tree.Len())
	// Output:
	// layer 0: 33 entries
	// layer 1: 27 entries
	// layer 2: 30 entries
	// merged paths: 46
}
