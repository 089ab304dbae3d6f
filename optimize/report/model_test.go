package report

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// facts are a lazy blob's figures, read with estargz directly.
type facts struct {
	size, toc, prefetch int64
	r                   *estargz.Reader
	tocOff              int64
}

func blobFacts(t *testing.T, blob []byte) facts {
	t.Helper()
	sr := io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob)))
	tocOff, footer, err := estargz.OpenFooter(sr)
	if err != nil {
		t.Fatal(err)
	}
	r, err := estargz.Open(sr)
	if err != nil {
		t.Fatal(err)
	}
	f := facts{size: int64(len(blob)), toc: int64(len(blob)) - footer - tocOff, r: r, tocOff: tocOff}
	if e, ok := r.Lookup(estargz.PrefetchLandmark); ok {
		f.prefetch = e.Offset
	}
	return f
}

// span is the compressed range from a file's first chunk to the end of its
// last, as estargz lays them out.
func (f facts) span(t *testing.T, name string) (start, end int64) {
	t.Helper()
	e, ok := f.r.Lookup(name)
	if !ok {
		t.Fatalf("%s not in the TOC", name)
	}
	start = -1
	for off := int64(0); off < e.Size; {
		ce, ok := f.r.ChunkEntryForOffset(name, off)
		if !ok {
			t.Fatalf("%s: no chunk at %d", name, off)
		}
		if start < 0 {
			start = ce.Offset
		}
		end = min(ce.NextOffset(), f.tocOff)
		off = ce.ChunkOffset + ce.ChunkSize
	}
	return start, end
}

// unpackFacts counts a blob's uncompressed bytes and tar entries.
func unpackFacts(t *testing.T, blob []byte) (n int64, entries int) {
	t.Helper()
	rc, _, err := layers.Decompress(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var cnt countingWriter
	tr := tar.NewReader(io.TeeReader(rc, &cnt))
	for {
		if _, err := tr.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		entries++
	}
	if _, err := io.Copy(io.Discard, io.TeeReader(rc, &cnt)); err != nil {
		t.Fatal(err)
	}
	return cnt.n, entries
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func scenario(t *testing.T, r *Report, s Scenario) ScenarioCost {
	t.Helper()
	for _, x := range r.Scenarios {
		if x.Scenario == s {
			return x
		}
	}
	t.Fatalf("no scenario %s", s)
	return ScenarioCost{}
}

func estimateFor(t *testing.T, r *Report, name string) NetworkEstimate {
	t.Helper()
	for _, e := range r.Estimates {
		if e.Network == name {
			return e
		}
	}
	t.Fatalf("no estimate for %s", name)
	return NetworkEstimate{}
}

// TestModelNodeHoldsBase pins the model on a node that holds the gzip base:
// the two eStargz layers are mounted lazily; a file inside the prefetch
// range, a file of four chunks outside it (one request), a file of the
// other layer, a file of the held layer reached through a symlink, and a
// missing one.
func TestModelNodeHoldsBase(t *testing.T) {
	base, lib, app := fixtureLayers(t)
	img := testImage(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, base, lib, app)
	bd, _ := base.layer.Digest()
	r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithCachedLayers(bd),
		WithRates(zeroCPU), WithNetworks(latencyOnly, bandwidthOnly))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	cfg, _ := img.RawConfigFile()
	meta := int64(len(raw) + len(cfg))
	lf, af := blobFacts(t, lib.blob), blobFacts(t, app.blob)
	if lf.prefetch == 0 || af.prefetch != 0 {
		t.Fatalf("fixture: prefetch ranges %d and %d", lf.prefetch, af.prefetch)
	}
	bigStart, bigEnd := lf.span(t, "usr/lib/big.dat")
	soStart, soEnd := lf.span(t, "usr/lib/app.so")
	mainStart, mainEnd := af.span(t, "app/main")
	if soEnd > lf.prefetch || bigStart < lf.prefetch {
		t.Fatalf("fixture: app.so at %d-%d, big.dat at %d, prefetch to %d", soStart, soEnd, bigStart, lf.prefetch)
	}

	lazy := scenario(t, r, LazyStart)
	wantLazy := ScenarioCost{
		Scenario:      LazyStart,
		Bytes:         meta + FooterBytes + lf.toc + lf.prefetch + FooterBytes + af.toc + (bigEnd - bigStart) + (mainEnd - mainStart),
		Requests:      2 + 3 + 2 + 1 + 1,
		MetadataBytes: meta + 2*FooterBytes + lf.toc + af.toc,
		PrefetchBytes: lf.prefetch,
		OnDemandBytes: (bigEnd - bigStart) + (mainEnd - mainStart),
	}
	if d := cmp.Diff(wantLazy, lazy); d != "" {
		t.Errorf("lazy start (-want +got):\n%s", d)
	}
	full := scenario(t, r, FullPull)
	libU, libE := unpackFacts(t, lib.blob)
	appU, appE := unpackFacts(t, app.blob)
	if full.Bytes != meta+int64(len(lib.blob)+len(app.blob)) || full.Requests != 4 || full.UnpackBytes != libU+appU {
		t.Errorf("full pull: %+v", full)
	}
	lower := scenario(t, r, LowerBound)
	if want := meta + 2*FooterBytes + lf.toc + af.toc + (soEnd - soStart) + (bigEnd - bigStart) + (mainEnd - mainStart); lower.Bytes != want || lower.Requests != 7 {
		t.Errorf("lower bound: %d bytes in %d requests, want %d in 7", lower.Bytes, lower.Requests, want)
	}
	if r.IfOptimizedBytes != nil {
		t.Errorf("every layer the node lacks is lazy, yet there is an if-optimized scenario")
	}
	if r.LazyStartBytes != lazy.Bytes || r.FullPullRequests != 4 || r.LowerBoundBytes != lower.Bytes {
		t.Errorf("top-level figures disagree with the scenarios: %+v", r)
	}

	// Latency only: every request is one RTT of 10 ms. Lazy: manifest,
	// config, two footers and TOCs in a chain (60 ms), then big.dat and
	// app/main one after the other; the prefetch ended at 50 ms.
	le := estimateFor(t, r, "latency")
	if !near(le.LazyStartSeconds, 0.08) || !near(le.FullPullSeconds, 0.03) || !near(le.LowerBoundSeconds, 0.03) {
		t.Errorf("latency only: %+v", le)
	}
	// Bandwidth only: the link is never idle, so every scenario takes its
	// bytes over the rate.
	be := estimateFor(t, r, "bandwidth")
	for _, x := range []struct {
		got   float64
		bytes int64
	}{{be.LazyStartSeconds, lazy.Bytes}, {be.FullPullSeconds, full.Bytes}, {be.LowerBoundSeconds, lower.Bytes}} {
		if math.Abs(x.got-float64(x.bytes)/1e6) > 1e-4 {
			t.Errorf("bandwidth only: %.4f s for %d bytes at 1 MB/s", x.got, x.bytes)
		}
	}

	// Roles and files.
	roles := []string{r.Layers[0].Role, r.Layers[1].Role, r.Layers[2].Role}
	if d := cmp.Diff([]string{"held", "lazy", "lazy"}, roles); d != "" {
		t.Errorf("roles (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"/missing"}, r.Profile.Missing); d != "" {
		t.Errorf("missing (-want +got):\n%s", d)
	}
	if r.Profile.Files != 4 || r.Profile.Paths != len(fixtureFiles) || r.Profile.Bytes != 10_000+100_000+200_000+20_000 {
		t.Errorf("profile summary %+v", r.Profile)
	}
	where := map[string]string{}
	for _, f := range r.TopFiles {
		where[f.File] = f.Where
		if f.Where == WhereOnDemand && f.Requests != 1 {
			t.Errorf("%s: %d requests, want 1", f.File, f.Requests)
		}
	}
	if d := cmp.Diff(map[string]string{"/usr/bin/sh": WhereHeld, "/usr/lib/app.so": WherePrefetch,
		"/usr/lib/big.dat": WhereOnDemand, "/app/main": WhereOnDemand}, where); d != "" {
		t.Errorf("where the files come from (-want +got):\n%s", d)
	}
	if r.TopFiles[0].File != "/usr/lib/big.dat" {
		t.Errorf("costliest file %s, want /usr/lib/big.dat", r.TopFiles[0].File)
	}
	if l := r.Layers[1]; l.TOCBytes != FooterBytes+lf.toc || l.PrefetchBytes != lf.prefetch || l.OnDemandBytes != bigEnd-bigStart ||
		l.OnDemandRequests != 1 || l.StartupFiles != 2 {
		t.Errorf("layer 1: %+v", l)
	}

	// CPU only: a full pull is the unpacking of both layers.
	rates := Rates{GzipDecompress: 1e6, ZstdDecompress: 1e300, Verify: 1e300, Unpack: 2e6, UnpackEntry: 0.001}
	r2, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithCachedLayers(bd),
		WithRates(rates), WithNetworks(Network{Name: "free"}))
	if err != nil {
		t.Fatal(err)
	}
	want := float64(libU+appU)/1e6 + float64(libU+appU)/2e6 + float64(libE+appE)*0.001
	if got := r2.Estimates[0].FullPullSeconds; math.Abs(got-want) > 1e-4 {
		t.Errorf("CPU only: full pull %.4f s, want %.4f", got, want)
	}
	if ph := r2.Estimates[0].Phases[0]; ph.Download != 0 || math.Abs(ph.Unpack-want) > 1e-4 {
		t.Errorf("CPU only: phases %+v", ph)
	}
}

// TestModelColdNode: the gzip base is not held, so containerd downloads it;
// the eStargz layers above it are mounted lazily all the same (containerd
// 2.4 with stargz-snapshotter 0.19); the what-if converts the base.
func TestModelColdNode(t *testing.T) {
	base, lib, app := fixtureLayers(t)
	img := testImage(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, base, lib, app)
	r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithRates(zeroCPU), WithNetworks(latencyOnly))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	cfg, _ := img.RawConfigFile()
	meta := int64(len(raw) + len(cfg))
	whole := int64(len(base.blob) + len(lib.blob) + len(app.blob))
	lazy, full := scenario(t, r, LazyStart), scenario(t, r, FullPull)
	lf, af := blobFacts(t, lib.blob), blobFacts(t, app.blob)
	bigStart, bigEnd := lf.span(t, "usr/lib/big.dat")
	mainStart, mainEnd := af.span(t, "app/main")
	lazyWant := meta + int64(len(base.blob)) + FooterBytes + lf.toc + lf.prefetch + FooterBytes + af.toc + (bigEnd - bigStart) + (mainEnd - mainStart)
	if lazy.Bytes != lazyWant || lazy.Requests != 2+1+3+2+1+1 || lazy.LayerBytes != int64(len(base.blob)) || full.Bytes != meta+whole {
		t.Errorf("lazy start on a cold node: %+v (want %d bytes), full pull %+v", lazy, lazyWant, full)
	}
	roles := []string{r.Layers[0].Role, r.Layers[1].Role, r.Layers[2].Role}
	if d := cmp.Diff([]string{"full", "lazy", "lazy"}, roles); d != "" {
		t.Errorf("roles (-want +got):\n%s", d)
	}

	// If optimized: the base becomes eStargz with /usr/bin/sh first.
	ifo := scenario(t, r, IfOptimized)
	if !ifo.Estimated || r.IfOptimizedBytes == nil || *r.IfOptimizedBytes != ifo.Bytes {
		t.Fatalf("if optimized: %+v", ifo)
	}
	baseU, _ := unpackFacts(t, base.blob)
	ratio := float64(len(base.blob)) / float64(baseU)
	estTOC := int64(4*EstimatedTOCEntryBytes + 2*EstimatedTOCFileBytes + EstimatedTOCEntryBytes) // 3 dirs, a symlink, 2 files, the landmark
	estPrefetch := int64(math.Ceil(float64(512+10_000+240) * ratio))
	want := meta + FooterBytes + estTOC + estPrefetch + FooterBytes + lf.toc + lf.prefetch + FooterBytes + af.toc + (bigEnd - bigStart) + (mainEnd - mainStart)
	if ifo.Bytes != want || ifo.Requests != 2+3+3+2+1+1 {
		t.Errorf("if optimized: %d bytes in %d requests, want %d in 12", ifo.Bytes, ifo.Requests, want)
	}
	// Latency: 8 requests in a chain to mount (manifest, config, three
	// footers and TOCs), /bin/sh waits for the base's prefetch (ended at
	// 50 ms), then big.dat and app/main.
	e := r.Estimates[0]
	// The lazy start: manifest, config, then the base's download beside
	// the two layers' footers and TOCs (a chain: 0.06 s), the lib's
	// prefetch, big.dat and app/main on demand.
	if e.IfOptimizedSeconds == nil || !near(*e.IfOptimizedSeconds, 0.10) || !near(e.LazyStartSeconds, 0.08) {
		t.Errorf("latency only: %+v", e)
	}
	if lb := scenario(t, r, LowerBound); !lb.Estimated {
		t.Errorf("the lower bound counts the base's estimate but is not flagged: %+v", lb)
	}
}

// TestModelZstdChunked: a zstd:chunked layer carries no TOC digest, which
// stargz-snapshotter verifies by default: it is not mounted lazily but
// downloaded whole, and the report says why.
func TestModelZstdChunked(t *testing.T) {
	_, lib, _ := fixtureLayers(t)
	z := lazyLayer(t, tarOf(t, lib), layers.EncodeOptions{Format: layers.FormatZstdChunked, ChunkSize: chunk, Prioritized: []string{"usr/lib/app.so"}})
	img := testImage(t, v1.Config{}, z)
	r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithRates(zeroCPU), WithNetworks(latencyOnly))
	if err != nil {
		t.Fatal(err)
	}
	if r.Layers[0].Format != string(layers.ZstdChunked) || r.Layers[0].Role != "full" || !strings.Contains(r.Layers[0].Note, "verification") {
		t.Fatalf("zstd:chunked layer: %+v", r.Layers[0])
	}
	// manifest, config, the blob.
	if lazy := scenario(t, r, LazyStart); lazy.Requests != 3 || lazy.LayerBytes != int64(len(z.blob)) {
		t.Fatalf("lazy start: %+v", lazy)
	}
}

// tarOf returns the uncompressed tar of a test layer.
func tarOf(t *testing.T, l testLayer) []byte {
	t.Helper()
	rc, _, err := layers.Decompress(bytes.NewReader(l.blob))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Drop eStargz's own entries: Encode adds them again.
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Name {
		case estargz.TOCTarName, estargz.PrefetchLandmark, estargz.NoPrefetchLandmark:
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestModelLazyWithoutAnnotation: a lazy blob whose descriptor lacks the
// TOC annotation is not mounted lazily.
func TestModelLazyWithoutAnnotation(t *testing.T) {
	_, lib, _ := fixtureLayers(t)
	lib.annots = nil
	img := testImage(t, v1.Config{}, lib)
	r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithRates(zeroCPU), WithNetworks(latencyOnly))
	if err != nil {
		t.Fatal(err)
	}
	if l := r.Layers[0]; l.Role != "full" || l.Note == "" || l.Format != "estargz" {
		t.Fatalf("layer %+v", l)
	}
}

// TestModelSameBlobTwice: a blob the image lists twice is downloaded once
// and mounted once, as the client does (see lazypull's TestSameBlobTwice).
func TestModelSameBlobTwice(t *testing.T) {
	_, lib, app := fixtureLayers(t)
	img := testImage(t, v1.Config{}, lib, app, lib)
	r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithRates(zeroCPU), WithNetworks(latencyOnly))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	cfg, _ := img.RawConfigFile()
	full := scenario(t, r, FullPull)
	libU, _ := unpackFacts(t, lib.blob)
	appU, _ := unpackFacts(t, app.blob)
	if full.Requests != 4 || full.Bytes != int64(len(raw)+len(cfg)+len(lib.blob)+len(app.blob)) || full.UnpackBytes != 2*libU+appU {
		t.Errorf("full pull: %+v", full)
	}
	// manifest, config, lib's footer, TOC and prefetch, app's footer and
	// TOC, then big.dat and app/main.
	if lazy := scenario(t, r, LazyStart); lazy.Requests != 9 {
		t.Errorf("lazy start: %+v", lazy)
	}
	if lb := scenario(t, r, LowerBound); lb.Requests != 2+2+2+1 {
		t.Errorf("lower bound: %+v", lb)
	}
}

// TestModelSnapshotByChain: containerd names a snapshot by the chain ID of
// its layer, which the DiffIDs decide: a node that pulled the gzip base
// holds the base layer of an image whose base was recompressed into
// zstd:chunked for containerd with its tar stream unchanged, although it
// has no blob of that digest. The same tar under another lower layer is
// another snapshot.
func TestModelSnapshotByChain(t *testing.T) {
	base, lib, app := fixtureLayers(t)
	rc, _, err := layers.Decompress(bytes.NewReader(base.blob))
	if err != nil {
		t.Fatal(err)
	}
	baseTar, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	recompressed := lazyLayer(t, baseTar, layers.EncodeOptions{Format: layers.FormatZstdChunkedContainerd})
	bd, _ := base.layer.Digest()
	rd, _ := recompressed.layer.Digest()
	if bd == rd {
		t.Fatal("fixture: the recompressed base has the gzip base's digest")
	}
	img := testImage(t, fixtureImageConfig, recompressed, lib, app)
	for _, tc := range []struct {
		name  string
		held  v1.Image
		roles []string
	}{
		{"holds the gzip base", testImage(t, fixtureImageConfig, base), []string{"held", "lazy", "lazy"}},
		{"holds base and lib", testImage(t, fixtureImageConfig, base, lib), []string{"held", "held", "lazy"}},
		{"holds the base's tar above another layer", testImage(t, fixtureImageConfig, app, base), []string{"lazy", "lazy", "held"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithBaseImage(tc.held),
				WithRates(zeroCPU), WithNetworks(bandwidthOnly))
			if err != nil {
				t.Fatal(err)
			}
			var roles []string
			var heldBytes int64
			for _, l := range r.Layers {
				roles = append(roles, l.Role)
				if l.Held {
					heldBytes += l.Size
				}
			}
			if d := cmp.Diff(tc.roles, roles); d != "" {
				t.Errorf("roles (-want +got):\n%s", d)
			}
			full := scenario(t, r, FullPull)
			var all int64
			for _, l := range r.Layers {
				all += l.Size
			}
			raw, _ := img.RawManifest()
			cfg, _ := img.RawConfigFile()
			if want := int64(len(raw)+len(cfg)) + all - heldBytes; full.Bytes != want {
				t.Errorf("full pull fetches %d bytes, want %d: the held layers' blobs are not fetched", full.Bytes, want)
			}
		})
	}
}

// TestModelSnapshotterWaitsForPrefetch pins what stargz-snapshotter does
// differently from the built-in client, on the fixture of
// TestModelNodeHoldsBase with every request one 10 ms round trip and a
// container start of 1 s: it checks each blob with two requests and
// resolves both lazy layers at once (manifest and config, then per layer
// two checks, the footer and the TOC: 60 ms); the prefetch, fetched
// once its TOC is in, is cached after it arrives (at 70 ms, then 0.5 s of
// PrefetchLayer); and the container starts only once it is cached (0.57
// s), then fetches big.dat and app/main on demand: 1.59 s. The built-in
// client (given the same container start) reads the TOCs one layer after
// another (60 ms) and starts the container at once: app.so's prefetch is
// in by the time it is read, and the two on-demand files end the start at
// 1.08 s.
func TestModelSnapshotterWaitsForPrefetch(t *testing.T) {
	base, lib, app := fixtureLayers(t)
	img := testImage(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, base, lib, app)
	bd, _ := base.layer.Digest()
	snap := zeroCPU
	snap.ContainerStart = 1
	snap.CheckRequests, snap.ResolveAtOnce, snap.PrefetchLayer, snap.PrefetchWait = 2, true, 0.5, 10
	builtIn := snap.BuiltInClient()
	builtIn.ContainerStart = 1
	for _, tc := range []struct {
		name     string
		rates    Rates
		requests int
		want     float64
	}{
		{"stargz-snapshotter", snap, 2 + 2*2 + 3 + 2 + 1 + 1, 1.59},
		{"built-in client", builtIn, 2 + 3 + 2 + 1 + 1, 1.08},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithCachedLayers(bd),
				WithRates(tc.rates), WithNetworks(latencyOnly))
			if err != nil {
				t.Fatal(err)
			}
			if got := scenario(t, r, LazyStart).Requests; got != tc.requests {
				t.Errorf("%d requests, want %d", got, tc.requests)
			}
			if got := r.Estimates[0].LazyStartSeconds; !near(got, tc.want) {
				t.Errorf("lazy start %.4f s, want %.2f", got, tc.want)
			}
		})
	}
}

// TestModelUnpackerFetchesAbove: on a node with stargz-snapshotter, a
// layer that is not lazy makes containerd's unpacker download it and every
// layer above it whole (core/unpack: startFetch(i) fetches layers[i:]),
// while the snapshotter mounts the lazy ones above once the layer below is
// unpacked. The built-in client mounts each lazy layer on its own and
// fetches none of them whole.
func TestModelUnpackerFetchesAbove(t *testing.T) {
	base, lib, app := fixtureLayers(t)
	img := testImage(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, base, lib, app)
	snap := zeroCPU
	snap.FetchBlock = DefaultRates.FetchBlock
	snap.UnpackLayer = 2 // seconds to apply the gzip base
	builtIn := snap.BuiltInClient()
	builtIn.UnpackLayer = 2
	estimate := func(rates Rates) (ScenarioCost, float64) {
		t.Helper()
		r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithRates(rates), WithNetworks(bandwidthOnly))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{"full", "lazy", "lazy"}, []string{r.Layers[0].Role, r.Layers[1].Role, r.Layers[2].Role}); d != "" {
			t.Fatalf("roles (-want +got):\n%s", d)
		}
		return scenario(t, r, LazyStart), r.Estimates[0].LazyStartSeconds
	}
	s, secs := estimate(snap)
	if want := int64(len(base.blob) + len(lib.blob) + len(app.blob)); s.LayerBytes != want {
		t.Errorf("stargz-snapshotter: %d bytes of whole layers, want the base, lib and app: %d", s.LayerBytes, want)
	}
	b, bsecs := estimate(builtIn)
	if b.LayerBytes != int64(len(base.blob)) {
		t.Errorf("built-in client: %d bytes of whole layers, want the base's %d", b.LayerBytes, len(base.blob))
	}
	// The lib's prefetch waits for the base's unpack (2 s), and the
	// reads on demand for it: the base's download, the unpack, the
	// prefetch and the reads follow each other. The built-in client
	// prefetches while the base unpacks.
	serial := 2 + float64(int64(len(base.blob))+s.PrefetchBytes+s.OnDemandBytes)/bandwidthOnly.BytesPerSecond
	if secs < serial || secs <= bsecs {
		t.Errorf("stargz-snapshotter: lazy start %.4f s, want at least %.4f s (the base, its unpack, the prefetch after it, the reads) and more than the built-in client's %.4f s", secs, serial, bsecs)
	}
}
