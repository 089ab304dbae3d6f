package oracle_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/oracle"
	ti "github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
)

// build converts a layer tar with estargz.Build (which sorts entries and
// keeps only the last entry of a name).
func build(t testing.TB, tarBytes []byte, opts ...estargz.Option) ([]byte, digest.Digest) {
	t.Helper()
	blob, err := estargz.Build(io.NewSectionReader(bytes.NewReader(tarBytes), 0, int64(len(tarBytes))), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer blob.Close()
	b, err := io.ReadAll(blob)
	if err != nil {
		t.Fatal(err)
	}
	return b, blob.TOCDigest()
}

// appendTar converts a layer tar with estargz's Writer, which keeps the
// entries in tar order, duplicates included.
func appendTar(t testing.TB, tarBytes []byte) ([]byte, digest.Digest) {
	t.Helper()
	var buf bytes.Buffer
	w := estargz.NewWriter(&buf)
	if err := w.AppendTar(bytes.NewReader(tarBytes)); err != nil {
		t.Fatal(err)
	}
	d, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), d
}

func readTOC(t testing.TB, blob []byte, opts ...oracle.TOCOption) *oracle.Layer {
	t.Helper()
	l, err := oracle.ReadTOC(bytes.NewReader(blob), int64(len(blob)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func applyLayers(t testing.TB, ls ...*oracle.Layer) *oracle.FS {
	t.Helper()
	fs, err := oracle.Apply(ls...)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestReadTOCMatchesTar converts random layers with estargz.Build (gzip
// and zstd:chunked) and checks each lazy view against the tar it came
// from, and against the tar a full pull of the blob extracts.
func TestReadTOCMatchesTar(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 4
	}
	for seed := range uint64(seeds) {
		layers := ti.Random(newRand(seed), ti.RandomOptions{Layers: 2, Specials: seed%2 == 0})
		for li, l := range layers {
			raw := l.Tar()
			for _, zc := range []bool{false, true} {
				t.Run(fmt.Sprintf("seed %d layer %d zstd %v", seed, li, zc), func(t *testing.T) {
					var opts []estargz.Option
					if zc {
						opts = append(opts, estargz.WithCompression(zstdCompression{&zstdchunked.Compressor{CompressionLevel: zstd.SpeedDefault}, new(zstdchunked.Decompressor)}))
					}
					// Prioritize a top-level file so a landmark is written
					// (Build wants a prioritized file's parents in the tar).
					src := readLayers(t, l)[0]
					for _, e := range src.Entries {
						if e.Type == oracle.TypeFile && !strings.Contains(e.Path, "/") {
							opts = append(opts, estargz.WithPrioritizedFiles([]string{e.Name}))
							break
						}
					}
					blob, tocDigest := build(t, raw, opts...)
					lazy := readTOC(t, blob, oracle.WithTOCDigest(tocDigest), oracle.TOCParallelism(2))
					if lazy.TOCDigest != tocDigest.String() {
						t.Errorf("TOCDigest %s, want %s", lazy.TOCDigest, tocDigest)
					}
					want := applyLayers(t, src)
					if c := oracle.Compare(want, applyLayers(t, lazy), oracle.Sides("tar", "lazy")); !c.Equal() {
						t.Errorf("lazy view differs from the tar:\n%s", c)
					}
					full, err := oracle.ReadBlob(bytes.NewReader(blob))
					if err != nil {
						t.Fatal(err)
					}
					c := oracle.Compare(want, applyLayers(t, full), oracle.Sides("tar", "full pull"), oracle.IgnoreRootNames(oracle.LazyOnlyNames...))
					if !c.Equal() {
						t.Errorf("full pull differs from the tar:\n%s", c)
					}
				})
			}
		}
	}
}

func TestReadTOCLandmarksAndMarkers(t *testing.T) {
	l := ti.Layer{
		ti.Dir("d", 0o755), ti.File("d/f", "F"), ti.Whiteout("d/gone"), ti.Opaque("o"),
		ti.File("x", "X"), ti.Whiteout("x"), ti.File("d/.wh..wh.plnk", ""),
	}
	blob, _ := build(t, l.Tar(ti.WithParents()), estargz.WithPrioritizedFiles([]string{"d/f"}))
	lazy := readTOC(t, blob)
	var got []string
	for _, e := range lazy.Entries {
		got = append(got, fmt.Sprintf("%s %s", e.Type, e.Path))
	}
	// Tree order: siblings by name, ".wh.gone" before "f".
	want := []string{"dir d", "whiteout d/gone", "file d/f", "dir o", "opaque o", "file x"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	wantHidden := []oracle.Hidden{
		{Path: ".prefetch.landmark", Reason: "prefetch landmark, hidden at the root"},
		{Path: ".wh.x", Reason: "whiteout of a name the same directory has"},
		{Path: "d/.wh..wh.plnk", Reason: "reserved whiteout name"},
	}
	if diff := cmp.Diff(wantHidden, lazy.Hidden); diff != "" {
		t.Errorf("hidden (-want +got):\n%s", diff)
	}
	// A full pull extracts the landmark and the TOC as files.
	full, err := oracle.ReadBlob(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	c := oracle.Compare(applyLayers(t, lazy), applyLayers(t, full), oracle.Sides("lazy", "full pull"))
	var paths []string
	for _, d := range c.Differences {
		paths = append(paths, d.Field+" "+d.Path)
	}
	if diff := cmp.Diff([]string{"extra .prefetch.landmark", "extra stargz.index.json"}, paths); diff != "" {
		t.Errorf("full pull vs lazy (-want +got):\n%s\n%s", diff, c)
	}
}

// TestReadTOCDuplicateWithLink is the case the tar and lazy views disagree
// on: a name written twice in one layer with a hard link to the first copy
// in between. Applied as a tar, the link keeps the first content; the
// estargz reader resolves the link by name, to the last entry.
func TestReadTOCDuplicateWithLink(t *testing.T) {
	l := ti.Layer{ti.File("f", "one"), ti.Hardlink("h", "f"), ti.File("f", "two")}
	raw := l.Tar()
	tarFS := applyLayers(t, readLayers(t, l)...)

	blob, _ := appendTar(t, raw)
	lazyFS := applyLayers(t, readTOC(t, blob))
	c := oracle.Compare(tarFS, lazyFS, oracle.Sides("tar", "lazy"))
	var got []string
	for _, d := range c.Differences {
		got = append(got, d.Field+" "+d.Path)
	}
	if diff := cmp.Diff([]string{"hardlinks f", "content h", "hardlinks h"}, got); diff != "" {
		t.Errorf("differences (-want +got):\n%s\n%s", diff, c)
	}

	// estargz.Build keeps only the last "f", after the link: a full pull
	// of its output cannot even be applied.
	built, _ := build(t, raw)
	full, err := oracle.ReadBlob(bytes.NewReader(built))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oracle.Apply(full); err == nil || !strings.Contains(err.Error(), "hard link target /f does not exist") {
		t.Errorf("applying estargz.Build's output: got %v, want a missing hard link target", err)
	}
}

// TestReadTOCImplicitDirectory shows why lazy layers must be compared
// stacked: a lazy layer that adds to a lower directory without a
// directory entry presents the directory as 0755 root:root, and overlayfs
// takes the directory's attributes from the top layer that has it.
func TestReadTOCImplicitDirectory(t *testing.T) {
	lower := ti.Layer{ti.Dir("d", 0o700, ti.Owner(1000, 1000)), ti.File("d/a", "A")}
	upper := ti.Layer{ti.File("d/b", "B")}
	ls := readLayers(t, lower, upper)
	blob, _ := build(t, upper.Tar())
	tarFS := applyLayers(t, ls...)
	lazyFS := applyLayers(t, ls[0], readTOC(t, blob))
	c := oracle.Compare(tarFS, lazyFS, oracle.Sides("tar", "lazy"))
	want := []string{"/d: mode 0700, lazy has 0755", "/d: owner 1000:1000, lazy has 0:0"}
	var got []string
	for _, d := range c.Differences {
		got = append(got, d.Msg)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestReadTOCErrors(t *testing.T) {
	big := ti.Layer{ti.File("big", pseudoString(7, 300<<10)), ti.File("small", "s")}
	blob, tocDigest := appendTar(t, big.Tar())

	t.Run("TOC digest", func(t *testing.T) {
		_, err := oracle.ReadTOC(bytes.NewReader(blob), int64(len(blob)), oracle.WithTOCDigest(digest.FromString("other")))
		if !errors.Is(err, oracle.ErrTOC) || !strings.Contains(err.Error(), "invalid TOC JSON") {
			t.Errorf("got %v", err)
		}
		readTOC(t, blob, oracle.WithTOCDigest(tocDigest))
	})
	t.Run("corrupt chunk", func(t *testing.T) {
		bad := slices.Clone(blob)
		bad[100<<10] ^= 0xff // inside the stored (incompressible) content of big
		_, err := oracle.ReadTOC(bytes.NewReader(bad), int64(len(bad)))
		if !errors.Is(err, oracle.ErrTOC) || !strings.Contains(err.Error(), "/big:") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("hostile footer", func(t *testing.T) {
		// A footer whose TOC offset lies past the end makes estargz
		// v0.19.1 slice with a negative length.
		extra := []byte{'S', 'G', 22, 0}
		extra = append(extra, []byte(fmt.Sprintf("%016xSTARGZ", int64(1)<<40))...)
		bad := append(slices.Clone(blob[:len(blob)-estargz.FooterSize]), estargz.CreateGzipFooter(extra)...)
		_, err := oracle.ReadTOC(bytes.NewReader(bad), int64(len(bad)))
		if !errors.Is(err, oracle.ErrTOC) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("hostile zstd:chunked footer", func(t *testing.T) {
		// estargz v0.19.1 allocates the TOC length the footer gives.
		zc, _ := build(t, big.Tar(), estargz.WithCompression(zstdCompression{&zstdchunked.Compressor{CompressionLevel: zstd.SpeedDefault}, new(zstdchunked.Decompressor)}))
		bad := slices.Clone(zc)
		binary.LittleEndian.PutUint64(bad[len(bad)-zstdchunked.FooterSize+8:], 8<<30)
		_, err := oracle.ReadTOC(bytes.NewReader(bad), int64(len(bad)))
		if !errors.Is(err, oracle.ErrTOC) || !strings.Contains(err.Error(), "the zstd:chunked footer puts the TOC at") {
			t.Errorf("got %v", err)
		}
		readTOC(t, zc)
	})
	t.Run("not estargz", func(t *testing.T) {
		raw := big.Tar()
		if _, err := oracle.ReadTOC(bytes.NewReader(raw), int64(len(raw))); !errors.Is(err, oracle.ErrTOC) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("hard link to a lower layer", func(t *testing.T) {
		b, _ := appendTar(t, ti.Layer{ti.Hardlink("h", "f")}.Tar())
		_, err := oracle.ReadTOC(bytes.NewReader(b), int64(len(b)))
		if !errors.Is(err, oracle.ErrTOC) || !strings.Contains(err.Error(), "isn't found") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("hard link that the reader turns into a directory", func(t *testing.T) {
		// As a tar this applies: h keeps the file, then f becomes a
		// directory. The reader resolves h to the last "f".
		l := ti.Layer{ti.File("f", "F"), ti.Hardlink("h", "f"), ti.Dir("f", 0o755)}
		applyLayers(t, readLayers(t, l)...)
		b, _ := appendTar(t, l.Tar())
		_, err := oracle.ReadTOC(bytes.NewReader(b), int64(len(b)))
		if !errors.Is(err, oracle.ErrTOC) || !strings.Contains(err.Error(), "a hard link to a directory") {
			t.Errorf("got %v", err)
		}
	})
}

// zstdCompression is the estargz.Compression that makes Build write
// zstd:chunked.
type zstdCompression struct {
	*zstdchunked.Compressor
	*zstdchunked.Decompressor
}

func pseudoString(seed uint64, n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(randReader(seed), b); err != nil {
		panic(err)
	}
	return string(b)
}

// FuzzReadTOC feeds ReadTOC mutated eStargz and zstd:chunked blobs: it
// must return a layer or an error, never panic or hang, and a layer it
// returns must apply (or fail to) without panicking.
func FuzzReadTOC(f *testing.F) {
	base, err := os.ReadFile(filepath.Join(testdata, "base.tar"))
	if err != nil {
		f.Fatal(err)
	}
	gz, _ := appendTar(f, base)
	f.Add(gz)
	zc, _ := build(f, base, estargz.WithCompression(zstdCompression{&zstdchunked.Compressor{CompressionLevel: zstd.SpeedDefault}, new(zstdchunked.Decompressor)}))
	f.Add(zc)
	small, _ := appendTar(f, ti.Layer{ti.File("f", "one"), ti.Hardlink("h", "f"), ti.Whiteout("x"), ti.Opaque("d")}.Tar())
	f.Add(small)
	f.Fuzz(func(t *testing.T, blob []byte) {
		l, err := oracle.ReadTOC(bytes.NewReader(blob), int64(len(blob)))
		if err != nil {
			if !errors.Is(err, oracle.ErrTOC) {
				t.Fatalf("error %v does not wrap ErrTOC", err)
			}
			return
		}
		if fs, err := oracle.Apply(l); err == nil && !oracle.Compare(fs, fs).Equal() {
			t.Fatal("a filesystem differs from itself")
		}
	})
}
