package lazypull

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const chunk = 64 << 10

func baseTar() []byte {
	return testimage.Layer{
		testimage.Dir("usr", 0o755), testimage.Dir("usr/bin", 0o755), testimage.Dir("usr/lib", 0o755),
		testimage.Dir("usr/share", 0o755), testimage.Dir("etc", 0o755),
		testimage.Symlink("bin", "usr/bin"), testimage.Symlink("lib", "usr/lib"),
		testimage.File("usr/bin/app", noise(1, 100_000), testimage.Mode(0o755)),
		testimage.File("usr/lib/libc.so", noise(2, 30_000)),
		testimage.File("usr/lib/big.dat", noise(3, 200_000)),
		testimage.File("usr/share/doc", noise(4, 50_000)),
		testimage.File("etc/hosts", "127.0.0.1 localhost\n"),
		testimage.Hardlink("usr/bin/app2", "usr/bin/app"),
	}.Tar()
}

func appTar() []byte {
	return testimage.Layer{
		testimage.Dir("app", 0o755),
		testimage.File("app/config.json", noise(5, 5_000)),
		testimage.File("app/data", noise(6, 20_000)),
	}.Tar()
}

var startFiles = []string{"/bin/app", "/lib/libc.so", "/usr/lib/big.dat", "/etc/hosts", "/app/config.json", "/missing", "/usr/bin/app2"}

func lazyImage(t *testing.T) (v1.Image, built, built) {
	base := encode(t, baseTar(), layers.EncodeOptions{ChunkSize: chunk, Prioritized: []string{"usr/bin/app", "usr/lib/libc.so"}})
	app := encode(t, appTar(), layers.EncodeOptions{ChunkSize: chunk})
	return buildImage(t, base, app), base, app
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		lazy, held []bool
		want       []Role
	}{
		{[]bool{true, true}, []bool{false, false}, []Role{RoleLazy, RoleLazy}},
		{[]bool{false, true, true}, []bool{false, false, false}, []Role{RoleFull, RoleLazy, RoleLazy}},
		{[]bool{false, true, true}, []bool{true, false, false}, []Role{RoleHeld, RoleLazy, RoleLazy}},
		{[]bool{true, false, true, false}, []bool{false, false, true, false}, []Role{RoleLazy, RoleFull, RoleHeld, RoleFull}},
		{[]bool{true, true, false}, []bool{false, false, false}, []Role{RoleLazy, RoleLazy, RoleFull}},
	} {
		if got := Roles(tc.lazy, tc.held); !cmp.Equal(got, tc.want) {
			t.Errorf("Roles(%v, %v) = %v, want %v", tc.lazy, tc.held, got, tc.want)
		}
	}
}

func TestOpenTOCAndPlan(t *testing.T) {
	b := encode(t, baseTar(), layers.EncodeOptions{ChunkSize: chunk, Prioritized: []string{"usr/bin/app", "usr/lib/libc.so"}})
	toc, err := OpenTOC(bytes.NewReader(b.blob), int64(len(b.blob)))
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(b.blob))
	if toc.Format != layers.EStargz || len(toc.Reads) != 2 {
		t.Fatalf("format %q, reads %v", toc.Format, toc.Reads)
	}
	if toc.Reads[0] != (Range{Offset: size - 51, Length: 51}) || toc.Reads[1].End() != size-51 || toc.Reads[1].Offset != toc.PayloadEnd {
		t.Fatalf("reads %v, payload end %d, size %d: want the footer then [payloadEnd, size-51)", toc.Reads, toc.PayloadEnd, size)
	}
	if toc.Digest != b.encoded.TOCDigest {
		t.Fatalf("TOC digest %s, want %s", toc.Digest, b.encoded.TOCDigest)
	}
	if toc.Prefetch.Length == 0 {
		t.Fatal("no prefetch range")
	}
	fetched := Fetched{}
	// The prioritized app (two chunks) is in the prefetch range.
	if wait, reqs := toc.PlanFile("usr/bin/app", fetched); !wait || len(reqs) != 0 {
		t.Fatalf("app: wait %v, requests %v", wait, reqs)
	}
	// big.dat has four chunks, adjacent: one request past the prefetch.
	rs := toc.FileRanges("usr/lib/big.dat")
	if len(rs) != 4 {
		t.Fatalf("big.dat in %d members, want 4", len(rs))
	}
	wait, reqs := toc.PlanFile("usr/lib/big.dat", fetched)
	if wait || len(reqs) != 1 || reqs[0].Offset != rs[0].Offset || reqs[0].End() != rs[3].End() || reqs[0].Offset < toc.Prefetch.End() {
		t.Fatalf("big.dat: wait %v, requests %v, members %v", wait, reqs, rs)
	}
	// Read again: nothing more.
	if _, reqs := toc.PlanFile("usr/lib/big.dat", fetched); len(reqs) != 0 {
		t.Fatalf("second read of big.dat sends %v", reqs)
	}
	if rs := toc.FileRanges("usr/lib"); rs != nil {
		t.Fatalf("a directory has ranges %v", rs)
	}
	// Every member verifies; the uncompressed bytes add up to the files.
	var dc Decompressors
	defer dc.Close()
	all := Range{Offset: 0, Length: toc.PayloadEnd}
	if err := toc.Verify(bytes.NewReader(b.blob[:toc.PayloadEnd]), all, &dc); err != nil {
		t.Fatal(err)
	}
	if got := toc.ChunkBytes(all); got != 380_020 {
		t.Fatalf("chunk bytes %d, want the 380,020 bytes of file content", got)
	}
	// A flipped byte inside big.dat's data is caught.
	bad := bytes.Clone(b.blob)
	r := reqs[0]
	bad[r.Offset+r.Length/2] ^= 0xff
	err = toc.Verify(bytes.NewReader(bad[r.Offset:r.End()]), r, &dc)
	if err == nil {
		t.Fatal("corrupt chunk verified")
	}
	// The index lists the hard link as a regular file and skips landmarks.
	var paths []string
	for _, e := range toc.Index().Entries {
		paths = append(paths, e.Path+":"+e.Type.String())
	}
	want := []string{"bin:symlink", "etc:dir", "etc/hosts:file", "lib:symlink", "usr:dir", "usr/bin:dir", "usr/bin/app:file",
		"usr/bin/app2:file", "usr/lib:dir", "usr/lib/big.dat:file", "usr/lib/libc.so:file", "usr/share:dir", "usr/share/doc:file"}
	if d := cmp.Diff(want, paths); d != "" {
		t.Fatalf("TOC index (-want +got):\n%s", d)
	}
}

func TestOpenTOCZstdChunked(t *testing.T) {
	b := encode(t, baseTar(), layers.EncodeOptions{Format: layers.FormatZstdChunked, ChunkSize: chunk, Prioritized: []string{"usr/bin/app"}})
	toc, err := OpenTOC(bytes.NewReader(b.blob), int64(len(b.blob)))
	if err != nil {
		t.Fatal(err)
	}
	// zstd:chunked has no landmark (containers/storage would make it a
	// file), so the blob alone names no prefetch range.
	if toc.Format != layers.ZstdChunked || toc.Prefetch.Length != 0 {
		t.Fatalf("format %q prefetch %v", toc.Format, toc.Prefetch)
	}
	var dc Decompressors
	defer dc.Close()
	for _, p := range []string{"usr/lib/big.dat", "etc/hosts", "usr/bin/app"} {
		for _, r := range toc.FileRanges(p) {
			if err := toc.Verify(bytes.NewReader(b.blob[r.Offset:r.End()]), r, &dc); err != nil {
				t.Fatalf("%s %v: %v", p, r, err)
			}
		}
	}
}

func TestOpenTOCNotLazy(t *testing.T) {
	g := gzipLayer(t, testimage.Layer{testimage.File("a", "b")})
	if _, err := OpenTOC(bytes.NewReader(g.blob), int64(len(g.blob))); err == nil {
		t.Fatal("a plain gzip layer opened as lazy")
	}
}

func TestResolve(t *testing.T) {
	idx := func(l testimage.Layer) *layers.Index {
		x, err := layers.IndexReader(context.Background(), bytes.NewReader(l.Tar()))
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	lower := idx(testimage.Layer{
		testimage.Symlink("bin", "usr/bin"), testimage.Symlink("lib", "usr/lib"),
		testimage.File("usr/bin/python3.11", "elf"), testimage.Symlink("usr/bin/python3", "python3.11"),
		testimage.File("usr/lib/x/libc.so.6", "libc"), testimage.Symlink("loop", "loop"),
		testimage.Symlink("abs", "/usr/lib/x/../x/libc.so.6"), testimage.File("etc/gone", "x"),
		testimage.Symlink("up", "../../../usr/bin/python3"),
	})
	upper := idx(testimage.Layer{testimage.Whiteout("etc/gone")})
	ov, err := layers.Merge(lower, upper)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"/bin/python3": "usr/bin/python3.11", "/lib/x/libc.so.6": "usr/lib/x/libc.so.6", "/abs": "usr/lib/x/libc.so.6",
		"/usr/./bin/../bin/python3": "usr/bin/python3.11", "/up": "usr/bin/python3.11", "/usr/lib": "",
		"/loop": "-", "/etc/gone": "-", "/nothing": "-", "/usr/bin/python3.11/x": "-",
	} {
		r, ok := Resolve(ov, in)
		got := "-"
		if ok {
			got = ov.Entry(r).Path
			if ov.Entry(r).Type == layers.TypeDir || got == "usr/lib" {
				got = ""
			}
		}
		if in == "/usr/lib" && !ok {
			got = "" // an implicit directory is not an entry
		}
		if got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStartAgainstRegistry(t *testing.T) {
	reg := registrytest.New(t)
	img, base, app := lazyImage(t)
	ref := push(t, reg, "lazy/app:1", img)
	res, err := Start(context.Background(), ref, startFiles, WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"/missing"}, res.Missing); d != "" {
		t.Errorf("missing (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]Role{RoleLazy, RoleLazy}, res.Roles); d != "" {
		t.Errorf("roles (-want +got):\n%s", d)
	}
	btoc, err := OpenTOC(bytes.NewReader(base.blob), int64(len(base.blob)))
	if err != nil {
		t.Fatal(err)
	}
	atoc, err := OpenTOC(bytes.NewReader(app.blob), int64(len(app.blob)))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	cfg, _ := img.RawConfigFile()
	big := btoc.FileRanges("usr/lib/big.dat")
	want := []Fetch{
		{Kind: KindManifest, Layer: -1, Range: Range{Length: int64(len(raw))}},
		{Kind: KindConfig, Layer: -1, Range: Range{Length: int64(len(cfg))}},
		{Kind: KindFooter, Layer: 0, Range: btoc.Reads[0]},
		{Kind: KindTOC, Layer: 0, Range: btoc.Reads[1]},
		{Kind: KindPrefetch, Layer: 0, Range: btoc.Prefetch},
		{Kind: KindFooter, Layer: 1, Range: atoc.Reads[0]},
		{Kind: KindTOC, Layer: 1, Range: atoc.Reads[1]},
		{Kind: KindChunk, Layer: 0, Range: Range{Offset: big[0].Offset, Length: big[3].End() - big[0].Offset}, Path: "/usr/lib/big.dat"},
		{Kind: KindChunk, Layer: 0, Range: btoc.FileRanges("etc/hosts")[0], Path: "/etc/hosts"},
		{Kind: KindChunk, Layer: 1, Range: atoc.FileRanges("app/config.json")[0], Path: "/app/config.json"},
	}
	got := res.Fetches
	// The prefetch runs in the background: order it where it was started.
	sortFetches(want)
	sortFetches(got)
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("fetches (-want +got):\n%s", d)
	}
	var bytesWant int64
	for _, f := range want {
		bytesWant += f.Range.Length
	}
	if res.Bytes != bytesWant || res.Requests != len(want) {
		t.Fatalf("%d bytes in %d requests, want %d in %d", res.Bytes, res.Requests, bytesWant, len(want))
	}
	if res.Duration <= 0 || res.Mounted <= 0 || res.Mounted > res.Duration {
		t.Fatalf("durations: total %s, mounted %s", res.Duration, res.Mounted)
	}
}

func sortFetches(fs []Fetch) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Layer != b.Layer {
			return a.Layer < b.Layer
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Range.Offset < b.Range.Offset
	})
}

// TestStartGzipLayerAlone: a gzip layer is downloaded whole; the eStargz
// layer above it is mounted lazily all the same, as containerd 2.4 with
// stargz-snapshotter 0.19 does (earlier versions downloaded every layer
// above a gzip one).
func TestStartGzipLayerAlone(t *testing.T) {
	reg := registrytest.New(t)
	g := gzipLayer(t, testimage.Layer{testimage.File("usr/bin/app", noise(1, 10_000))})
	app := encode(t, appTar(), layers.EncodeOptions{ChunkSize: chunk})
	img := buildImage(t, g, app)
	ref := push(t, reg, "lazy/fallback:1", img)
	dir := t.TempDir()
	res, err := Start(context.Background(), ref, []string{"/usr/bin/app", "/app/config.json"}, WithTempDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]Role{RoleFull, RoleLazy}, res.Roles); d != "" {
		t.Fatalf("roles (-want +got):\n%s", d)
	}
	if res.Bytes >= int64(len(g.blob)+len(app.blob)) {
		t.Fatalf("%d bytes: the lazy layer was downloaded whole", res.Bytes)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}

	// A node that holds the gzip layer mounts the eStargz one lazily.
	gi, err := layers.IndexReader(context.Background(), bytes.NewReader(g.blob))
	if err != nil {
		t.Fatal(err)
	}
	gd, _ := g.layer.Digest()
	res, err = Start(context.Background(), ref, []string{"/usr/bin/app", "/app/config.json"}, WithHeld(gd), WithLayerIndex(gd, gi))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[Kind]int{}
	for _, f := range res.Fetches {
		kinds[f.Kind]++
	}
	if d := cmp.Diff(map[Kind]int{KindManifest: 1, KindConfig: 1, KindFooter: 1, KindTOC: 1, KindChunk: 1}, kinds); d != "" {
		t.Fatalf("held base: requests by kind (-want +got):\n%s", d)
	}
}

func TestFullPull(t *testing.T) {
	reg := registrytest.New(t)
	img, base, app := lazyImage(t)
	ref := push(t, reg, "full/app:1", img)
	dir := t.TempDir()
	res, err := FullPull(context.Background(), ref, WithTempDir(dir), WithConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	cfg, _ := img.RawConfigFile()
	if want := int64(len(raw) + len(cfg) + len(base.blob) + len(app.blob)); res.Bytes != want || res.Requests != 4 {
		t.Fatalf("%d bytes in %d requests, want %d in 4", res.Bytes, res.Requests, want)
	}
	// Layers are unpacked while later ones download: the download and the
	// unpacking each fit in the pull.
	if res.Unpack <= 0 || res.Mounted > res.Duration || res.Unpack > res.Duration {
		t.Fatalf("phases: download %s, unpack %s, pull %s", res.Mounted, res.Unpack, res.Duration)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
	bd, _ := base.layer.Digest()
	res, err = FullPull(context.Background(), ref, WithHeld(bd))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 3 || res.Roles[0] != RoleHeld {
		t.Fatalf("held base: %d requests, roles %v", res.Requests, res.Roles)
	}
}

func TestPullErrors(t *testing.T) {
	reg := registrytest.New(t)
	if _, err := Start(context.Background(), reg.Ref("nothing:here"), nil); err == nil {
		t.Fatal("Start of a missing image succeeded")
	}
	if _, err := FullPull(context.Background(), "::bad", nil...); err == nil {
		t.Fatal("FullPull of a bad reference succeeded")
	}
	if _, err := Start(context.Background(), reg.Ref("x:y"), nil, WithConcurrency(0)); err == nil {
		t.Fatal("zero concurrency accepted")
	}
}

func TestUnpack(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	lower := testimage.Layer{
		testimage.Dir("etc", 0o755), testimage.File("etc/a", "a"), testimage.File("etc/b", "b"),
		testimage.Dir("opq", 0o755), testimage.File("opq/old", "old"),
		testimage.Symlink("escape", outside), testimage.File("escape/x", "should not land outside"),
		testimage.Symlink("rel", "../../.."), testimage.File("rel/y", "nor this"),
		testimage.File("dir/then/file", "implicit parents"),
		testimage.Hardlink("etc/a2", "etc/a"),
	}
	upper := testimage.Layer{
		testimage.Whiteout("etc/b"), testimage.File("opq/new", "new"), testimage.Opaque("opq"),
		testimage.File("etc", "a file replaces the directory"),
	}
	var skipped int
	for _, l := range []testimage.Layer{lower, upper} {
		g := gzipLayer(t, l)
		u, err := Unpack(context.Background(), root, bytes.NewReader(g.blob))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := g.layer.DiffID()
		if u.DiffID != want {
			t.Fatalf("DiffID %s, want %s", u.DiffID, want)
		}
		skipped += u.Skipped
	}
	if skipped != 2 {
		t.Errorf("skipped %d entries, want the 2 that lead outside the root", skipped)
	}
	if left, _ := os.ReadDir(outside); len(left) != 0 {
		t.Fatalf("unpack wrote outside the root: %v", left)
	}
	var got []string
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got = append(got, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".", "dir", "dir/then", "dir/then/file", "escape", "etc", "opq", "opq/new", "rel"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("unpacked tree (-want +got):\n%s", d)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc")); string(b) != "a file replaces the directory" {
		t.Fatalf("etc = %q", b)
	}
}

func TestVerifyErrorIsDigest(t *testing.T) {
	// A TOC whose chunk digest is wrong: re-encode with content changed
	// after the TOC was taken is hard; instead, check that a member whose
	// bytes decompress fine but differ is reported as ErrChunkDigest by
	// splicing the member of another file in.
	b := encode(t, testimage.Layer{
		testimage.File("a", noise(7, 3000)), testimage.File("b", noise(8, 3000)),
	}.Tar(), layers.EncodeOptions{})
	toc, err := OpenTOC(bytes.NewReader(b.blob), int64(len(b.blob)))
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := toc.FileRanges("a")[0], toc.FileRanges("b")[0]
	var dc Decompressors
	err = toc.Verify(bytes.NewReader(b.blob[rb.Offset:rb.End()]), Range{Offset: ra.Offset, Length: rb.Length}, &dc)
	if !errors.Is(err, ErrChunkDigest) {
		t.Fatalf("spliced member: %v, want ErrChunkDigest", err)
	}
}

// TestSameBlobTwice: an image that lists one blob twice (an identical
// COPY repeated) fetches it once, whole or lazily.
func TestSameBlobTwice(t *testing.T) {
	reg := registrytest.New(t)
	_, base, app := lazyImage(t)
	img := buildImage(t, base, app, base)
	ref := push(t, reg, "twice/app:1", img)
	res, err := FullPull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 4 {
		t.Fatalf("full pull: %d requests, want manifest, config and two blobs", res.Requests)
	}
	res, err = Start(context.Background(), ref, startFiles)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[Kind]int{}
	for _, f := range res.Fetches {
		kinds[f.Kind]++
	}
	// The upper copy of the base provides the files; its prefetch and
	// members are the lower copy's.
	if d := cmp.Diff(map[Kind]int{KindManifest: 1, KindConfig: 1, KindFooter: 2, KindTOC: 2, KindPrefetch: 1, KindChunk: 3}, kinds); d != "" {
		t.Fatalf("lazy start, requests by kind (-want +got):\n%s", d)
	}
}
