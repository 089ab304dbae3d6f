package optimize_test

import (
	"io"
	"strings"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
)

// TestBaseRecompress: under BaseRecompress each base layer becomes
// zstd:chunked for containerd with the DiffID it had (so containerd finds
// its snapshot on a node that holds the base), the same blob under every
// image on that base; the application layer is converted as ever, and the
// independent applier finds the output's files equal to the input's. A base
// layer whose stream the encoder would change (it repeats a name) is kept
// byte-identical instead, with the reason.
func TestBaseRecompress(t *testing.T) {
	base := buildImage(t, []testimage.Layer{
		{testimage.Dir("etc", 0o755), testimage.File("etc/os-release", "debian"), testimage.File("etc/junk", "junk"),
			testimage.Dir("lib", 0o755), testimage.File("lib/libc.so.6", strings.Repeat("libc", 5000)), testimage.Hardlink("lib/libc.so", "lib/libc.so.6")},
		{testimage.Dir("etc", 0o755), testimage.File("etc/motd", "hi"), testimage.File("etc/motd", "hi again")},
	})
	baseLayers, _ := base.Layers()
	src := onBase(t, base, "/bin/app", testimage.Layer{testimage.Whiteout("etc/junk"), testimage.File("etc/motd", "hello"), testimage.File("bin/app", "#!/bin/sh\n")})
	out, res := optimizeImage(t, src, optimize.WithBaseImage(base), optimize.WithBasePolicy(optimize.BaseRecompress))
	mustVerify(t, src, out)
	if p := res.Images[0].BasePolicy; p != "recompress" {
		t.Errorf("base policy %q", p)
	}
	inCfg, _ := src.ConfigFile()
	outCfg, _ := out.ConfigFile()
	outLayers, _ := out.Layers()
	mf, _ := out.Manifest()

	// Layer 0: recompressed, same DiffID.
	bd, _ := baseLayers[0].Digest()
	if d := mf.Layers[0].Digest; d == bd || mf.Layers[0].MediaType != types.OCILayerZStd {
		t.Errorf("base layer 0: %s %s, want a new zstd blob (%s)", mf.Layers[0].MediaType, d, res.Images[0].Layers[0].Reason)
	}
	if outCfg.RootFS.DiffIDs[0] != inCfg.RootFS.DiffIDs[0] {
		t.Errorf("base layer 0: DiffID %s, was %s", outCfg.RootFS.DiffIDs[0], inCfg.RootFS.DiffIDs[0])
	}
	if mf.Layers[0].Annotations[estargz.TOCJSONDigestAnnotation] == "" {
		t.Errorf("base layer 0 has no %s: stargz-snapshotter would not mount it", estargz.TOCJSONDigestAnnotation)
	}
	idx, err := layers.IndexLayer(t.Context(), outLayers[0])
	if err != nil {
		t.Fatal(err)
	}
	if idx.Lazy != layers.ZstdChunked {
		t.Errorf("base layer 0 is %q, want zstd:chunked", idx.Lazy)
	}

	// Layer 1 repeats etc/motd: a TOC holds one entry per name, so the
	// stream would change; it is kept.
	bd1, _ := baseLayers[1].Digest()
	if mf.Layers[1].Digest != bd1 || !strings.Contains(res.Images[0].Layers[1].Reason, "would change its tar stream") {
		t.Errorf("base layer 1: %s (%s), want it kept", mf.Layers[1].Digest, res.Images[0].Layers[1].Reason)
	}
	// The application layer is converted.
	if outCfg.RootFS.DiffIDs[2] == inCfg.RootFS.DiffIDs[2] {
		t.Errorf("the application layer was not converted")
	}

	// The same base under another application that reads the same files of
	// it: the same blob.
	src2 := onBase(t, base, "/srv/other", testimage.Layer{testimage.File("srv/other", "x")})
	out2, _ := optimizeImage(t, src2, optimize.WithBaseImage(base), optimize.WithBasePolicy(optimize.BaseRecompress))
	mf2, _ := out2.Manifest()
	if mf2.Layers[0].Digest != mf.Layers[0].Digest {
		t.Errorf("recompressed base: %s under one application, %s under another", mf.Layers[0].Digest, mf2.Layers[0].Digest)
	}
}

// TestBaseRecompressPrefetch: a recompressed base layer copies the image's
// start-up files it holds ahead of its stream, so stargz-snapshotter
// prefetches them, judged by estargz's own reader: the copies sit before
// the TOC's prefetch landmark and read back whole, a hard link's by its
// target, while the DiffID, and so the snapshot a node holds, stays the
// input's. An application that reads other files of the base gets another
// blob with the same DiffID.
func TestBaseRecompressPrefetch(t *testing.T) {
	libc := strings.Repeat("libc", 50000)
	base := buildImage(t, []testimage.Layer{
		{testimage.Dir("etc", 0o755), testimage.File("etc/os-release", "debian"), testimage.File("etc/passwd", "root:x:0:0::/:/bin/sh\n"),
			testimage.Dir("lib", 0o755), testimage.File("lib/libc.so.6", libc), testimage.Hardlink("lib/libc.so", "lib/libc.so.6"),
			testimage.File("lib/other.so", strings.Repeat("other", 1000))},
	})
	src := onBase(t, base, "/bin/app", testimage.Layer{testimage.File("bin/app", "#!/bin/sh\n")})
	startup := []string{"/bin/app", "/lib/libc.so", "/etc/os-release"}
	out, res := optimizeImage(t, src, optimize.WithBaseImage(base), optimize.WithBasePolicy(optimize.BaseRecompress),
		optimize.WithPrioritizedFiles(startup))
	mustVerify(t, src, out)
	inCfg, _ := src.ConfigFile()
	outCfg, _ := out.ConfigFile()
	if outCfg.RootFS.DiffIDs[0] != inCfg.RootFS.DiffIDs[0] {
		t.Fatalf("base layer: DiffID %s, was %s", outCfg.RootFS.DiffIDs[0], inCfg.RootFS.DiffIDs[0])
	}
	if n := res.Images[0].Layers[0].Prioritized; n != 3 {
		t.Errorf("base layer: %d start-up files prefetched, want 3 (/etc/passwd, the runtime's, and the two named)", n)
	}
	r := openLayer(t, out, 0)
	lm, ok := r.Lookup(estargz.PrefetchLandmark)
	if !ok {
		t.Fatal("the recompressed base has no prefetch landmark")
	}
	for name, body := range map[string]string{"lib/libc.so.6": libc, "etc/os-release": "debian", "etc/passwd": "root:x:0:0::/:/bin/sh\n", "lib/other.so": strings.Repeat("other", 1000)} {
		e, ok := r.Lookup(name)
		if !ok {
			t.Fatalf("%s is not in the TOC", name)
		}
		if prefetched := name != "lib/other.so"; prefetched != (e.Offset < lm.Offset) {
			t.Errorf("%s at %d, the prefetch range ends at %d: prefetched %v, want %v", name, e.Offset, lm.Offset, !prefetched, prefetched)
		}
		sr, err := r.OpenFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(body))
		if _, err := sr.ReadAt(got, 0); err != nil && err != io.EOF || string(got) != body {
			t.Errorf("%s reads back otherwise (%v)", name, err)
		}
	}

	// Another application, reading other files of the base.
	src2 := onBase(t, base, "/srv/other", testimage.Layer{testimage.File("srv/other", "x")})
	out2, _ := optimizeImage(t, src2, optimize.WithBaseImage(base), optimize.WithBasePolicy(optimize.BaseRecompress),
		optimize.WithPrioritizedFiles([]string{"/srv/other", "/lib/other.so"}))
	mf, _ := out.Manifest()
	mf2, _ := out2.Manifest()
	cfg2, _ := out2.ConfigFile()
	if mf2.Layers[0].Digest == mf.Layers[0].Digest || cfg2.RootFS.DiffIDs[0] != inCfg.RootFS.DiffIDs[0] {
		t.Errorf("another application's base: %s with DiffID %s; want another blob than %s, with DiffID %s",
			mf2.Layers[0].Digest, cfg2.RootFS.DiffIDs[0], mf.Layers[0].Digest, inCfg.RootFS.DiffIDs[0])
	}
}

// TestBaseRecompressRefusals: base layers that a lazy puller would show
// otherwise than a full pull keep their bytes, since recompressing must keep
// their streams: one with a hard link to a file of the layer below (estargz's
// reader refuses the TOC), and one with a file in a directory it has no entry
// for (a lazy puller makes the directory up, 0755, over the sticky one below).
// FuzzPlanRoles found both. And one that writes through a symlinked
// directory: a lazy puller would show a directory there, over the symlink.
func TestBaseRecompressRefusals(t *testing.T) {
	base := buildImage(t, []testimage.Layer{
		{testimage.File("lib.so.1", strings.Repeat("lib", 1000)), testimage.Dir("tmp", 0o1777), testimage.Dir("srv", 0o755), testimage.Symlink("opt", "srv")},
		{testimage.Hardlink("lib.so", "lib.so.1"), testimage.File("etc/os-release", "debian")},
		{testimage.File("tmp/x", "x")},
		{testimage.File("opt/y", "y")},
	})
	baseLayers, _ := base.Layers()
	src := onBase(t, base, "/bin/app", testimage.Layer{testimage.File("bin/app", "#!/bin/sh\n")})
	out, res := optimizeImage(t, src, optimize.WithBaseImage(base), optimize.WithBasePolicy(optimize.BaseRecompress))
	mustVerify(t, src, out)
	mf, _ := out.Manifest()
	bd0, _ := baseLayers[0].Digest()
	if mf.Layers[0].Digest == bd0 {
		t.Errorf("base layer 0 was not recompressed: %s", res.Images[0].Layers[0].Reason)
	}
	bd1, _ := baseLayers[1].Digest()
	if r := res.Images[0].Layers[1].Reason; mf.Layers[1].Digest != bd1 || !strings.Contains(r, "hard link /lib.so names /lib.so.1 of a lower layer") {
		t.Errorf("base layer 1: %s (%s), want it kept byte-identical, with the reason", mf.Layers[1].Digest, r)
	}
	bd2, _ := baseLayers[2].Digest()
	if r := res.Images[0].Layers[2].Reason; mf.Layers[2].Digest != bd2 || !strings.Contains(r, "no entry for /tmp comes before its entry for /tmp/x") {
		t.Errorf("base layer 2: %s (%s), want it kept byte-identical, with the reason", mf.Layers[2].Digest, r)
	}
	bd3, _ := baseLayers[3].Digest()
	if r := res.Images[0].Layers[3].Reason; mf.Layers[3].Digest != bd3 || !strings.Contains(r, "its entry opt/y lands in /srv/y through a symlinked directory") {
		t.Errorf("base layer 3: %s (%s), want it kept byte-identical, with the reason", mf.Layers[3].Digest, r)
	}
}

// TestBaseRecompressNeedsContainerd: podman's zstd:chunked and the plain
// formats are refused with the reason.
func TestBaseRecompressNeedsContainerd(t *testing.T) {
	src := buildImage(t, []testimage.Layer{{testimage.File("a", "a")}})
	for _, f := range []layers.Format{layers.FormatZstdChunked, layers.FormatGzip} {
		_, err := optimize.Image(t.Context(), src, optimize.WithBaseImage(src), optimize.WithBasePolicy(optimize.BaseRecompress),
			optimize.WithFormat(f), optimize.WithTempDir(t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), "recompress") {
			t.Errorf("%s: %v, want an error that names the policy", f, err)
		}
	}
}

// onBase is an image of base's layers and one application layer on top.
func onBase(t *testing.T, base v1.Image, entrypoint string, app testimage.Layer) v1.Image {
	t.Helper()
	bl, err := base.Layers()
	if err != nil {
		t.Fatal(err)
	}
	al, err := buildImage(t, []testimage.Layer{app}).Layers()
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Image(v1.Config{Entrypoint: []string{entrypoint}}, append(bl, al...)...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestInferredBase: without a base image, an image whose manifest names its
// base (as buildah and BuildKit write it) has its first layer treated as
// the base's: auto keeps its DiffID (keep or recompress), the summary says why, and
// the layers above are deduped and converted as ever. WithInferredBase(false),
// or no such annotation, leaves the first layer to dedupe, as before.
func TestInferredBase(t *testing.T) {
	base := buildImage(t, []testimage.Layer{
		{testimage.Dir("etc", 0o755), testimage.File("etc/os-release", "debian"), testimage.File("etc/junk", "junk"),
			testimage.Dir("bin", 0o755), testimage.File("bin/sh", strings.Repeat("sh", 5000))},
	})
	plain := onBase(t, base, "/bin/app", testimage.Layer{testimage.Whiteout("etc/junk"), testimage.File("bin/app", "#!/bin/sh\n")})
	named := mutate.Annotations(plain, map[string]string{
		specs.AnnotationBaseImageName:   "debian:bookworm",
		specs.AnnotationBaseImageDigest: "sha256:01e4a69b5a774e315498fc8d8d3734c4ad9a8f9e99e90eb39feb2eac783b502e",
	}).(v1.Image)
	inCfg, _ := plain.ConfigFile()
	for _, tc := range []struct {
		name     string
		img      v1.Image
		opts     []optimize.Option
		inferred bool
	}{
		{"annotated", named, nil, true},
		{"annotated, off", named, []optimize.Option{optimize.WithInferredBase(false)}, false},
		{"not annotated", plain, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, res := optimizeImage(t, tc.img, tc.opts...)
			mustVerify(t, tc.img, out)
			ir := res.Images[0]
			outCfg, _ := out.ConfigFile()
			kept := outCfg.RootFS.DiffIDs[0] == inCfg.RootFS.DiffIDs[0]
			if kept != tc.inferred {
				t.Errorf("layer 0 DiffID kept: %v, want %v (%s; %s)", kept, tc.inferred, ir.BasePolicyReason, ir.Layers[0].Reason)
			}
			if got := strings.Contains(ir.BasePolicyReason, "layer 0 taken for the base's: the image names its base, debian:bookworm"); got != tc.inferred {
				t.Errorf("base policy reason %q: names the inference %v, want %v", ir.BasePolicyReason, got, tc.inferred)
			}
			if (ir.BasePolicy != "") != tc.inferred {
				t.Errorf("base policy %q: a policy applied %v, want %v", ir.BasePolicy, ir.BasePolicy != "", tc.inferred)
			}
			if dropped := ir.Layers[0].DroppedEntries; (dropped > 0) == tc.inferred {
				t.Errorf("layer 0: %d entries dropped; a base layer is never deduped, others are", dropped)
			}
		})
	}
}
