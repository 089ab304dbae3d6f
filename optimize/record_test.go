package optimize

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// countingLayer counts how often a layer's content is read.
type countingLayer struct {
	v1.Layer
	reads *atomic.Int32
}

func (l countingLayer) Compressed() (io.ReadCloser, error) {
	l.reads.Add(1)
	return l.Layer.Compressed()
}

func (l countingLayer) Uncompressed() (io.ReadCloser, error) {
	l.reads.Add(1)
	return l.Layer.Uncompressed()
}

func recordTestImage(t *testing.T, reads *atomic.Int32) v1.Image {
	t.Helper()
	r := rand.New(rand.NewPCG(11, 11))
	var ls []v1.Layer
	for _, l := range testimage.Random(r, testimage.RandomOptions{Layers: 3, MaxFileSize: 1 << 12}) {
		vl, err := l.Compressed(compression.GZip)
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, countingLayer{vl, reads})
	}
	img, err := testimage.Image(v1.Config{Entrypoint: []string{"/bin/app"}}, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// firstRun optimizes a fresh test image into a new cache directory.
func firstRun(t *testing.T, reads *atomic.Int32) (v1.Image, *cache.Dir, *Result) {
	t.Helper()
	img := recordTestImage(t, reads)
	c, err := cache.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return img, c, optimizeOnce(t, img, c)
}

func optimizeOnce(t *testing.T, img v1.Image, c cache.Cache) *Result {
	t.Helper()
	res, err := Image(context.Background(), img, WithCache(c), WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Close() })
	return res
}

// TestImageRecord: optimizing an image again with the same options and
// cache replays its record: the same digest, every converted layer reused,
// and not one byte of the input layers read.
func TestImageRecord(t *testing.T) {
	var reads atomic.Int32
	img, c, first := firstRun(t, &reads)
	if reads.Load() == 0 {
		t.Fatal("the first run read no layer")
	}
	reads.Store(0)
	second := optimizeOnce(t, img, c)
	if second.Digest != first.Digest {
		t.Fatalf("replay gave %s, first run %s", second.Digest, first.Digest)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("replay read the input layers %d times", n)
	}
	ir := second.Images[0]
	if ir.CacheHits != 3 || ir.CacheMisses != 0 {
		t.Errorf("replay: %d hits, %d misses", ir.CacheHits, ir.CacheMisses)
	}
	for i, lr := range ir.Layers {
		if lr.Action != ActionReused || lr.OutputDigest != first.Images[0].Layers[i].OutputDigest || lr.DroppedEntries != first.Images[0].Layers[i].DroppedEntries {
			t.Errorf("layer %d: %+v, first run %+v", i, lr, first.Images[0].Layers[i])
		}
	}
}

// TestImageRecordMismatch: a record that does not rebuild the image it
// names (here: it claims another output digest) is not used; the image is
// optimized as usual and comes out right.
func TestImageRecordMismatch(t *testing.T) {
	var reads atomic.Int32
	img, c, first := firstRun(t, &reads)
	o, err := makeOptions([]Option{WithCache(c)})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := img.Digest()
	key := o.recordKey(in)
	b, _, err := cache.GetBytes(context.Background(), c, key, maxRecord)
	if err != nil {
		t.Fatalf("no record after the first run: %v", err)
	}
	var rec imageRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	rec.Result.OutputDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	rec.Result.Layers[0].DroppedEntries = 12345
	b, _ = json.Marshal(rec)
	if err := cache.PutBytes(context.Background(), c, key, recordMediaType, b); err != nil {
		t.Fatal(err)
	}
	second := optimizeOnce(t, img, c)
	if second.Digest != first.Digest {
		t.Fatalf("after a bad record: %s, want %s", second.Digest, first.Digest)
	}
	if second.Images[0].Layers[0].DroppedEntries == 12345 {
		t.Error("the bad record was used")
	}
	// The run stored a good record again: the next one replays it.
	third := optimizeOnce(t, img, c)
	if third.Digest != first.Digest || third.Images[0].Layers[0].DroppedEntries != first.Images[0].Layers[0].DroppedEntries {
		t.Errorf("after the record was rewritten: %s, %+v", third.Digest, third.Images[0].Layers[0])
	}
}
