package optimize_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func newDirCache(t *testing.T) *cache.Dir {
	t.Helper()
	c, err := cache.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCacheReuse: a second run with a warm cache converts nothing and gives
// the same digest.
func TestCacheReuse(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	src := buildImage(t, testimage.Random(r, testimage.RandomOptions{Layers: 4, MaxFileSize: 1 << 14}))
	c := newDirCache(t)
	_, first := optimizeImage(t, src, optimize.WithCache(c))
	if first.CacheHits != 0 || first.CacheMisses != 4 {
		t.Errorf("first run: %d hits, %d misses; want 0, 4", first.CacheHits, first.CacheMisses)
	}
	out, second := optimizeImage(t, src, optimize.WithCache(c))
	if second.Digest != first.Digest {
		t.Fatalf("warm run gave %s, cold %s", second.Digest, first.Digest)
	}
	if second.CacheHits != 4 || second.CacheMisses != 0 {
		t.Errorf("second run: %d hits, %d misses; want 4, 0", second.CacheHits, second.CacheMisses)
	}
	for _, l := range second.Layers {
		if l.Action != optimize.ActionReused {
			t.Errorf("layer %s: %s, want reused", l.InputDigest, l.Action)
		}
	}
	mustVerify(t, src, out)
}

// TestCacheNewAppVersion: when only the application layer changed, only it
// is converted, and the other output layers keep their digests.
func TestCacheNewAppVersion(t *testing.T) {
	base := []testimage.Layer{
		{testimage.Dir("usr", 0o755), testimage.File("usr/lib.so", "library v1")},
		{testimage.Dir("deps", 0o755), testimage.File("deps/pkg.py", "import os\n")},
	}
	build := func(app string) v1.Image {
		var ls []v1.Layer
		for _, l := range append(base, testimage.Layer{testimage.File("app.py", app)}) {
			vl, err := l.Compressed(compression.GZip)
			if err != nil {
				t.Fatal(err)
			}
			ls = append(ls, vl)
		}
		img, err := testimage.Image(v1.Config{Entrypoint: []string{"/usr/bin/python3", "/app.py"}}, ls...)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	c := newDirCache(t)
	v1out, _ := optimizeImage(t, build("print(1)\n"), optimize.WithCache(c))
	v2out, res := optimizeImage(t, build("print(2)\n"), optimize.WithCache(c))
	if res.CacheHits != 2 || res.CacheMisses != 1 {
		t.Errorf("new version: %d hits, %d misses; want 2, 1", res.CacheHits, res.CacheMisses)
	}
	if res.Layers[2].Action != optimize.ActionRewritten {
		t.Errorf("app layer: %s, want rewritten", res.Layers[2].Action)
	}
	a, _ := v1out.Layers()
	b, _ := v2out.Layers()
	for i := 0; i < 2; i++ {
		da, _ := a[i].Digest()
		db, _ := b[i].Digest()
		if da != db {
			t.Errorf("unchanged layer %d: %s in v1, %s in v2", i, da, db)
		}
	}
}

// TestReoptimizeIsNoop: an image optimized with the same options comes back
// unchanged, without work.
func TestReoptimizeIsNoop(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 1))
	src := buildImage(t, testimage.Random(r, testimage.RandomOptions{Layers: 3}))
	once, _ := optimizeImage(t, src, optimize.WithForce(true))
	twice, res := optimizeImage(t, once, optimize.WithForce(true))
	d1, _ := once.Digest()
	d2, _ := twice.Digest()
	if d1 != d2 {
		t.Fatalf("re-optimizing changed %s into %s", d1, d2)
	}
	for _, l := range res.Layers {
		if l.Action != optimize.ActionKept || l.Reason != "already optimized with these options" {
			t.Errorf("layer %s: %s (%s)", l.InputDigest, l.Action, l.Reason)
		}
	}
	// Other options do convert again.
	if _, res := optimizeImage(t, once, optimize.WithForce(true), optimize.WithLevel(1)); res.Layers[0].Action != optimize.ActionRewritten {
		t.Errorf("other options: layer 0 %s, want rewritten", res.Layers[0].Action)
	}
}

// TestCacheCorruptEntry: a damaged cache entry is a miss, never wrong
// output.
func TestCacheCorruptEntry(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	src := buildImage(t, testimage.Random(r, testimage.RandomOptions{Layers: 2}))
	dir := t.TempDir()
	c, err := cache.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, first := optimizeImage(t, src, optimize.WithCache(c))
	entries, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Damage every blob of the cache.
	for _, e := range entries {
		corruptBlob(t, dir, e.Digest)
	}
	out, second := optimizeImage(t, src, optimize.WithCache(c))
	if second.Digest != first.Digest {
		t.Errorf("after corruption: %s, want %s", second.Digest, first.Digest)
	}
	mustVerify(t, src, out)
}

// TestConcurrentOptimizesShareACache: several optimizers, each with its
// own handle on one cache directory, run at once and agree.
func TestConcurrentOptimizesShareACache(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 3))
	src := buildImage(t, testimage.Random(r, testimage.RandomOptions{Layers: 4, MaxFileSize: 1 << 12}))
	dir := t.TempDir()
	const n = 4
	digests := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := cache.NewDir(dir)
			if err != nil {
				errs[i] = err
				return
			}
			res, err := optimize.Image(context.Background(), src, optimize.WithCache(c), optimize.WithTempDir(t.TempDir()))
			if err != nil {
				errs[i] = err
				return
			}
			digests[i] = res.Digest
			errs[i] = res.Close()
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("optimizer %d: %v", i, errs[i])
		}
		if digests[i] != digests[0] {
			t.Errorf("optimizer %d gave %s, optimizer 0 %s", i, digests[i], digests[0])
		}
	}
	// And the cache they filled serves a run that converts nothing.
	c, _ := cache.NewDir(dir)
	out, res := optimizeImage(t, src, optimize.WithCache(c))
	if res.Digest != digests[0] || res.CacheMisses != 0 {
		t.Errorf("after the concurrent runs: %s with %d misses", res.Digest, res.CacheMisses)
	}
	mustVerify(t, src, out)
}

// layersOnly is a cache that keeps converted layers but no image records,
// so that every run assembles its image from the cached layers.
type layersOnly struct{ cache.Cache }

func (c layersOnly) Get(ctx context.Context, key string) (v1.Layer, error) {
	if strings.HasPrefix(key, "image/") {
		return nil, cache.ErrNotFound
	}
	return c.Cache.Get(ctx, key)
}

// TestCacheHitSameAsMiss: an image assembled from cached layers is the image
// a cold run writes, byte for byte, also when the input has a Docker
// manifest (which a converted zstd layer turns into an OCI one) and in every
// format.
func TestCacheHitSameAsMiss(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	src := buildImage(t, testimage.Random(r, testimage.RandomOptions{Layers: 3, MaxFileSize: 1 << 12}))
	docker := mutate.ConfigMediaType(mutate.MediaType(src, types.DockerManifestSchema2), types.DockerConfigJSON)
	for _, f := range formats {
		for name, in := range map[string]v1.Image{"oci": src, "docker": docker} {
			t.Run(f.String()+"/"+name, func(t *testing.T) {
				c := layersOnly{newDirCache(t)}
				_, cold := optimizeImage(t, in, optimize.WithCache(c), optimize.WithFormat(f))
				_, warm := optimizeImage(t, in, optimize.WithCache(c), optimize.WithFormat(f))
				if warm.CacheHits == 0 {
					t.Fatal("the second run hit nothing in the cache")
				}
				if warm.Digest != cold.Digest {
					t.Errorf("from cached layers %s, converted %s", warm.Digest, cold.Digest)
				}
			})
		}
	}
}
