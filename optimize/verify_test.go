package optimize_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// TestVerifyCatches: every way of breaking an image that this round found
// (and a few more) makes Verify fail, naming the problem. Each target is
// built by hand, around the optimizer: a lower hard-link target removed, a
// file changed, estargz.Build's own eStargz of a name written twice with a
// link in between, a zstd:chunked layer with a prefetch landmark,
// annotations dropped or wrong, a corrupted chunk, a wrong diff_id.
func TestVerifyCatches(t *testing.T) {
	linked := []testimage.Layer{
		{testimage.Dir("d", 0o755), testimage.File("d/orig", "original content")},
		{testimage.Hardlink("link", "d/orig")},
		{testimage.Whiteout("d/orig")},
	}
	twice := []testimage.Layer{
		{testimage.File("f", "first copy"), testimage.Hardlink("link", "f"), testimage.File("f", "second copy")},
	}
	plain := []testimage.Layer{
		{testimage.Dir("app", 0o755), testimage.File("app/a", strings.Repeat("a", 3000)), testimage.File("app/b", "b")},
	}
	for _, c := range []struct {
		name string
		src  []testimage.Layer
		// dst returns the broken target.
		dst  func(t *testing.T, src v1.Image) v1.Image
		want string
	}{{
		name: "lower hard-link target removed",
		src:  linked,
		dst: func(t *testing.T, _ v1.Image) v1.Image {
			return imageOf(t, gzipLayers(t,
				testimage.Layer{testimage.Dir("d", 0o755)},
				linked[1], linked[2])...)
		},
		want: "full pull: layer does not apply",
	}, {
		name: "a file changed",
		src:  plain,
		dst: func(t *testing.T, _ v1.Image) v1.Image {
			return imageOf(t, gzipLayers(t, testimage.Layer{testimage.Dir("app", 0o755),
				testimage.File("app/a", strings.Repeat("a", 3000)), testimage.File("app/b", "B")})...)
		},
		want: "/app/b: content",
	}, {
		name: "a mode changed",
		src:  plain,
		dst: func(t *testing.T, _ v1.Image) v1.Image {
			return imageOf(t, gzipLayers(t, testimage.Layer{testimage.Dir("app", 0o755),
				testimage.File("app/a", strings.Repeat("a", 3000)), testimage.File("app/b", "b", testimage.Mode(0o600))})...)
		},
		want: "/app/b: mode",
	}, {
		name: "a hard link inside one layer made a copy",
		src:  []testimage.Layer{{testimage.File("a", "shared"), testimage.Hardlink("b", "a")}},
		dst: func(t *testing.T, _ v1.Image) v1.Image {
			return imageOf(t, gzipLayers(t, testimage.Layer{testimage.File("a", "shared"), testimage.File("b", "shared")})...)
		},
		want: "full pull: /a: hard links with /b in source, none (a separate inode) in target",
	}, {
		name: "a file added",
		src:  plain,
		dst: func(t *testing.T, _ v1.Image) v1.Image {
			return imageOf(t, gzipLayers(t, append(plain[0], testimage.File("app/c", "c")))...)
		},
		want: "/app/c",
	}, {
		name: "estargz.Build of a name twice with a link in between",
		src:  twice,
		dst: func(t *testing.T, _ v1.Image) v1.Image {
			return imageOf(t, referenceLazy(t, twice[0].Tar(), nil))
		},
		want: "lazy pull: /link: content",
	}, {
		name: "zstd:chunked with a prefetch landmark",
		src:  plain,
		dst: func(t *testing.T, _ v1.Image) v1.Image {
			return imageOf(t, referenceLazy(t, plain[0].Tar(), zstdChunked{&zstdchunked.Compressor{CompressionLevel: zstd.SpeedDefault}, &zstdchunked.Decompressor{}}, "app/b"))
		},
		want: "extract as a file",
	}, {
		name: "eStargz TOC digest annotation dropped",
		src:  plain,
		dst: func(t *testing.T, src v1.Image) v1.Image {
			return withLayerAnnotations(t, optimized(t, src, layers.FormatEStargz), func(a map[string]string) {
				delete(a, estargz.TOCJSONDigestAnnotation)
			})
		},
		want: "stargz-snapshotter cannot verify it",
	}, {
		name: "eStargz TOC digest annotation wrong",
		src:  plain,
		dst: func(t *testing.T, src v1.Image) v1.Image {
			return withLayerAnnotations(t, optimized(t, src, layers.FormatEStargz), func(a map[string]string) {
				a[estargz.TOCJSONDigestAnnotation] = "sha256:" + strings.Repeat("0", 64)
			})
		},
		want: "invalid TOC JSON",
	}, {
		name: "zstd:chunked manifest checksum wrong",
		src:  plain,
		dst: func(t *testing.T, src v1.Image) v1.Image {
			return withLayerAnnotations(t, optimized(t, src, layers.FormatZstdChunked), func(a map[string]string) {
				a[zstdchunked.ManifestChecksumAnnotation] = "sha256:" + strings.Repeat("0", 64)
			})
		},
		want: "the TOC frame hashes to",
	}, {
		name: "zstd:chunked annotations dropped",
		src:  plain,
		dst: func(t *testing.T, src v1.Image) v1.Image {
			return withLayerAnnotations(t, optimized(t, src, layers.FormatZstdChunked), func(a map[string]string) {
				for k := range a {
					if strings.Contains(k, "zstd-chunked") {
						delete(a, k)
					}
				}
			})
		},
		want: "cannot pull it partially",
	}, {
		name: "a chunk corrupted",
		src:  plain,
		dst: func(t *testing.T, src v1.Image) v1.Image {
			out := optimized(t, src, layers.FormatEStargz)
			ls, err := out.Layers()
			if err != nil {
				t.Fatal(err)
			}
			blob := readAll(t, ls[0])
			// "aaa..." compresses to a run of repeated bytes; flip one in
			// the middle of the first member holding it.
			i := bytes.Index(blob, []byte{0x4a, 0x4c, 0x1c})
			if i < 0 {
				i = len(blob) / 3
			}
			blob[i+1] ^= 0xff
			diffID, err := ls[0].DiffID()
			if err != nil {
				t.Fatal(err)
			}
			return imageOf(t, mutate.Addendum{Layer: &brokenLayer{blob: blob, diffID: diffID}, Annotations: mustDescriptor(t, out, 0).Annotations})
		},
		want: "layer 0",
	}, {
		name: "diff_id wrong",
		src:  plain,
		dst: func(t *testing.T, src v1.Image) v1.Image {
			cf, err := src.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			cf = cf.DeepCopy()
			cf.RootFS.DiffIDs[0].Hex = strings.Repeat("1", 64)
			img, err := mutate.ConfigFile(src, cf)
			if err != nil {
				t.Fatal(err)
			}
			return img
		},
		want: "the config's diff_id",
	}} {
		t.Run(c.name, func(t *testing.T) {
			src := buildImage(t, c.src)
			v, err := optimize.VerifyImage(context.Background(), src, c.dst(t, src), optimize.WithTempDir(t.TempDir()))
			if err != nil {
				if strings.Contains(err.Error(), c.want) {
					return
				}
				t.Fatalf("verify: %v", err)
			}
			if v.OK {
				t.Fatal("verify says OK")
			}
			all := strings.Join(v.Images[0].Differences, "\n")
			if !strings.Contains(all, c.want) {
				t.Errorf("differences do not mention %q:\n%s", c.want, all)
			}
		})
	}
}

func optimized(t *testing.T, src v1.Image, f layers.Format) v1.Image {
	t.Helper()
	out, _ := optimizeImage(t, src, optimize.WithFormat(f), optimize.WithProfiler(nil))
	return out
}

func gzipLayers(t *testing.T, ls ...testimage.Layer) []mutate.Addendum {
	t.Helper()
	var out []mutate.Addendum
	for _, l := range ls {
		vl, err := l.Compressed(gzipCompression)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, mutate.Addendum{Layer: vl})
	}
	return out
}

func imageOf(t *testing.T, adds ...mutate.Addendum) v1.Image {
	t.Helper()
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// referenceLazy converts an uncompressed tar with estargz.Build (eStargz, or
// zstd:chunked with its compressor), prioritizing the named files.
func referenceLazy(t *testing.T, tarBytes []byte, c estargz.Compression, prioritized ...string) mutate.Addendum {
	t.Helper()
	opts := []estargz.Option{}
	if c != nil {
		opts = append(opts, estargz.WithCompression(c))
	}
	if len(prioritized) > 0 {
		opts = append(opts, estargz.WithPrioritizedFiles(prioritized))
	}
	blob, err := estargz.Build(io.NewSectionReader(bytes.NewReader(tarBytes), 0, int64(len(tarBytes))), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer blob.Close()
	b, err := io.ReadAll(blob)
	if err != nil {
		t.Fatal(err)
	}
	annots := map[string]string{estargz.TOCJSONDigestAnnotation: blob.TOCDigest().String()}
	if zc, ok := c.(zstdChunked); ok {
		annots = zc.Metadata
	}
	return layerWithAnnotations(t, b, annots)
}

func layerWithAnnotations(t *testing.T, blob []byte, annots map[string]string) mutate.Addendum {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return mutate.Addendum{Layer: l, Annotations: annots}
}

// withLayerAnnotations rebuilds img with every layer's annotations changed
// by edit.
func withLayerAnnotations(t *testing.T, img v1.Image, edit func(map[string]string)) v1.Image {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var adds []mutate.Addendum
	for i := range ls {
		a := map[string]string{}
		for k, v := range mustDescriptor(t, img, i).Annotations {
			a[k] = v
		}
		edit(a)
		adds = append(adds, layerWithAnnotations(t, readAll(t, ls[i]), a))
	}
	return imageOf(t, adds...)
}

func mustDescriptor(t *testing.T, img v1.Image, i int) v1.Descriptor {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers[i]
}

func readAll(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var gzipCompression = compression.GZip

// zstdChunked is estargz's zstd:chunked compression for estargz.Build.
type zstdChunked struct {
	*zstdchunked.Compressor
	*zstdchunked.Decompressor
}

// brokenLayer is a gzip blob whose DiffID is given, not computed, so that
// a corrupted blob can be part of an image.
type brokenLayer struct {
	blob   []byte
	diffID v1.Hash
}

func (l *brokenLayer) Digest() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.blob))
	return h, err
}
func (l *brokenLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *brokenLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *brokenLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *brokenLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}
func (l *brokenLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("a broken layer has no uncompressed stream")
}
