package report

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// smallFilesImage is one eStargz layer without prefetch holding twenty
// 1,000-byte files, and a profile that reads them all.
func smallFilesImage(t *testing.T) (v1.Image, *profile.Profile) {
	t.Helper()
	l := testimage.Layer{testimage.Dir("app", 0o755)}
	prof := &profile.Profile{Source: profile.SourceFile}
	for i := range 20 {
		name := fmt.Sprintf("app/f%02d", i)
		l = append(l, testimage.File(name, noise(uint64(i), 1000)))
		prof.Files = append(prof.Files, "/"+name)
	}
	return testImage(t, fixtureImageConfig, lazyLayer(t, l.Tar(), layers.EncodeOptions{ChunkSize: chunk})), prof
}

// TestModelFetchBlocks: stargz-snapshotter fetches on-demand data in
// aligned blocks of the blob and keeps them, so twenty small neighbouring
// files cost one request, not twenty; without blocks (the built-in
// client) each file is its own request.
func TestModelFetchBlocks(t *testing.T) {
	img, prof := smallFilesImage(t)
	onDemand := func(block int64) ScenarioCost {
		rates := zeroCPU
		rates.FetchBlock = block
		r, err := Estimate(context.Background(), img, WithProfile(prof), WithRates(rates), WithNetworks(latencyOnly))
		if err != nil {
			t.Fatal(err)
		}
		return scenario(t, r, LazyStart)
	}
	exact, blocks := onDemand(0), onDemand(50_000)
	// In blocks, the layer's footer and TOC come in one read of its last
	// (and only) block, and the 20 files in one more.
	meta := exact.Requests - 20 - 1
	if blocks.Requests != meta+1 {
		t.Errorf("with 50,000-byte blocks: %d requests, want %d (metadata) + 1", blocks.Requests, meta)
	}
	if exact.OnDemandBytes >= 20*1000 || blocks.OnDemandBytes < exact.OnDemandBytes {
		t.Errorf("on-demand bytes: %d exact, %d in blocks", exact.OnDemandBytes, blocks.OnDemandBytes)
	}
	if blocks.OnDemandBytes > 50_000 {
		t.Errorf("one block fetched %d bytes", blocks.OnDemandBytes)
	}
}

// TestModelProgramStart: a run profile's measured start replaces the
// default container start (the runtime's part is added); rates with no
// container start (the built-in client's) add nothing.
func TestModelProgramStart(t *testing.T) {
	img, prof := smallFilesImage(t)
	lazy := func(rates Rates, ready float64) float64 {
		p := *prof
		p.ReadySeconds = ready
		r, err := Estimate(context.Background(), img, WithProfile(&p), WithRates(rates), WithNetworks(Network{Name: "free"}))
		if err != nil {
			t.Fatal(err)
		}
		return r.Estimates[0].LazyStartSeconds
	}
	rates := zeroCPU
	rates.ContainerStart, rates.RuntimeStart = 0.5, 0.2
	for _, c := range []struct {
		rates       Rates
		ready, want float64
	}{
		{rates, 0, 0.5},   // unknown program: ContainerStart
		{rates, 1.5, 1.7}, // measured: RuntimeStart + ReadySeconds
		{zeroCPU, 1.5, 0}, // no container at all
	} {
		if got := lazy(c.rates, c.ready); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("ContainerStart %g, RuntimeStart %g, readySeconds %g: %.3f s, want %.3f", c.rates.ContainerStart, c.rates.RuntimeStart, c.ready, got, c.want)
		}
	}
}

// TestModelPipelinedUnpack: a full pull unpacks a layer as soon as it and
// the one below are in (containerd's unpacker), so the small layer's
// unpacking hides behind the big layer's download.
func TestModelPipelinedUnpack(t *testing.T) {
	small := gzipLayer(t, testimage.Layer{testimage.File("a", noise(1, 1000))})
	big := gzipLayer(t, testimage.Layer{testimage.File("b", noise(2, 400_000))})
	img := testImage(t, fixtureImageConfig, small, big)
	rates := zeroCPU
	rates.UnpackEntry = 0.05 // per entry: the small layer's 0.05 s
	r, err := Estimate(context.Background(), img, WithProfile(&profile.Profile{Source: profile.SourceFile}),
		WithRates(rates), WithNetworks(bandwidthOnly))
	if err != nil {
		t.Fatal(err)
	}
	full := scenario(t, r, FullPull)
	// The link carries every byte; only the big layer's unpacking (one
	// entry) comes after it.
	want := float64(full.Bytes)/1e6 + 0.05
	if got := r.Estimates[0].FullPullSeconds; math.Abs(got-want) > 1e-3 {
		t.Errorf("full pull %.4f s, want %.4f (the bytes, then the last layer's unpack)", got, want)
	}
}

// TestModelUnpackLayer: applying a layer downloaded whole has a fixed cost
// (Rates.UnpackLayer), paid once per layer whatever it holds; a lazy start
// (of the image converted) applies nothing.
func TestModelUnpackLayer(t *testing.T) {
	var ls []testLayer
	for i := range 4 {
		ls = append(ls, gzipLayer(t, testimage.Layer{testimage.File(fmt.Sprintf("f%d", i), noise(uint64(i), 100))}))
	}
	img := testImage(t, fixtureImageConfig, ls...)
	estimate := func(perLayer float64) *NetworkEstimate {
		rates := zeroCPU
		rates.UnpackLayer = perLayer
		r, err := Estimate(context.Background(), img, WithProfile(&profile.Profile{Source: profile.SourceFile}),
			WithRates(rates), WithNetworks(bandwidthOnly))
		if err != nil {
			t.Fatal(err)
		}
		return &r.Estimates[0]
	}
	without, with := estimate(0), estimate(0.1)
	// The layers are tiny: every apply but the first waits for the one
	// below, so the four applies run one after the other.
	if got := with.FullPullSeconds - without.FullPullSeconds; math.Abs(got-0.4) > 0.01 {
		t.Errorf("4 layers at 0.1 s each added %.3f s to the full pull, want 0.4", got)
	}
	if with.IfOptimizedSeconds == nil || without.IfOptimizedSeconds == nil {
		t.Fatal("no estimate of the image converted")
	}
	if *with.IfOptimizedSeconds != *without.IfOptimizedSeconds {
		t.Errorf("the lazy start of the image converted changed with the per-layer apply cost: %.3f s, was %.3f", *with.IfOptimizedSeconds, *without.IfOptimizedSeconds)
	}
}

// TestModelChunkFetches: stargz-snapshotter fetches a chunk of a file when
// the program first touches it, so a file of five chunks read on demand
// costs five requests; the built-in client fetches its members in one.
func TestModelChunkFetches(t *testing.T) {
	img := testImage(t, fixtureImageConfig, lazyLayer(t, testimage.Layer{
		testimage.Dir("app", 0o755), testimage.File("app/big", noise(7, 5*chunk)),
	}.Tar(), layers.EncodeOptions{ChunkSize: chunk}))
	prof := &profile.Profile{Source: profile.SourceFile, Files: []string{"/app/big"}}
	onDemand := func(block int64) int {
		rates := zeroCPU
		rates.FetchBlock = block
		r, err := Estimate(context.Background(), img, WithProfile(prof), WithRates(rates), WithNetworks(latencyOnly))
		if err != nil {
			t.Fatal(err)
		}
		return r.Layers[0].OnDemandRequests
	}
	if got := onDemand(0); got != 1 {
		t.Errorf("built-in client: %d on-demand requests, want 1", got)
	}
	if got := onDemand(50_000); got != 5 {
		t.Errorf("snapshotter: %d on-demand requests, want 5 (one a chunk)", got)
	}
}

// TestModelPrefetchCaching: the snapshotter pays Rates.CacheChunk for each
// chunk it caches, prefetched or fetched on demand, and Rates.PrefetchEntry
// for each entry of a prefetched layer's TOC, all on the start's path
// here. The fixture's lib layer prefetches app.so (100,000 bytes: two
// 64 KiB chunks) and has six entries (three directories, three files); the
// start then fetches big.dat (200,000 bytes: four chunks) and app/main
// (one) on demand.
func TestModelPrefetchCaching(t *testing.T) {
	base, lib, app := fixtureLayers(t)
	img := testImage(t, fixtureImageConfig, base, lib, app)
	bd, _ := base.layer.Digest()
	start := func(perChunk, perEntry float64) float64 {
		rates := zeroCPU
		rates.ContainerStart = 1
		rates.CheckRequests, rates.ResolveAtOnce, rates.PrefetchLayer, rates.PrefetchWait = 2, true, 0.5, 10
		rates.CacheChunk, rates.PrefetchEntry = perChunk, perEntry
		r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithCachedLayers(bd),
			WithRates(rates), WithNetworks(latencyOnly))
		if err != nil {
			t.Fatal(err)
		}
		return r.Estimates[0].LazyStartSeconds
	}
	without := start(0, 0)
	if got, want := start(0.1, 0)-without, (2+4+1)*0.1; math.Abs(got-want) > 1e-6 {
		t.Errorf("CacheChunk 0.1 s added %.4f s, want %.4f (seven chunks)", got, want)
	}
	if got, want := start(0, 0.01)-without, 6*0.01; math.Abs(got-want) > 1e-6 {
		t.Errorf("PrefetchEntry 0.01 s added %.4f s, want %.4f (six entries)", got, want)
	}
}
