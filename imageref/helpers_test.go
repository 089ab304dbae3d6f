package imageref

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func plat(s string) v1.Platform {
	p, err := parsePlatform(s)
	if err != nil {
		panic(err)
	}
	return p
}

func spec(t testing.TB, s string) PlatformSpec {
	t.Helper()
	p, err := ParsePlatforms(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testImage is a random image (2 layers) whose config says platform p.
func testImage(t testing.TB, seed int64, p v1.Platform) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2, random.WithSource(rand.NewSource(seed)))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant, cfg.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type entry struct {
	img    v1.Image
	idx    v1.ImageIndex
	plat   *v1.Platform
	annots map[string]string
}

func buildIndex(t testing.TB, entries ...entry) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, e := range entries {
		var add mutate.Appendable = e.img
		if e.idx != nil {
			add = e.idx
		}
		adds = append(adds, mutate.IndexAddendum{Add: add, Descriptor: v1.Descriptor{Platform: e.plat, Annotations: e.annots}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	if _, err := idx.Digest(); err != nil {
		t.Fatal(err)
	}
	return idx
}

func pp(s string) *v1.Platform { p := plat(s); return &p }

// testTree is a nested multi-platform index:
//
//	amd64, arm64 (no variant), arm/v6, arm/v7, an attestation (unknown/unknown),
//	and a nested index of s390x and ppc64le.
type testTree struct {
	idx    v1.ImageIndex
	nested v1.ImageIndex
	images map[string]v1.Image // by platform string
}

func newTestTree(t testing.TB) testTree {
	t.Helper()
	tt := testTree{images: map[string]v1.Image{}}
	for i, p := range []string{"linux/amd64", "linux/arm64", "linux/arm/v6", "linux/arm/v7", "unknown/unknown", "linux/s390x", "linux/ppc64le"} {
		tt.images[p] = testImage(t, int64(100+i), plat(p))
	}
	tt.nested = buildIndex(t,
		entry{img: tt.images["linux/s390x"], plat: pp("linux/s390x")},
		entry{img: tt.images["linux/ppc64le"], plat: pp("linux/ppc64le")},
	)
	tt.idx = buildIndex(t,
		entry{img: tt.images["linux/amd64"], plat: pp("linux/amd64")},
		entry{img: tt.images["linux/arm64"], plat: pp("linux/arm64")},
		entry{img: tt.images["linux/arm/v6"], plat: pp("linux/arm/v6")},
		entry{img: tt.images["linux/arm/v7"], plat: pp("linux/arm/v7")},
		entry{img: tt.images["unknown/unknown"], plat: pp("unknown/unknown"), annots: map[string]string{"vnd.docker.reference.type": "attestation-manifest"}},
		entry{idx: tt.nested},
	)
	return tt
}

func digestOf(t testing.TB, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func rawOf(t testing.TB, d interface{ RawManifest() ([]byte, error) }) []byte {
	t.Helper()
	b, err := d.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// snapshot maps every path under dir to a hash of its content ("dir" for
// directories), to check a failed write left a tree untouched.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertUnchanged(t testing.TB, dir string, before map[string]string) {
	t.Helper()
	if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
		t.Errorf("%s changed (-before +after):\n%s", dir, diff)
	}
}

// failingLayer serves the first half of its compressed bytes, then calls
// onHalf (if set) and fails with errInjected, or, with keepGoing set, serves
// the rest, so that only a cancelled context (onHalf = cancel) stops a copy.
type failingLayer struct {
	v1.Layer
	onHalf    func()
	keepGoing bool
	opened    atomic.Int32
}

var errInjected = errors.New("injected read failure")

func (l *failingLayer) Compressed() (io.ReadCloser, error) {
	l.opened.Add(1)
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	return io.NopCloser(&halfReader{b: b, half: len(b) / 2, l: l}), nil
}

type halfReader struct {
	b    []byte
	off  int
	half int
	l    *failingLayer
	hit  bool
}

func (r *halfReader) Read(p []byte) (int, error) {
	if r.off >= r.half && !r.hit {
		r.hit = true
		if r.l.onHalf != nil {
			r.l.onHalf()
		}
		if !r.l.keepGoing {
			return 0, errInjected
		}
	}
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	end := len(r.b)
	if !r.hit && end > r.half {
		end = r.half
	}
	n := copy(p, r.b[r.off:end])
	r.off += n
	return n, nil
}

// imageWithFailingLayer returns a 3-layer image whose last layer fails (or
// cancels) halfway through.
func imageWithFailingLayer(t testing.TB, seed int64, fl func(v1.Layer) *failingLayer) (v1.Image, *failingLayer) {
	t.Helper()
	base := testImage(t, seed, plat("linux/amd64"))
	l, err := random.Layer(64<<10, types.DockerLayer, random.WithSource(rand.NewSource(seed+1)))
	if err != nil {
		t.Fatal(err)
	}
	f := fl(l)
	img, err := mutate.AppendLayers(base, f)
	if err != nil {
		t.Fatal(err)
	}
	return img, f
}

func mustRead(t testing.TB, ref string, opts ...Option) *Artifact {
	t.Helper()
	r, err := Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Read(context.Background(), r, opts...)
	if err != nil {
		t.Fatalf("Read(%s): %v", ref, err)
	}
	return a
}

func mustWrite(t testing.TB, ref string, a *Artifact, opts ...Option) {
	t.Helper()
	r, err := Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), r, a, opts...); err != nil {
		t.Fatalf("Write(%s): %v", ref, err)
	}
}

func tryWrite(ref string, a *Artifact, opts ...Option) error {
	return tryWriteCtx(context.Background(), ref, a, opts...)
}

func tryWriteCtx(ctx context.Context, ref string, a *Artifact, opts ...Option) error {
	r, err := Parse(ref)
	if err != nil {
		return err
	}
	return Write(ctx, r, a, opts...)
}

func tryRead(ref string, opts ...Option) (*Artifact, error) {
	r, err := Parse(ref)
	if err != nil {
		return nil, err
	}
	return Read(context.Background(), r, opts...)
}

func equalBytes(a, b []byte) bool { return bytes.Equal(a, b) }
