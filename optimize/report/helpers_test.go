package report

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// noise returns n pseudo-random bytes that compress about 2:1.
func noise(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 11))
	b := make([]byte, n)
	for i := range b {
		if i%2 == 0 {
			b[i] = byte(r.UintN(256))
		} else {
			b[i] = 'x'
		}
	}
	return string(b)
}

// testLayer is a layer of a test image and its blob.
type testLayer struct {
	blob   []byte
	layer  v1.Layer
	annots map[string]string
}

// lazyLayer encodes tar as eStargz (or another format) with layers.Encode.
func lazyLayer(t testing.TB, tarBytes []byte, opt layers.EncodeOptions) testLayer {
	t.Helper()
	var out bytes.Buffer
	enc, err := layers.Encode(context.Background(), io.NewSectionReader(bytes.NewReader(tarBytes), 0, int64(len(tarBytes))), &out, opt)
	if err != nil {
		t.Fatal(err)
	}
	blob := out.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil },
		tarball.WithMediaType(enc.MediaType))
	if err != nil {
		t.Fatal(err)
	}
	return testLayer{blob: blob, layer: l, annots: enc.Annotations}
}

// gzipLayer is a plain gzip layer.
func gzipLayer(t testing.TB, l testimage.Layer) testLayer {
	t.Helper()
	layer, err := l.Compressed(compression.GZip)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	blob, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return testLayer{blob: blob, layer: layer}
}

// testImage assembles layers into an image.
func testImage(t testing.TB, cfg v1.Config, ls ...testLayer) v1.Image {
	t.Helper()
	adds := make([]mutate.Addendum, len(ls))
	for i, l := range ls {
		adds[i] = mutate.Addendum{Layer: l.layer, Annotations: l.annots, History: v1.History{CreatedBy: fmt.Sprintf("layer %d", i)}}
	}
	img, err := testimage.ImageFrom(v1.ConfigFile{Config: cfg}, adds...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

const chunk = 64 << 10

// The fixture: a gzip base, an eStargz layer with a prioritized library
// and a large file of four chunks, an eStargz app layer without landmark.
func fixtureLayers(t testing.TB) (base, lib, app testLayer) {
	base = gzipLayer(t, testimage.Layer{
		testimage.Dir("usr", 0o755), testimage.Dir("usr/bin", 0o755), testimage.Dir("etc", 0o755),
		testimage.Symlink("bin", "usr/bin"),
		testimage.File("usr/bin/sh", noise(1, 10_000), testimage.Mode(0o755)),
		testimage.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
	})
	lib = lazyLayer(t, testimage.Layer{
		testimage.Dir("usr", 0o755), testimage.Dir("usr/lib", 0o755), testimage.Dir("usr/share", 0o755),
		testimage.File("usr/lib/app.so", noise(2, 100_000)),
		testimage.File("usr/lib/big.dat", noise(3, 200_000)),
		testimage.File("usr/share/unused", noise(4, 50_000)),
	}.Tar(), layers.EncodeOptions{ChunkSize: chunk, Prioritized: []string{"usr/lib/app.so"}})
	app = lazyLayer(t, testimage.Layer{
		testimage.Dir("app", 0o755),
		testimage.File("app/main", noise(5, 20_000), testimage.Mode(0o755)),
	}.Tar(), layers.EncodeOptions{ChunkSize: chunk})
	return base, lib, app
}

var fixtureFiles = []string{"/bin/sh", "/usr/lib/app.so", "/usr/lib/big.dat", "/app/main", "/missing", "/usr/lib/app.so"}

func fixtureProfile() *profile.Profile {
	return &profile.Profile{Source: profile.SourceFile, Files: fixtureFiles}
}

// zeroCPU are rates under which CPU work takes no time.
var zeroCPU = Rates{GzipDecompress: 1e300, ZstdDecompress: 1e300, Verify: 1e300, Unpack: 1e300}

// latencyOnly and bandwidthOnly are networks whose times are easy to
// compute by hand.
var (
	latencyOnly   = Network{Name: "latency", RTT: 10 * time.Millisecond}
	bandwidthOnly = Network{Name: "bandwidth", BytesPerSecond: 1e6}
)

var fixtureImageConfig = v1.Config{Entrypoint: []string{"/bin/sh"}}

func fixtureLayersList(t testing.TB) []testLayer {
	base, lib, app := fixtureLayers(t)
	return []testLayer{base, lib, app}
}
