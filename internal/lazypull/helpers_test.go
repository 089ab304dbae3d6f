package lazypull

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// noise returns n pseudo-random bytes that compress about 2:1.
func noise(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		if i%2 == 0 {
			b[i] = byte(r.UintN(256))
		} else {
			b[i] = 'a'
		}
	}
	return string(b)
}

// built is a test layer: its blob and how it was encoded.
type built struct {
	blob    []byte
	layer   v1.Layer
	annots  map[string]string
	encoded *layers.Encoded
}

// encode encodes tar as a lazy layer (or plain gzip when !opt.Format.Lazy()).
func encode(t testing.TB, tarBytes []byte, opt layers.EncodeOptions) built {
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
	return built{blob: blob, layer: l, annots: enc.Annotations, encoded: enc}
}

// gzipLayer is a plain gzip layer.
func gzipLayer(t testing.TB, l testimage.Layer) built {
	t.Helper()
	layer, err := l.Compressed(compression.GZip)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := io.ReadAll(rc)
	rc.Close()
	return built{blob: blob, layer: layer}
}

// image assembles layers into an image with an entrypoint.
func buildImage(t testing.TB, ls ...built) v1.Image {
	t.Helper()
	adds := make([]mutate.Addendum, len(ls))
	for i, l := range ls {
		adds[i] = mutate.Addendum{Layer: l.layer, Annotations: l.annots, History: v1.History{CreatedBy: fmt.Sprintf("layer %d", i)}}
	}
	img, err := testimage.ImageFrom(v1.ConfigFile{Config: v1.Config{Entrypoint: []string{"/bin/app"}}}, adds...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// push writes img to the in-process registry and returns its reference.
func push(t testing.TB, reg *registrytest.Server, repo string, img v1.Image) string {
	t.Helper()
	ref := reg.Ref(repo)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}
