package report

import (
	"context"
	"math"
	"strings"
	"testing"
)

func TestReadRates(t *testing.T) {
	r, err := ReadRates(strings.NewReader(`{"runtimeStartSeconds": 0.09, "fetchBlockBytes": 65536}`))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultRates
	want.RuntimeStart = 0.09
	want.FetchBlock = 65536
	if r != want {
		t.Errorf("ReadRates = %+v, want the defaults with the two fields set: %+v", r, want)
	}
	for _, bad := range []struct{ in, says string }{
		{`{"runtimeStart": 0.09}`, `unknown field "runtimeStart"`},
		{`{"gzipDecompressBytesPerSecond": 0}`, "cannot be used"},
		{`{"lazyMountSeconds": -1}`, "cannot be used"},
		{`{"partReadFraction": 2}`, "cannot be used"},
		{`{} {}`, "more than one"},
		{`[1]`, "cannot unmarshal"},
	} {
		if _, err := ReadRates(strings.NewReader(bad.in)); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("ReadRates(%s) = %v, want an error saying %q", bad.in, err, bad.says)
		}
	}
}

// TestScaleNode: a node k times as slow takes k times as long for the
// node-side part of a start (on a network that costs nothing, so that no
// transfer overlaps it).
func TestScaleNode(t *testing.T) {
	base, lib, app := fixtureLayers(t)
	img := testImage(t, fixtureImageConfig, base, lib, app)
	prof := fixtureProfile()
	nw := Network{Name: "free", BytesPerSecond: 1e300}
	start := func(r Rates) (lazy, full float64) {
		t.Helper()
		rep, err := Estimate(context.Background(), img, WithProfile(prof), WithRates(r), WithNetworks(nw))
		if err != nil {
			t.Fatal(err)
		}
		return rep.Estimates[0].LazyStartSeconds, rep.Estimates[0].FullPullSeconds
	}
	// Only node-side costs: the CPU rates free, no request cost.
	node := DefaultRates
	node.GzipDecompress, node.ZstdDecompress, node.Verify, node.Unpack = zeroCPU.GzipDecompress, zeroCPU.ZstdDecompress, zeroCPU.Verify, zeroCPU.Unpack
	node.Request, node.TOCEntry = 0, 0
	free := zeroCPU
	free.PrefetchWait, free.ResolveAtOnce, free.FetchBlock = node.PrefetchWait, node.ResolveAtOnce, node.FetchBlock
	free.PartRead, free.PartTouch, free.CheckRequests = node.PartRead, node.PartTouch, node.CheckRequests
	lazy0, full0 := start(free)
	lazy1, full1 := start(node)
	lazy2, full2 := start(node.ScaleNode(2))
	if !(lazy1 > lazy0 && full1 > full0) {
		t.Fatalf("the node's costs add nothing: lazy %.3f/%.3f s, full %.3f/%.3f s", lazy0, lazy1, full0, full1)
	}
	for _, c := range []struct {
		name           string
		free, one, two float64
	}{{"lazy start", lazy0, lazy1, lazy2}, {"full pull", full0, full1, full2}} {
		if got, want := c.two-c.free, 2*(c.one-c.free); math.Abs(got-want) > 0.002 { // estimates are in milliseconds
			t.Errorf("%s: node part %.4f s at k=2, want twice %.4f s", c.name, got, c.one-c.free)
		}
	}
	if r := node.ScaleNode(0); r != node {
		t.Errorf("ScaleNode(0) changed the rates")
	}
}
