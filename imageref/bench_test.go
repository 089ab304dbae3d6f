package imageref

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// benchImage is a 4-layer image of about 4 x 8 MiB (incompressible).
func benchImage(b *testing.B) v1.Image {
	b.Helper()
	img, err := random.Image(8<<20, 4, random.WithSource(rand.NewSource(1)))
	if err != nil {
		b.Fatal(err)
	}
	// Materialize layers once so the benchmark measures writing, not
	// random generation and gzip.
	dir := b.TempDir()
	mustWrite(b, "oci:"+dir, &Artifact{Image: img})
	return mustRead(b, "oci:"+dir).Image
}

func imageBytes(b *testing.B, img v1.Image) int64 {
	ls, err := img.Layers()
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, l := range ls {
		s, err := l.Size()
		if err != nil {
			b.Fatal(err)
		}
		n += s
	}
	return n
}

// BenchmarkWriteLayout copies an image from one layout to a new one
// (hashing on read and on write, fsync per blob).
func BenchmarkWriteLayout(b *testing.B) {
	img := benchImage(b)
	b.SetBytes(imageBytes(b, img))
	root := b.TempDir()
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(root, "l", string(rune('a'+i%26)))
		os.RemoveAll(dir)
		r, _ := Parse("oci:" + dir + ":t")
		if err := Write(context.Background(), r, &Artifact{Image: img}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteArchive copies an image from a layout to a docker archive.
func BenchmarkWriteArchive(b *testing.B) {
	img := benchImage(b)
	b.SetBytes(imageBytes(b, img))
	p := filepath.Join(b.TempDir(), "img.tar")
	r, _ := Parse("docker-archive:" + p + ":app:1")
	for b.Loop() {
		if err := Write(context.Background(), r, &Artifact{Image: img}); err != nil {
			b.Fatal(err)
		}
	}
}
