package report

import (
	"context"
	"testing"
)

func TestCalibrate(t *testing.T) {
	// Small sizes: this checks the procedure, not the machine.
	defer func(c int64, bf, bb, sf int) {
		calibrationCorpusBytes, calibrationBigFiles, calibrationBigFileBytes, calibrationSmallFiles = c, bf, bb, sf
	}(calibrationCorpusBytes, calibrationBigFiles, calibrationBigFileBytes, calibrationSmallFiles)
	calibrationCorpusBytes, calibrationBigFiles, calibrationBigFileBytes, calibrationSmallFiles = 2<<20, 2, 1<<20, 200
	dir := t.TempDir()
	r, err := Calibrate(context.Background(), WithTempDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Calibrated || r.Validate() != nil || r.Request != DefaultRates.Request {
		t.Fatalf("rates %+v", r)
	}
	// What it does not measure stays as given: the node-side costs.
	node := func(x Rates) Rates {
		x.GzipDecompress, x.ZstdDecompress, x.Verify, x.Unpack, x.UnpackEntry, x.TOCEntry, x.Calibrated = 0, 0, 0, 0, 0, 0, false
		return x
	}
	if node(r) != node(DefaultRates) {
		t.Errorf("node-side rates changed by calibration: %+v, want %+v", node(r), node(DefaultRates))
	}
	// Decompressing cannot be slower than a megabyte a second, nor faster
	// than a terabyte.
	for _, v := range []float64{r.GzipDecompress, r.ZstdDecompress, r.Verify, r.Unpack} {
		if v < 1e6 || v > 1e12 {
			t.Fatalf("implausible rate %g in %+v", v, r)
		}
	}
	if _, err := Estimate(context.Background(), testImage(t, fixtureImageConfig, fixtureLayersList(t)...), WithRates(r), WithProfile(fixtureProfile())); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Calibrate(ctx); err == nil {
		t.Fatal("a cancelled calibration succeeded")
	}
}
