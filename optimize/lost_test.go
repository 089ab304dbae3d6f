package optimize_test

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Legal layer stacks that Docker, BuildKit and containerd produce or accept,
// each of which an earlier version of the optimizer changed (a hard link
// lost its content) while verify said OK.
var nothingLostCases = []struct {
	name   string
	layers []testimage.Layer
	// link names a hard link whose content the output must keep, and
	// want that content.
	link, want string
}{
	{
		name: "cross-layer link, original whited out",
		layers: []testimage.Layer{
			{testimage.Dir("d", 0o755), testimage.File("d/orig", "original content")},
			{testimage.Hardlink("link", "d/orig")},
			{testimage.Whiteout("d/orig")},
		},
		link: "link", want: "original content",
	},
	{
		name: "cross-layer link, parent whited out",
		layers: []testimage.Layer{
			{testimage.Dir("d", 0o755), testimage.File("d/orig", "original content")},
			{testimage.Hardlink("link", "d/orig")},
			{testimage.Whiteout("d")},
		},
		link: "link", want: "original content",
	},
	{
		name: "cross-layer link, parent made opaque",
		layers: []testimage.Layer{
			{testimage.Dir("d", 0o755), testimage.File("d/orig", "original content")},
			{testimage.Hardlink("link", "d/orig")},
			{testimage.Dir("d", 0o755), testimage.Opaque("d"), testimage.File("d/new", "new")},
		},
		link: "link", want: "original content",
	},
	{
		name: "cross-layer link, original overwritten",
		layers: []testimage.Layer{
			{testimage.File("orig", "original content")},
			{testimage.Hardlink("link", "orig")},
			{testimage.File("orig", "replacement")},
		},
		link: "link", want: "original content",
	},
	{
		name: "chain of cross-layer links, every name but the last whited out",
		layers: []testimage.Layer{
			{testimage.File("a", "first")},
			{testimage.Hardlink("b", "a")},
			{testimage.Whiteout("a"), testimage.Hardlink("c", "b")},
			{testimage.Whiteout("b")},
		},
		link: "c", want: "first",
	},
	{
		name: "one name twice in a layer, a link to the first copy in between",
		layers: []testimage.Layer{
			{testimage.File("f", "first copy"), testimage.Hardlink("link", "f"), testimage.File("f", "second copy")},
		},
		link: "link", want: "first copy",
	},
	{
		name: "one name twice in a layer, links to both copies",
		layers: []testimage.Layer{
			{testimage.File("base", "base")},
			{testimage.File("f", "first copy"), testimage.Hardlink("l1", "f"), testimage.Hardlink("l2", "l1"),
				testimage.File("f", "second copy"), testimage.Hardlink("l3", "f")},
		},
		link: "l2", want: "first copy",
	},
	{
		name: "one name twice in a layer, a link to the first copy, the last an identical re-add",
		layers: []testimage.Layer{
			{testimage.File("f", "old")},
			{testimage.File("f", "first copy"), testimage.Hardlink("link", "f"), testimage.File("f", "old")},
		},
		link: "link", want: "first copy",
	},
	{
		name: "identical re-add of a hard-linked file",
		layers: []testimage.Layer{
			{testimage.File("f", "same"), testimage.Hardlink("link", "f")},
			{testimage.File("f", "same")},
		},
		link: "link", want: "same",
	},
	{
		name: "a whiteout under a directory its layer whites out, the file linked",
		layers: []testimage.Layer{
			{testimage.Dir("d", 0o755), testimage.File("d/f", "linked"), testimage.Hardlink("g", "d/f")},
			{testimage.Whiteout("d/f"), testimage.Whiteout("d")},
		},
		link: "g", want: "linked",
	},
	{
		name: "a whiteout under a directory its layer makes opaque, the file linked",
		layers: []testimage.Layer{
			{testimage.Dir("d", 0o755), testimage.Dir("d/e", 0o755), testimage.File("d/e/f", "linked"), testimage.Hardlink("g", "d/e/f")},
			{testimage.Dir("d", 0o755), testimage.Whiteout("d/e/f"), testimage.Opaque("d")},
		},
		link: "g", want: "linked",
	},
	{
		name: "PAX global header",
		layers: []testimage.Layer{
			{testimage.Raw(tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header",
				PAXRecords: map[string]string{"comment": "0123456789abcdef0123456789abcdef01234567"}}, nil),
				testimage.File("f", "content"), testimage.Hardlink("link", "f")},
		},
		link: "link", want: "content",
	},
}

// TestNothingLost: on each legal stack, for every target encoding, the
// optimized image's merged filesystem, applied by an applier that shares no
// code with the optimizer, equals the input's, a lazy puller reading the
// TOC sees the link's content, and verify agrees.
func TestNothingLost(t *testing.T) {
	for _, c := range nothingLostCases {
		t.Run(c.name, func(t *testing.T) {
			src := buildImage(t, c.layers)
			want, err := testimage.ApplyImage(src)
			if err != nil {
				t.Fatalf("applying the input: %v", err)
			}
			if n, ok := want.Get(c.link); !ok || n.Digest != sha256Of(c.want) {
				t.Fatalf("the independent applier gives %s %+v, want content %q", c.link, n, c.want)
			}
			for _, f := range formats {
				t.Run(f.String(), func(t *testing.T) {
					out, _ := optimizeImage(t, src, optimize.WithFormat(f), optimize.WithProfiler(nil))
					got, err := testimage.ApplyImage(out)
					if err != nil {
						t.Fatalf("applying the output: %v", err)
					}
					if d := diffNodes(want.Nodes(), lazyMetadataHidden(f, got.Nodes())); d != "" {
						t.Errorf("merged filesystem changed (-input +output):\n%s", d)
					}
					if f.Lazy() {
						if got := lazyContent(t, out, c.link); got != c.want {
							t.Errorf("a lazy puller reads %s as %q, want %q", c.link, got, c.want)
						}
					}
					mustVerify(t, src, out)
				})
			}
		})
	}
}

// TestNothingLostKeptLayer: a hard link in a layer that stays
// byte-identical (cached on nodes) still finds its target below it, though a
// later layer deletes the target and the layer below is rewritten.
func TestNothingLostKeptLayer(t *testing.T) {
	for _, c := range nothingLostCases[:5] {
		t.Run(c.name, func(t *testing.T) {
			src := buildImage(t, c.layers)
			linkLayer := layerDigest(t, src, 1)
			want, err := testimage.ApplyImage(src)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range formats {
				t.Run(f.String(), func(t *testing.T) {
					out, res := optimizeImage(t, src, optimize.WithFormat(f), optimize.WithProfiler(nil), optimize.WithCachedLayers(linkLayer))
					if a := res.Layers[1].Action; a != optimize.ActionKept {
						t.Fatalf("layer 1: %s, want kept", a)
					}
					got, err := testimage.ApplyImage(out)
					if err != nil {
						t.Fatalf("applying the output: %v", err)
					}
					if d := diffNodes(want.Nodes(), lazyMetadataHidden(f, got.Nodes())); d != "" {
						t.Errorf("merged filesystem changed (-input +output):\n%s", d)
					}
					mustVerify(t, src, out)
				})
			}
		})
	}
}

// lazyContent returns the content of the file at name as a lazy puller
// sees it: the topmost layer whose TOC has the name, read through estargz.
func lazyContent(t *testing.T, img v1.Image, name string) string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(ls) - 1; i >= 0; i-- {
		r := openLazy(t, ls[i])
		if _, ok := r.Lookup(name); !ok {
			continue
		}
		fr, err := r.OpenFile(name)
		if err != nil {
			t.Fatalf("layer %d: opening %s: %v", i, name, err)
		}
		e, _ := r.Lookup(name)
		b, err := io.ReadAll(io.NewSectionReader(fr, 0, e.Size))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Fatalf("no layer's TOC has %s", name)
	return ""
}

// openLazy opens a lazy layer's TOC with the estargz reader.
func openLazy(t *testing.T, l v1.Layer) *estargz.Reader {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, err := layers.OpenLazy(io.NewSectionReader(bytesReaderAt(blob), 0, int64(len(blob))))
	if err != nil {
		t.Fatalf("opening the TOC: %v", err)
	}
	return r
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func sha256Of(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

// lazyMetadataHidden drops, for eStargz, the root entries the format defines
// (the TOC and the prefetch landmarks): a full pull extracts them from any
// eStargz layer, and stargz-snapshotter and containers/storage hide them.
func lazyMetadataHidden(f layers.Format, nodes []testimage.Node) []testimage.Node {
	if f != layers.FormatEStargz {
		return nodes // zstd:chunked adds nothing to the tar stream
	}
	out := nodes[:0:0]
	for _, n := range nodes {
		switch n.Path {
		case estargz.TOCTarName, estargz.PrefetchLandmark, estargz.NoPrefetchLandmark:
			continue
		}
		out = append(out, n)
	}
	return out
}

// diffNodes compares two merged filesystems path by path; which name a
// hard-linked file was linked from is not part of what a container sees,
// nor is an entry for the root, which containerd ignores (zstd:chunked
// layers get one for containers/storage).
func diffNodes(want, got []testimage.Node) string {
	return cmp.Diff(want, got, cmpopts.IgnoreFields(testimage.Node{}, "Origin"), cmpopts.EquateEmpty(),
		cmpopts.IgnoreSliceElements(func(n testimage.Node) bool { return n.Path == "." }),
		cmp.Transformer("content", func(n testimage.Node) testimage.Node {
			if n.Type == testimage.TypeFile {
				n.Linkname = ""
			}
			return n
		}))
}

// TestKeptLazyLayerAnnotations: a lazy layer that lost its descriptor
// annotations on the way (a docker-archive round trip drops them) is kept
// byte-identical with the annotations its puller verifies derived again from
// the blob.
func TestKeptLazyLayerAnnotations(t *testing.T) {
	src := buildImage(t, []testimage.Layer{{testimage.File("a", "a")}, {testimage.File("b", strings.Repeat("b", 5000))}})
	for _, f := range []layers.Format{layers.FormatEStargz, layers.FormatZstdChunked} {
		t.Run(f.String(), func(t *testing.T) {
			lazy, _ := optimizeImage(t, src, optimize.WithFormat(f), optimize.WithProfiler(nil))
			want := layerAnnotations(t, lazy)
			for _, a := range want {
				// zstd:chunked's prefetch size for stargz-snapshotter is
				// not recorded in the blob, and goes with the descriptor.
				delete(a, "containerd.io/snapshot/remote/stargz.prefetch")
			}
			path := filepath.Join(t.TempDir(), "image.tar")
			ref, err := name.ParseReference("example.com/app:lazy")
			if err != nil {
				t.Fatal(err)
			}
			if err := tarball.WriteToFile(path, ref, lazy); err != nil {
				t.Fatal(err)
			}
			stripped, err := tarball.ImageFromPath(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range layerAnnotations(t, stripped) {
				if len(a) != 0 {
					t.Fatalf("layer %d still has annotations after the round trip: %v", i, a)
				}
			}
			out, res := optimizeImage(t, stripped, optimize.WithFormat(f), optimize.WithProfiler(nil))
			for i, l := range res.Layers {
				if l.Action != optimize.ActionKept {
					t.Errorf("layer %d: %s, want kept", i, l.Action)
				}
			}
			got := layerAnnotations(t, out)
			for i := range want {
				for k, v := range want[i] {
					if got[i][k] != v {
						t.Errorf("layer %d: annotation %s = %q, want %q", i, k, got[i][k], v)
					}
				}
			}
			mustVerify(t, src, out)
		})
	}
}

func layerAnnotations(t *testing.T, img v1.Image) []map[string]string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, l := range m.Layers {
		out = append(out, l.Annotations)
	}
	return out
}

// TestPrioritizeThroughImplicitDir: a start-up file under a directory the
// layers only imply (no entry of its own) is found and goes first; it was
// reported missing when the optimizer resolved paths its own way.
func TestPrioritizeThroughImplicitDir(t *testing.T) {
	src := buildImage(t, []testimage.Layer{{testimage.File("app/other", "o"), testimage.File("app/server", "s")}})
	_, res := optimizeImage(t, src, optimize.WithPrioritizedFiles([]string{"/app/server"}), optimize.WithProfiler(nil))
	if m := res.Images[0].MissingPrioritized; len(m) != 0 {
		t.Errorf("missing: %v", m)
	}
	if n := res.Layers[0].Prioritized; n != 1 {
		t.Errorf("%d entries prioritized, want 1", n)
	}
}

// TestSparseFilesLeftToOnDemand: a large shared object and a JDK class
// image among the start-up files stay out of the prefetch section (programs
// read them in part, through mmap); a large file read whole and a small
// shared object go first; WithSparseLimit(0) puts every one first.
func TestSparseFilesLeftToOnDemand(t *testing.T) {
	big := strings.Repeat("x", 3<<10)
	src := buildImage(t, []testimage.Layer{{
		testimage.File("usr/lib/libbig.so.1", big), testimage.File("usr/lib/libsmall.so", "s"),
		testimage.File("opt/jdk/lib/modules", big), testimage.File("app/data.bin", big),
	}})
	files := []string{"/usr/lib/libbig.so.1", "/usr/lib/libsmall.so", "/opt/jdk/lib/modules", "/app/data.bin"}
	for _, tc := range []struct {
		limit int64
		want  int
	}{{2 << 10, 2}, {0, 4}} {
		_, res := optimizeImage(t, src, optimize.WithPrioritizedFiles(files), optimize.WithProfiler(nil), optimize.WithSparseLimit(tc.limit))
		if got := res.Layers[0].Prioritized; got != tc.want {
			t.Errorf("limit %d: %d files first, want %d", tc.limit, got, tc.want)
		}
	}
}

// TestNothingLostCachedLayer: stacks whose middle layer nodes hold (kept
// byte-identical, --cached) while the layers around it are rewritten.
// FuzzPlanRoles found the first two, FuzzPlanSymlinks the third.
func TestNothingLostCachedLayer(t *testing.T) {
	for _, c := range []struct {
		name   string
		layers []testimage.Layer
	}{{
		// The re-add gives the name an inode of its own, so it stays:
		// dropping it would make the name a hard link of the kept link
		// again.
		name: "a later layer re-adds, byte for byte, a file the kept layer's hard link shares",
		layers: []testimage.Layer{
			{testimage.File("f", "same")},
			{testimage.Hardlink("link", "f")},
			{testimage.File("f", "same")},
		},
	}, {
		// The directory stays below the kept layer, and so does the later
		// whiteout: without them the applier would make the directory up
		// for the kept whiteout, and nothing would delete it.
		name: "the kept layer's whiteout applies into a directory a later layer deletes",
		layers: []testimage.Layer{
			{testimage.Dir("d", 0o755), testimage.Dir("d/e", 0o775), testimage.Symlink("d/e/l", "x")},
			{testimage.Whiteout("d/e/l")},
			{testimage.Whiteout("d/e"), testimage.File("d/f", "f")},
		},
	}, {
		// The symlink stays below the kept layer, though a later layer
		// deletes it: the kept layer's file applies through it. Without
		// it, the applier would make /lib up as a directory, the file
		// would land there, and the later whiteout would delete both.
		name: "the kept layer writes through a symlink a later layer deletes",
		layers: []testimage.Layer{
			{testimage.Dir("usr", 0o755), testimage.Dir("usr/lib", 0o755), testimage.Symlink("lib", "usr/lib")},
			{testimage.File("lib/libfoo.so", "foo")},
			{testimage.Whiteout("lib")},
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			src := buildImage(t, c.layers)
			kept := layerDigest(t, src, 1)
			for _, f := range formats {
				t.Run(f.String(), func(t *testing.T) {
					out, _ := optimizeImage(t, src, optimize.WithFormat(f), optimize.WithProfiler(nil), optimize.WithCachedLayers(kept))
					mustVerify(t, src, out)
				})
			}
		})
	}
}

// TestSymlinkedParents: entries written through a symlinked directory of a
// lower layer ("lib/libfoo.so" over "lib -> usr/lib"), which containerd
// follows, land in the same place in the output under every format, and a
// lazy puller sees them there: the output names them where they land,
// since stargz-snapshotter follows no symlink of a lower layer, and a "lib"
// directory of the upper layer would hide the symlink and all of /usr/lib
// behind it.
func TestSymlinkedParents(t *testing.T) {
	usrLib := testimage.Layer{testimage.Dir("usr", 0o755), testimage.Dir("usr/lib", 0o755),
		testimage.File("usr/lib/libc.so", "libc"), testimage.File("usr/lib/libm.so", "libm"), testimage.Symlink("lib", "usr/lib")}
	for _, c := range []struct {
		name  string
		upper testimage.Layer
		// toc is what the upper layer's TOC must have: where the file
		// lands with its content want, or a marker (want "").
		toc, want string
	}{
		{"a file", testimage.Layer{testimage.File("lib/libfoo.so", "foo")}, "usr/lib/libfoo.so", "foo"},
		{"an absolute symlink's directory", testimage.Layer{testimage.Symlink("lib64", "/usr/lib"), testimage.File("lib64/ld.so", "ld")}, "usr/lib/ld.so", "ld"},
		{"a whiteout", testimage.Layer{testimage.Whiteout("lib/libm.so"), testimage.File("app", "app")}, "usr/lib/.wh.libm.so", ""},
		{"an opaque marker", testimage.Layer{testimage.Opaque("lib"), testimage.File("lib/only.so", "only")}, "usr/lib/.wh..wh..opq", ""},
		{"a hard link's target", testimage.Layer{testimage.Hardlink("libc-copy", "lib/libc.so")}, "libc-copy", "libc"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := buildImage(t, []testimage.Layer{usrLib, c.upper})
			// The base stays as it is (cached on nodes), so that the
			// markers must stay too.
			base := layerDigest(t, src, 0)
			for _, f := range formats {
				t.Run(f.String(), func(t *testing.T) {
					out, _ := optimizeImage(t, src, optimize.WithFormat(f), optimize.WithProfiler(nil), optimize.WithCachedLayers(base))
					mustVerify(t, src, out)
					if !f.Lazy() {
						return
					}
					ls, err := out.Layers()
					if err != nil {
						t.Fatal(err)
					}
					r := openLazy(t, ls[1])
					if e, ok := r.Lookup("lib"); ok && e.Type == "dir" {
						t.Errorf("the upper layer has a directory /lib, which hides the symlink /lib -> usr/lib")
					}
					if _, ok := r.Lookup(c.toc); !ok {
						t.Errorf("the upper layer has no /%s", c.toc)
					}
					if c.want != "" {
						if got := lazyContent(t, out, c.toc); got != c.want {
							t.Errorf("a lazy puller reads /%s as %q, want %q", c.toc, got, c.want)
						}
					}
				})
			}
		})
	}
}

// layerDigest is the digest of img's layer i.
func layerDigest(t *testing.T, img v1.Image, i int) v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[i].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
