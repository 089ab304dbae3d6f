package report

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func pushTo(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// TestMeasureAgainstDistribution measures the fixture on Debian's
// docker-registry, through the shaping proxy, on a node that holds the
// gzip base: the measured bytes and requests are exactly the predicted
// ones, and the times are of the predicted order.
func TestMeasureAgainstDistribution(t *testing.T) {
	reg := registrytest.StartDistribution(t)
	base, lib, app := fixtureLayers(t)
	img := testImage(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, base, lib, app)
	ref := reg.Ref("fixture/app:1")
	pushTo(t, ref, img)
	bd, _ := base.layer.Digest()
	shape := Network{Name: "shaped", BytesPerSecond: 50e6 / 8, RTT: 5 * time.Millisecond}
	dir := t.TempDir()
	r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithCachedLayers(bd),
		WithMeasurement(ref), WithShaping(shape), WithTempDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	m := r.Measured
	if m == nil || m.Network != "shaped" {
		t.Fatalf("measurement %+v", m)
	}
	for name, run := range map[string]Run{"full pull": m.FullPull, "lazy start": m.LazyStart} {
		if run.Bytes != run.PredictedBytes || run.Requests != run.PredictedRequests {
			t.Errorf("%s: measured %d bytes in %d requests, predicted %d in %d", name, run.Bytes, run.Requests, run.PredictedBytes, run.PredictedRequests)
		}
		// Loose on purpose: this machine may be busy. The accuracy
		// experiment (TestPredictionAccuracy) checks the 20%.
		if run.Seconds <= 0 || run.PredictedSeconds <= 0 || run.Seconds > 10*run.PredictedSeconds+1 {
			t.Errorf("%s: measured %.3f s, predicted %.3f s", name, run.Seconds, run.PredictedSeconds)
		}
	}
	// The report predicts stargz-snapshotter, which fetches on demand in
	// 50,000-byte blocks; the built-in client fetches exactly the members.
	if m.LazyStart.Bytes > r.LazyStartBytes || m.FullPull.Bytes != r.FullPullBytes {
		t.Errorf("the measurement's predictions differ from the report's figures: lazy %d > %d or full %d != %d",
			m.LazyStart.Bytes, r.LazyStartBytes, m.FullPull.Bytes, r.FullPullBytes)
	}
	if m.RequestSeconds <= 0 {
		t.Errorf("registry time per request %v", m.RequestSeconds)
	}
	// The shaped network is estimated beside the named ones.
	if len(r.Estimates) != 4 || r.Estimates[3].Network != "shaped" {
		t.Errorf("estimates %+v", r.Estimates)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestMeasureUnshaped measures straight against the registry, on a cold
// node: the gzip base is pulled whole, the eStargz layers above it mounted
// lazily (footer, TOC, prefetch, on-demand chunks).
func TestMeasureUnshaped(t *testing.T) {
	reg := registrytest.StartDistribution(t)
	base, lib, app := fixtureLayers(t)
	img := testImage(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, base, lib, app)
	ref := reg.Ref("fixture/cold:1")
	pushTo(t, ref, img)
	dir := t.TempDir()
	r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithMeasurement(ref), WithTempDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	m := r.Measured
	if m.Network != "unshaped" || m.Client != BuiltInClient || m.LazyStart.Requests != m.LazyStart.PredictedRequests || m.LazyStart.Bytes != m.LazyStart.PredictedBytes || m.FullPull.Bytes != m.FullPull.PredictedBytes {
		t.Fatalf("measurement %+v", m)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
