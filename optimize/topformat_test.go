package optimize_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize"
)

// TestTopFormatFollowsBase: without WithFormat, the layers above a
// recompressed base are zstd:chunked for containerd, like the base, and
// their start-up files are compressed at the strongest zstd level; with
// WithFormat, or a base that is not recompressed, they are what was asked
// (eStargz by default). The output verifies, the choice replays from the
// cache, and optimizing the output again changes nothing.
func TestTopFormatFollowsBase(t *testing.T) {
	base := buildImage(t, []testimage.Layer{
		{testimage.Dir("etc", 0o755), testimage.File("etc/os-release", "debian"),
			testimage.Dir("lib", 0o755), testimage.File("lib/libc.so.6", strings.Repeat("libc", 5000))},
	})
	// Text of random words: compressible, and more so at a stronger level.
	words := strings.Fields("the layer image container start cold fast zstd gzip chunk table of contents node lazy pull prefetch snapshot")
	r := rand.New(rand.NewPCG(7, 7))
	var text strings.Builder
	for text.Len() < 400_000 {
		sep := " "
		if r.IntN(12) == 0 {
			sep = "\n"
		}
		text.WriteString(words[r.IntN(len(words))] + sep)
	}
	src := onBase(t, base, "/app/run", testimage.Layer{
		testimage.Dir("app", 0o755), testimage.File("app/run", "#!/bin/sh\n"), testimage.File("app/data.txt", text.String()),
		testimage.File("app/unused.txt", text.String()+"x"),
	})
	prio := optimize.WithPrioritizedFiles([]string{"/app/data.txt"})
	top := func(t *testing.T, opts ...optimize.Option) (types.MediaType, layers.LazyFormat, string, int64, *optimize.Result) {
		t.Helper()
		opts = append([]optimize.Option{optimize.WithBaseImage(base), prio}, opts...)
		out, res := optimizeImage(t, src, opts...)
		mustVerify(t, src, out)
		mf, err := out.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := out.Layers()
		idx, err := layers.IndexLayer(t.Context(), ls[1])
		if err != nil {
			t.Fatal(err)
		}
		return mf.Layers[1].MediaType, idx.Lazy, mf.Annotations[optimize.AnnotationFormat], mf.Layers[1].Size, res
	}

	mt, lazy, format, strong, res := top(t, optimize.WithBasePolicy(optimize.BaseRecompress))
	if mt != types.OCILayerZStd || lazy != layers.ZstdChunked || format != "zstd:chunked-containerd" {
		t.Errorf("above a recompressed base: %s, %q, format annotation %q; want zstd:chunked for containerd", mt, lazy, format)
	}
	if res.Images[0].BasePolicy != "recompress" {
		t.Fatalf("base policy %q", res.Images[0].BasePolicy)
	}
	_, _, _, weak, _ := top(t, optimize.WithBasePolicy(optimize.BaseRecompress), optimize.WithStartupLevel(1))
	if strong >= weak {
		t.Errorf("the top layer is %d bytes with the start-up file at the strongest level, %d at level 1: want smaller", strong, weak)
	}
	for _, tc := range []struct {
		name string
		opts []optimize.Option
	}{
		{"estargz asked for", []optimize.Option{optimize.WithBasePolicy(optimize.BaseRecompress), optimize.WithFormat(layers.FormatEStargz)}},
		{"base converted", []optimize.Option{optimize.WithBasePolicy(optimize.BaseConvert)}},
		{"base kept", []optimize.Option{optimize.WithBasePolicy(optimize.BaseKeep)}},
	} {
		if mt, lazy, format, _, _ := top(t, tc.opts...); mt != types.OCILayer || lazy != layers.EStargz || format != "estargz" {
			t.Errorf("%s: %s, %q, format annotation %q; want eStargz", tc.name, mt, lazy, format)
		}
	}

	// From the cache: the same image.
	c := newDirCache(t)
	opts := []optimize.Option{optimize.WithBaseImage(base), prio, optimize.WithBasePolicy(optimize.BaseRecompress), optimize.WithCache(c)}
	out1, first := optimizeImage(t, src, opts...)
	_, second := optimizeImage(t, src, opts...)
	if first.Digest != second.Digest || second.CacheHits == 0 {
		t.Errorf("from the cache: %s (%d hits), first %s", second.Digest, second.CacheHits, first.Digest)
	}
	// Again over its own output: already optimized with these options.
	_, again := optimizeImage(t, out1, opts[:3]...)
	if again.Digest != first.Digest || !strings.Contains(again.Images[0].Layers[1].Reason, "already optimized") {
		t.Errorf("optimizing the output again: %s (%s), want %s kept", again.Digest, again.Images[0].Layers[1].Reason, first.Digest)
	}
}

// TestStartupLevelRange: a start-up level no format takes, or past gzip's
// for a gzip format, is refused before anything is read; without
// WithFormat a zstd-only level is gzip's strongest in eStargz layers.
func TestStartupLevelRange(t *testing.T) {
	src := buildImage(t, []testimage.Layer{{testimage.File("app/run", strings.Repeat("run ", 3000))}})
	for _, opts := range [][]optimize.Option{
		{optimize.WithStartupLevel(23)},
		{optimize.WithStartupLevel(-1)},
		{optimize.WithStartupLevel(10), optimize.WithFormat(layers.FormatEStargz)},
	} {
		if _, err := optimize.Image(t.Context(), src, append(opts, optimize.WithTempDir(t.TempDir()))...); err == nil || !strings.Contains(err.Error(), "start-up level") {
			t.Errorf("%d options: %v, want an error that names the start-up level", len(opts), err)
		}
	}
	out, _ := optimizeImage(t, src, optimize.WithStartupLevel(19), optimize.WithPrioritizedFiles([]string{"/app/run"}))
	mustVerify(t, src, out)
}
