package optimize_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/google/go-containerregistry/pkg/compression"
)

func buildImage(t testing.TB, ls []testimage.Layer) v1.Image {
	t.Helper()
	var vls []v1.Layer
	for _, l := range ls {
		vl, err := l.Compressed(compression.GZip)
		if err != nil {
			t.Fatal(err)
		}
		vls = append(vls, vl)
	}
	img, err := testimage.Image(v1.Config{Entrypoint: []string{"/bin/app"}}, vls...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func optimizeImage(t testing.TB, img v1.Image, opts ...optimize.Option) (v1.Image, *optimize.Result) {
	t.Helper()
	opts = append([]optimize.Option{optimize.WithTempDir(t.TempDir())}, opts...)
	res, err := optimize.Image(context.Background(), img, opts...)
	if err != nil {
		t.Fatalf("optimize: %v", err)
	}
	t.Cleanup(func() { res.Close() })
	return res.Image, res
}

func mustVerify(t testing.TB, src, dst any) {
	t.Helper()
	var v *optimize.Verification
	var err error
	switch s := src.(type) {
	case v1.Image:
		v, err = optimize.VerifyImage(context.Background(), s, dst.(v1.Image), optimize.WithTempDir(t.TempDir()))
	case v1.ImageIndex:
		v, err = optimize.VerifyIndex(context.Background(), s, dst.(v1.ImageIndex), optimize.WithTempDir(t.TempDir()))
	default:
		t.Fatalf("mustVerify(%T)", src)
	}
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !v.OK {
		for _, iv := range v.Images {
			for _, d := range iv.Differences {
				t.Errorf("difference: %s", d)
			}
		}
		t.FailNow()
	}
}

var formats = []layers.Format{layers.FormatEStargz, layers.FormatZstdChunked, layers.FormatGzip, layers.FormatZstd}

// allKinds turns on every kind of entry the generator makes that optimizers
// get wrong: hard links across layers and in chains (with whiteouts and
// opaque parents of their targets, and a name twice in a layer with a link
// to the first copy), PAX global headers, long names and xattrs.
func allKinds(o testimage.RandomOptions) testimage.RandomOptions {
	o.HardLinks, o.GlobalHeaders, o.LongNames, o.Xattrs = true, true, true, true
	return o
}

// TestEquivalence: on random layered images, for every target encoding, the
// optimized image has the same merged filesystem, as the independent
// applier applies it, in every puller's view (Verify), and validates.
func TestEquivalence(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 4
	}
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			for seed := range uint64(seeds) {
				r := rand.New(rand.NewPCG(seed, 7))
				ls := testimage.Random(r, allKinds(testimage.RandomOptions{Layers: 2 + int(seed%4), Specials: seed%2 == 0}))
				src := buildImage(t, ls)
				out, res := optimizeImage(t, src, optimize.WithFormat(f))
				// ggcr's validate reads layers with gzip only: for zstd
				// layers it checks the structure, and Verify (which reads
				// every layer against its digest and diff_id) the bytes.
				// It also refuses a name twice in one layer, which tar
				// and containerd allow and the generator writes: such
				// inputs fail it too, and their outputs get the structure
				// check.
				var vopts []validate.Option
				if f == layers.FormatZstd || f == layers.FormatZstdChunked || validate.Image(src) != nil {
					vopts = append(vopts, validate.Fast)
				}
				if err := validate.Image(out, vopts...); err != nil {
					t.Fatalf("seed %d: validate: %v", seed, err)
				}
				mustVerify(t, src, out)
				// A layer dedupe empties is dropped: Verify above says
				// nothing seen was in it.
				kept := 0
				for _, l := range res.Layers {
					switch l.Action {
					case optimize.ActionRewritten:
						kept++
					case optimize.ActionDropped:
					default:
						t.Errorf("seed %d: layer %s: action %s, want rewritten or dropped", seed, l.InputDigest, l.Action)
					}
				}
				if outLs, err := out.Layers(); err != nil || len(outLs) != kept {
					t.Errorf("seed %d: output has %d layers (%v), want the %d not dropped", seed, len(outLs), err, kept)
				}
			}
		})
	}
}

// TestDedupeRemovesWaste: what no container sees is gone, the rest stays.
func TestDedupeRemovesWaste(t *testing.T) {
	big := string(make([]byte, 10000))
	src := buildImage(t, []testimage.Layer{
		{testimage.Dir("app", 0o755), testimage.File("app/big", big), testimage.File("app/keep", "k"), testimage.File("app/bin", "bin")},
		{testimage.Whiteout("app/big"), testimage.File("app/bin", "bin")},
		{testimage.File("app/bin", "bin", testimage.Mode(0o755))},
	})
	out, res := optimizeImage(t, src)
	mustVerify(t, src, out)
	if res.RemovedBytes < 10000 {
		t.Errorf("removed %d bytes, want at least the 10000 of app/big", res.RemovedBytes)
	}
	a, err := optimize.Analyze(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	if a.WastedBytes != 0 {
		t.Errorf("optimized image still wastes %d bytes: %+v", a.WastedBytes, a.TopWasted)
	}
	// The whiteout hid nothing that stays below it, so it is gone too.
	idxs, err := optimize.IndexImage(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range idxs[1].Entries {
		if e.Type == layers.TypeWhiteout {
			t.Errorf("layer 1 keeps the useless whiteout of %s", e.Path)
		}
	}
}

// TestDeterminism: the same input and options give the same digest across
// runs and across GOMAXPROCS.
func TestDeterminism(t *testing.T) {
	r := rand.New(rand.NewPCG(99, 1))
	src := buildImage(t, testimage.Random(r, testimage.RandomOptions{Layers: 4, MaxFileSize: 1 << 16}))
	for _, f := range formats {
		var first string
		for _, procs := range []int{1, 2, 8} {
			prev := runtime.GOMAXPROCS(procs)
			_, res := optimizeImage(t, src, optimize.WithFormat(f), optimize.WithConcurrency(procs))
			runtime.GOMAXPROCS(prev)
			if first == "" {
				first = res.Digest
			} else if res.Digest != first {
				t.Errorf("%s: GOMAXPROCS %d gave %s, want %s", f, procs, res.Digest, first)
			}
		}
	}
}

// TestBaseKeep: with a base image and BaseKeep, every base layer keeps its
// digest; the others change.
func TestBaseKeep(t *testing.T) {
	base := buildImage(t, []testimage.Layer{
		{testimage.Dir("etc", 0o755), testimage.File("etc/os-release", "debian"), testimage.File("etc/junk", "junk")},
		{testimage.File("etc/motd", "hi")},
	})
	baseLayers, _ := base.Layers()
	app, err := testimage.Layer{testimage.Whiteout("etc/junk"), testimage.File("etc/motd", "hello")}.Compressed(compression.GZip)
	if err != nil {
		t.Fatal(err)
	}
	src, err := testimage.Image(v1.Config{}, append(append([]v1.Layer{}, baseLayers...), app)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, policy := range []optimize.BasePolicy{optimize.BaseKeep, optimize.BaseConvert} {
		t.Run(policy.String(), func(t *testing.T) {
			out, res := optimizeImage(t, src, optimize.WithBaseImage(base), optimize.WithBasePolicy(policy))
			mustVerify(t, src, out)
			outLayers, _ := out.Layers()
			// Base layer 1 has nothing the app layer does not replace:
			// still it is a base layer, never dropped.
			if len(outLayers) != 3 || res.Layers[1].Action == optimize.ActionDropped {
				t.Fatalf("%d layers, base layer 1 %s; want 3, the base's kept or converted", len(outLayers), res.Layers[1].Action)
			}
			for i := range baseLayers {
				bd, _ := baseLayers[i].Digest()
				od, _ := outLayers[i].Digest()
				if kept := bd == od; kept != (policy == optimize.BaseKeep) {
					t.Errorf("base layer %d: digest %s -> %s (%s)", i, bd, od, res.Layers[i].Reason)
				}
			}
			ad, _ := app.Digest()
			if od, _ := outLayers[2].Digest(); od == ad {
				t.Errorf("app layer was not converted")
			}
			// The whiteout still hides etc/junk of the base: it must stay.
			if _, err := out.Digest(); err != nil {
				t.Fatal(err)
			}
			if policy == optimize.BaseConvert {
				// Converting the base alone gives the same base digests.
				bout, _ := optimizeImage(t, base, optimize.WithBaseImage(base), optimize.WithBasePolicy(policy))
				bls, _ := bout.Layers()
				for i := range bls {
					a, _ := bls[i].Digest()
					b, _ := outLayers[i].Digest()
					if a != b {
						t.Errorf("converted base layer %d: %s alone, %s under the app", i, a, b)
					}
				}
			}
		})
	}
}

// TestLazyLayersKept: already-lazy layers stay unless forced.
func TestLazyLayersKept(t *testing.T) {
	src := buildImage(t, []testimage.Layer{{testimage.File("a", "a")}, {testimage.File("b", "b")}})
	once, _ := optimizeImage(t, src)
	twice, res := optimizeImage(t, once)
	d1, _ := once.Digest()
	d2, _ := twice.Digest()
	if d1 != d2 {
		t.Errorf("re-optimizing changed the digest: %s -> %s", d1, d2)
	}
	for _, l := range res.Layers {
		if l.Action != optimize.ActionKept {
			t.Errorf("layer %s: %s (%s), want kept", l.InputDigest, l.Action, l.Reason)
		}
	}
	forced, res := optimizeImage(t, once, optimize.WithForce(true), optimize.WithFormat(layers.FormatZstdChunked))
	mustVerify(t, src, forced)
	for _, l := range res.Layers {
		if l.Action != optimize.ActionRewritten {
			t.Errorf("forced: layer %s: %s", l.InputDigest, l.Action)
		}
	}
}

// TestPrioritizeThroughLinks: prioritized paths are resolved through the
// image's symlinks (merged /usr), and the links and the real files go first
// in the layers that provide them, in order.
func TestPrioritizeThroughLinks(t *testing.T) {
	D := func(n string) testimage.Entry { return testimage.Dir(n, 0o755) }
	src := buildImage(t, []testimage.Layer{
		{D("usr"), D("usr/lib"), D("usr/bin"), testimage.Symlink("lib", "usr/lib"), testimage.Symlink("bin", "usr/bin"),
			D("usr/lib/x86_64-linux-gnu"), testimage.File("usr/lib/x86_64-linux-gnu/libc.so.6", "libc"),
			testimage.File("usr/lib/other", "other")},
		{testimage.File("usr/bin/python3.11", "python"), testimage.Symlink("usr/bin/python3", "python3.11"),
			testimage.File("usr/bin/zzz", "z")},
	})
	out, res := optimizeImage(t, src, optimize.WithPrioritizedFiles([]string{"/usr/bin/python3", "/lib/x86_64-linux-gnu/libc.so.6", "/nonexistent"}))
	mustVerify(t, src, out)
	idxs, err := optimize.IndexImage(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	got := func(i int) []string {
		var s []string
		for _, e := range idxs[i].Entries {
			if e.Type != layers.TypeDir {
				s = append(s, e.Path)
			}
		}
		return s
	}
	want0 := []string{"lib", "usr/lib/x86_64-linux-gnu/libc.so.6"}
	want1 := []string{"usr/bin/python3", "usr/bin/python3.11"}
	for i, want := range [][]string{want0, want1} {
		g := got(i)
		if len(g) < len(want) || fmt.Sprint(g[:len(want)]) != fmt.Sprint(want) {
			t.Errorf("layer %d starts with %v, want %v", i, g, want)
		}
	}
	if len(res.Images[0].MissingPrioritized) != 1 {
		t.Errorf("missing = %v, want [/nonexistent]", res.Images[0].MissingPrioritized)
	}
	for i, idx := range idxs {
		landmark := false
		for _, s := range idx.Special {
			landmark = landmark || s.Name == layers.PrefetchLandmark
		}
		if !landmark {
			t.Errorf("layer %d has no prefetch landmark", i)
		}
	}
}

// TestIndexKeepsPlatforms: a multi-platform index comes out with the same
// platforms, each image optimized.
func TestIndexKeepsPlatforms(t *testing.T) {
	imgs := map[string]v1.Image{}
	for i, p := range []string{"linux/amd64", "linux/arm64/v8"} {
		r := rand.New(rand.NewPCG(uint64(i), 3))
		imgs[p] = buildImage(t, testimage.Random(r, testimage.RandomOptions{Layers: 3}))
	}
	idx, err := testimage.Index(imgs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := optimize.Index(context.Background(), idx, optimize.WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if err := validate.Index(res.Index); err != nil {
		t.Fatalf("validate: %v", err)
	}
	mustVerify(t, idx, res.Index)
	im, _ := res.Index.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[0].Platform == nil || im.Manifests[1].Platform == nil {
		t.Fatalf("platforms lost: %+v", im.Manifests)
	}
}

// TestDiffIDMismatch: a config whose diff_ids do not match the layers is a
// clear error.
func TestDiffIDMismatch(t *testing.T) {
	src := buildImage(t, []testimage.Layer{{testimage.File("a", "a")}})
	cf, err := src.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	bad, err := mutate.ConfigFile(src, cf)
	if err != nil {
		t.Fatal(err)
	}
	_, err = optimize.Image(context.Background(), bad, optimize.WithTempDir(t.TempDir()))
	if !errors.Is(err, layers.ErrDigestMismatch) || !strings.Contains(err.Error(), "diff_id") {
		t.Fatalf("err = %v, want a diff_id mismatch", err)
	}
}

// TestBaseAuto: without a policy, the base gets the policy whose estimated
// start is never far from the best one's, on every network, on a node with
// the base and on one without it. A big base is recompressed for
// containerd when it can be (nodes holding it reuse it, the others fetch
// its start-up file on demand), and converted when it cannot (no entries
// for its directories) or for podman's zstd:chunked; a tiny base is kept,
// since lazy mounting costs more round trips than it saves. Behind a kept
// base containerd downloads the layers above whole too, so a tiny base
// under a big application is converted.
func TestBaseAuto(t *testing.T) {
	big := make([]byte, 12<<20)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rnd.UintN(256))
	}
	for _, tc := range []struct {
		name       string
		dirs       bool // the base has entries for its directories
		format     layers.Format
		payload    string
		appPayload string
		want       string
	}{
		{"big base", false, layers.FormatEStargz, string(big), "x", "convert"},
		{"big base with its directories", true, layers.FormatEStargz, string(big), "x", "recompress"},
		{"big base with its directories, for containerd", true, layers.FormatZstdChunkedContainerd, string(big), "x", "recompress"},
		{"big base with its directories, for podman", true, layers.FormatZstdChunked, string(big), "x", "convert"},
		{"tiny base", false, layers.FormatEStargz, "x", "x", "keep"},
		{"tiny base, big application", false, layers.FormatEStargz, "x", string(big), "convert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bl testimage.Layer
			if tc.dirs {
				bl = testimage.Layer{testimage.Dir("bin", 0o755), testimage.Dir("usr", 0o755), testimage.Dir("usr/lib", 0o755)}
			}
			bl = append(bl, testimage.File("usr/lib/big.so", tc.payload), testimage.File("bin/app", "#!/bin/sh\n"))
			base := buildImage(t, []testimage.Layer{bl})
			bls, _ := base.Layers()
			app, err := testimage.Layer{testimage.File("app.cfg", tc.appPayload)}.Compressed(compression.GZip)
			if err != nil {
				t.Fatal(err)
			}
			src, err := testimage.Image(v1.Config{Entrypoint: []string{"/bin/app"}}, append(bls, app)...)
			if err != nil {
				t.Fatal(err)
			}
			_, res := optimizeImage(t, src, optimize.WithBaseImage(base), optimize.WithFormat(tc.format))
			ir := res.Images[0]
			if ir.BasePolicy != tc.want || !strings.Contains(ir.BasePolicyReason, "edge") {
				t.Errorf("policy %s (%s), want %s with the figures", ir.BasePolicy, ir.BasePolicyReason, tc.want)
			}
			if lr := ir.Layers[0]; tc.want == "recompress" && !strings.Contains(lr.Reason, "recompressed") {
				t.Errorf("base layer: %s, want it recompressed", lr.Reason)
			}
			if want := tc.format == layers.FormatZstdChunked; strings.Contains(ir.BasePolicyReason, "recompress") == want {
				t.Errorf("reason %q: recompress weighed for %s", ir.BasePolicyReason, tc.format)
			}
		})
	}
}

// TestEmptyLayerDropped: a layer dedupe empties (its file deleted above, a
// file it adds again identically) has no layer in the output, and its
// history entry is marked empty_layer, while a metadata-only step's entry
// stays as it was. The merged filesystem is unchanged; a second run through
// the conversion cache gives the same image, and so does one that
// estimates the start.
func TestEmptyLayerDropped(t *testing.T) {
	adds := gzipLayers(t,
		testimage.Layer{testimage.Dir("app", 0o755), testimage.File("app/bin", "bin"), testimage.File("app/lists", "package lists")},
		testimage.Layer{testimage.File("app/bin", "bin"), testimage.File("app/tmp", "scratch")},
		testimage.Layer{testimage.File("app/conf", "conf")},
		testimage.Layer{testimage.Whiteout("app/tmp"), testimage.Whiteout("app/lists")})
	for i := range adds {
		adds[i].History = v1.History{CreatedBy: fmt.Sprintf("layer %d", i)}
	}
	adds[1].History.Comment = "<kept>"
	meta := mutate.Addendum{History: v1.History{CreatedBy: "ENV A=1 && B=2", EmptyLayer: true}}
	src, err := testimage.ImageFrom(v1.ConfigFile{Config: v1.Config{Entrypoint: []string{"/app/bin"}}},
		adds[0], meta, adds[1], adds[2], adds[3])
	if err != nil {
		t.Fatal(err)
	}
	c := newDirCache(t)
	out, res := optimizeImage(t, src, optimize.WithCache(c))
	mustVerify(t, src, out)
	var actions []optimize.Action
	for _, l := range res.Layers {
		actions = append(actions, l.Action)
	}
	want := []optimize.Action{optimize.ActionRewritten, optimize.ActionDropped, optimize.ActionRewritten, optimize.ActionDropped}
	if !slices.Equal(actions, want) {
		t.Fatalf("actions %v, want %v", actions, want)
	}
	cf, err := out.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	outLs, err := out.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(outLs) != 2 || len(cf.RootFS.DiffIDs) != 2 {
		t.Fatalf("%d layers, %d diff_ids; want 2", len(outLs), len(cf.RootFS.DiffIDs))
	}
	for i, l := range outLs {
		if d, err := l.DiffID(); err != nil || d != cf.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: diff_id %s (%v), config says %s", i, d, err, cf.RootFS.DiffIDs[i])
		}
	}
	type h struct {
		by    string
		empty bool
	}
	var got []h
	for _, e := range cf.History {
		got = append(got, h{e.CreatedBy, e.EmptyLayer})
	}
	wantH := []h{{"layer 0", false}, {"ENV A=1 && B=2", true}, {"layer 1", true}, {"layer 2", false}, {"layer 3", true}}
	if !slices.Equal(got, wantH) {
		t.Errorf("history %v, want %v", got, wantH)
	}
	if cf.History[2].Comment != "<kept>" {
		t.Errorf("history comment %q, want it kept", cf.History[2].Comment)
	}
	again, res2 := optimizeImage(t, src, optimize.WithCache(c))
	if res2.Digest != res.Digest {
		t.Errorf("through the cache: %s, want %s", res2.Digest, res.Digest)
	}
	mustVerify(t, src, again)
	_, res3 := optimizeImage(t, src, optimize.WithEstimate(true))
	if res3.Digest != res.Digest {
		t.Errorf("with the estimate: %s, want %s", res3.Digest, res.Digest)
	}
	if e := res3.Images[0].Estimate; e == nil || len(e.After.Layers) != 2 {
		t.Errorf("estimate: %+v, want 2 layers after", e)
	}
}

// TestEmptyLayerHistoryMismatch: a history that does not list one entry per
// layer is left as it is when a layer is dropped.
func TestEmptyLayerHistoryMismatch(t *testing.T) {
	adds := gzipLayers(t,
		testimage.Layer{testimage.File("a", "a"), testimage.File("b", "b")},
		testimage.Layer{testimage.Whiteout("b")},
		testimage.Layer{testimage.File("c", "c")})
	adds[0].History.CreatedBy = "only one entry"
	src, err := testimage.ImageFrom(v1.ConfigFile{}, adds...)
	if err != nil {
		t.Fatal(err)
	}
	// mutate.Append adds an entry per addendum: drop two.
	cf, err := src.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.History = cf.History[:1]
	if src, err = mutate.ConfigFile(src, cf); err != nil {
		t.Fatal(err)
	}
	out, res := optimizeImage(t, src)
	mustVerify(t, src, out)
	if res.Layers[1].Action != optimize.ActionDropped {
		t.Fatalf("layer 1: %s, want dropped", res.Layers[1].Action)
	}
	got, err := out.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.History) != 1 || got.History[0].EmptyLayer || got.History[0].CreatedBy != "only one entry" {
		t.Errorf("history %+v, want it as it was", got.History)
	}
}
