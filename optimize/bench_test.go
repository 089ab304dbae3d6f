package optimize_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/internal/corpus"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// benchImage is three gzip layers of 16 MiB of generated content each.
func benchImage(b *testing.B) v1.Image {
	var ls []v1.Layer
	for i := range 3 {
		var tar bytes.Buffer
		if err := corpus.Write(&tar, uint64(i+1), 16<<20); err != nil {
			b.Fatal(err)
		}
		l, err := testimage.LayerFromTar(tar.Bytes(), compression.GZip)
		if err != nil {
			b.Fatal(err)
		}
		ls = append(ls, l)
	}
	img, err := testimage.Image(v1.Config{Entrypoint: []string{"/usr/bin/app"}}, ls...)
	if err != nil {
		b.Fatal(err)
	}
	return img
}

// BenchmarkOptimizeCache compares a first run (empty conversion cache) with
// a second run of the same image (warm cache). Both produce the same digest.
func BenchmarkOptimizeCache(b *testing.B) {
	img := benchImage(b)
	ctx := context.Background()
	run := func(b *testing.B, c cache.Cache) string {
		res, err := optimize.Image(ctx, img, optimize.WithCache(c), optimize.WithTempDir(b.TempDir()))
		if err != nil {
			b.Fatal(err)
		}
		defer res.Close()
		return res.Digest
	}
	var cold, warm string
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			c, err := cache.NewDir(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			cold = run(b, c)
		}
	})
	b.Run("warm", func(b *testing.B) {
		c, err := cache.NewDir(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		run(b, c)
		for b.Loop() {
			warm = run(b, c)
		}
	})
	if cold != "" && warm != "" && cold != warm {
		b.Fatalf("warm run gave %s, cold run %s", warm, cold)
	}
}
