package optimize_test

import (
	"bytes"
	"debug/elf"
	"io"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestConvertedBasePrefetch: a base converted as it is (BaseConvert) puts
// first what every dynamically linked program on it reads, found from the
// base alone (the loader, its cache and the C library that /bin/sh loads,
// not /bin/sh itself), behind a prefetch landmark; two applications with
// different start-up files on that base get the same converted base, and
// without profiling the base gets no prefetch section.
func TestConvertedBasePrefetch(t *testing.T) {
	D := func(n string) testimage.Entry { return testimage.Dir(n, 0o755) }
	sh := elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Interp: "/lib64/ld-linux-x86-64.so.2", Needed: []string{"libc.so.6"}})
	libc := elftest.Build(elftest.Spec{SOName: "libc.so.6"})
	ldso := elftest.Build(elftest.Spec{SOName: "ld-linux-x86-64.so.2"})
	base := buildImage(t, []testimage.Layer{{
		D("usr"), D("usr/bin"), D("usr/lib"), D("usr/lib64"), D("etc"),
		testimage.Symlink("bin", "usr/bin"), testimage.Symlink("lib", "usr/lib"), testimage.Symlink("lib64", "usr/lib64"),
		testimage.File("etc/aaa-first", "zzz"),
		testimage.File("usr/bin/dash", string(sh)), testimage.Symlink("usr/bin/sh", "dash"),
		testimage.File("usr/bin/other", "other"),
		D("usr/lib/x86_64-linux-gnu"),
		testimage.File("usr/lib/x86_64-linux-gnu/libc.so.6", string(libc)),
		testimage.File("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", string(ldso)),
		testimage.Symlink("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
	}})
	baseLayers, _ := base.Layers()
	onBase := func(files ...testimage.Entry) v1.Image {
		app, err := testimage.Layer(files).Compressed(compression.GZip)
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(base, app)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	a := onBase(testimage.File("app/a", "a"))
	b := onBase(testimage.File("app/b", "b"), testimage.File("app/c", "c"))
	convert := []optimize.Option{optimize.WithBaseImage(base), optimize.WithBasePolicy(optimize.BaseConvert)}
	outA, resA := optimizeImage(t, a, append(convert, optimize.WithPrioritizedFiles([]string{"/app/a", "/usr/bin/other"}))...)
	outB, _ := optimizeImage(t, b, append(convert, optimize.WithPrioritizedFiles([]string{"/app/c"}))...)
	mustVerify(t, a, outA)
	mustVerify(t, b, outB)
	baseOut := func(img v1.Image) v1.Layer {
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		return ls[0]
	}
	da, _ := baseOut(outA).Digest()
	db, _ := baseOut(outB).Digest()
	if da != db {
		t.Errorf("the converted base differs between two applications: %s and %s", da, db)
	}
	if bd, _ := baseLayers[0].Digest(); da == bd {
		t.Fatal("the base was not converted")
	}
	if got := resA.Layers[0].Prioritized; got == 0 {
		t.Errorf("the converted base has no start-up files first (%s)", resA.Layers[0].Reason)
	}

	// What stargz-snapshotter prefetches: the blob up to the landmark, as
	// estargz's own reader finds them.
	open := func(img v1.Image) *estargz.Reader { return openLayer(t, img, 0) }
	r := open(outA)
	landmark, ok := r.Lookup(estargz.PrefetchLandmark)
	if !ok {
		t.Fatal("the converted base has no prefetch landmark")
	}
	offset := func(name string) int64 {
		e, ok := r.Lookup(name)
		if !ok {
			t.Fatalf("%s is not in the converted base", name)
		}
		return e.Offset
	}
	loaderAt, libcAt := offset("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), offset("usr/lib/x86_64-linux-gnu/libc.so.6")
	if !(loaderAt < libcAt && libcAt < landmark.Offset) {
		t.Errorf("loader at %d, libc at %d, landmark at %d: want the loader, then libc, before the landmark", loaderAt, libcAt, landmark.Offset)
	}
	for _, not := range []string{"usr/bin/dash", "usr/bin/other", "etc/aaa-first"} {
		if off := offset(not); off < landmark.Offset {
			t.Errorf("%s (at %d) is in the base's prefetch (up to %d)", not, off, landmark.Offset)
		}
	}

	// Without profiling, nothing goes first, in the base either.
	outN, _ := optimizeImage(t, a, append(convert, optimize.WithProfiler(nil))...)
	if _, ok := open(outN).Lookup(estargz.PrefetchLandmark); ok {
		t.Error("without profiling the converted base has a prefetch section")
	}
}

// TestRuntimeFilesFirst: containerd reads /etc/passwd and /etc/group to
// create a container, before its program starts, so a profile that does
// not name them (a run profile never sees it) gets them first; one that
// names them keeps its order, and an image without them misses nothing.
func TestRuntimeFilesFirst(t *testing.T) {
	D := func(n string) testimage.Entry { return testimage.Dir(n, 0o755) }
	img := buildImage(t, []testimage.Layer{{
		D("etc"), D("app"),
		testimage.File("app/a", "a"), testimage.File("app/other", "o"),
		testimage.File("etc/group", "root:x:0:\n"), testimage.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
	}})
	order := func(out v1.Image) map[string]int64 {
		t.Helper()
		r := openLayer(t, out, 0)
		at := map[string]int64{}
		for _, n := range []string{"etc/passwd", "etc/group", "app/a", "app/other", estargz.PrefetchLandmark} {
			e, ok := r.Lookup(n)
			if !ok {
				t.Fatalf("%s is not in the output", n)
			}
			at[n] = e.Offset
		}
		return at
	}

	out, res := optimizeImage(t, img, optimize.WithPrioritizedFiles([]string{"/app/a"}))
	mustVerify(t, img, out)
	at := order(out)
	if !(at["etc/passwd"] < at["etc/group"] && at["etc/group"] < at["app/a"] && at["app/a"] < at[estargz.PrefetchLandmark] && at[estargz.PrefetchLandmark] < at["app/other"]) {
		t.Errorf("offsets %v: want /etc/passwd, /etc/group, then the profile's /app/a before the landmark, /app/other after it", at)
	}
	if len(res.Images[0].MissingPrioritized) != 0 {
		t.Errorf("missing %v", res.Images[0].MissingPrioritized)
	}

	out, _ = optimizeImage(t, img, optimize.WithPrioritizedFiles([]string{"/app/a", "/etc/passwd"}))
	at = order(out)
	if !(at["etc/group"] < at["app/a"] && at["app/a"] < at["etc/passwd"] && at["etc/passwd"] < at[estargz.PrefetchLandmark]) {
		t.Errorf("offsets %v: want /etc/group (not named) first, then the profile's order, /app/a and /etc/passwd", at)
	}

	bare := buildImage(t, []testimage.Layer{{D("app"), testimage.File("app/a", "a")}})
	if _, res := optimizeImage(t, bare, optimize.WithPrioritizedFiles([]string{"/app/a"})); len(res.Images[0].MissingPrioritized) != 0 {
		t.Errorf("an image without /etc/passwd and /etc/group: missing %v", res.Images[0].MissingPrioritized)
	}
}

// openLayer opens layer i of img, eStargz or zstd:chunked, with estargz's
// own reader: what stargz-snapshotter sees of it.
func openLayer(t *testing.T, img v1.Image, i int) *estargz.Reader {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[i].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	blob, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))), estargz.WithDecompressors(new(zstdchunked.Decompressor)))
	if err != nil {
		t.Fatalf("estargz: layer %d: %v", i, err)
	}
	return r
}
