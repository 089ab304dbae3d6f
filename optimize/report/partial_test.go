package report

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// libVersion is a library layer of 20 files; v2 changes two and adds one.
func libVersion(v2 bool) testimage.Layer {
	l := testimage.Layer{testimage.Dir("lib", 0o755), testimage.Symlink("lib/current", "mod00.py"), testimage.File("lib/empty", "")}
	for i := range 20 {
		seed := uint64(100 + i)
		if v2 && (i == 3 || i == 11) {
			seed += 1000
		}
		l = append(l, testimage.File(fmt.Sprintf("lib/mod%02d.py", i), noise(seed, 20_000+i*1000)))
	}
	if v2 {
		l = append(l, testimage.File("lib/added.py", noise(7, 5_000)))
	}
	return l
}

var appLayer = testimage.Layer{testimage.Dir("app", 0o755), testimage.File("app/main", noise(5, 20_000), testimage.Mode(0o755))}

// partialImages are v1 and v2 of an image of a gzip base, a library layer
// and an app layer, both in format f (gzip when f is not lazy).
func partialImages(t *testing.T, f layers.Format, libFormat layers.Format) (v1img, v2img v1.Image) {
	t.Helper()
	base, _, _ := fixtureLayers(t)
	app := lazyLayer(t, appLayer.Tar(), layers.EncodeOptions{Format: f})
	img := func(v2 bool, lf layers.Format) v1.Image {
		lib := lazyLayer(t, libVersion(v2).Tar(), layers.EncodeOptions{Format: lf})
		return testImage(t, fixtureImageConfig, base, lib, app)
	}
	return img(false, libFormat), img(true, f)
}

func partialCost(t *testing.T, r *Report) ScenarioCost {
	t.Helper()
	for _, s := range r.Scenarios {
		if s.Scenario == PartialPull {
			return s
		}
	}
	t.Fatalf("no partial pull in the report: %+v", r.Scenarios)
	return ScenarioCost{}
}

// TestPartialPullUpdate: with the previous version held, a partial pull
// fetches the ping, the manifest, the config, the changed layer's TOC and
// its changed files in one request; the unchanged layers cost nothing.
func TestPartialPullUpdate(t *testing.T) {
	for _, f := range []layers.Format{layers.FormatZstdChunked, layers.FormatEStargz} {
		t.Run(f.String(), func(t *testing.T) {
			v1img, v2img := partialImages(t, f, f)
			r, err := Estimate(context.Background(), v2img, WithPrevious(v1img), WithProfile(fixtureProfile()),
				WithRates(zeroCPU), WithNetworks(latencyOnly))
			if err != nil {
				t.Fatal(err)
			}
			prevDigest, _ := v1img.Digest()
			if r.Previous != prevDigest.String() || len(r.Held) != 2 {
				t.Errorf("previous %q, held %q: want %s and the base and app layers", r.Previous, r.Held, prevDigest)
			}
			tocReads := 1
			if f == layers.FormatEStargz {
				tocReads = 2
			}
			s := partialCost(t, r)
			if want := 3 + tocReads + 1; s.Requests != want {
				t.Errorf("%d requests, want %d (ping, manifest, config, TOC, files)", s.Requests, want)
			}
			lib := r.Layers[1]
			if lib.PartialPullFiles != 3 || lib.PartialPullCopied != 18 {
				t.Errorf("library layer: %d files fetched, %d copied; want 3 and 18", lib.PartialPullFiles, lib.PartialPullCopied)
			}
			if s.FileBytes <= 5_000 || s.FileBytes > lib.Size/4 {
				t.Errorf("files fetched: %d bytes of a %d-byte layer", s.FileBytes, lib.Size)
			}
			mf, _ := v2img.RawManifest()
			cfg, _ := v2img.RawConfigFile()
			if want := PingBytes + int64(len(mf)) + int64(len(cfg)) + lib.PartialPullBytes; s.Bytes != want || s.MetadataBytes+s.FileBytes != want {
				t.Errorf("%d bytes (%d metadata, %d files), want %d", s.Bytes, s.MetadataBytes, s.FileBytes, want)
			}
			if r.PartialPullBytes == nil || *r.PartialPullBytes != s.Bytes || *r.PartialPullRequests != s.Requests {
				t.Errorf("partialPullBytes %v, partialPullRequests %v", r.PartialPullBytes, r.PartialPullRequests)
			}
			// Every request after the one before: one RTT each.
			got := *r.Estimates[0].PartialPullSeconds
			if want := float64(s.Requests) * latencyOnly.RTT.Seconds(); math.Abs(got-want) > 1e-9 {
				t.Errorf("%.4f s on %s, want %.4f", got, latencyOnly.Name, want)
			}
			// Each entry the pull writes costs PartialEntry, or UnpackEntry
			// where that is not set.
			for _, tc := range []struct{ unpack, partial, per float64 }{{0.01, 0, 0.01}, {0.01, 0.03, 0.03}} {
				rates := zeroCPU
				rates.UnpackEntry, rates.PartialEntry = tc.unpack, tc.partial
				re, err := Estimate(context.Background(), v2img, WithPrevious(v1img), WithProfile(fixtureProfile()),
					WithRates(rates), WithNetworks(latencyOnly))
				if err != nil {
					t.Fatal(err)
				}
				extra := *re.Estimates[0].PartialPullSeconds - got
				if want := float64(lib.Entries) * tc.per; math.Abs(extra-want) > 1e-9 {
					t.Errorf("unpack entry %g, partial entry %g: %.4f s more, want %d entries x %g = %.4f", tc.unpack, tc.partial, extra, lib.Entries, tc.per, want)
				}
			}
			// Rendered with the default rates (text shows them).
			if r, err = Estimate(context.Background(), v2img, WithPrevious(v1img), WithProfile(fixtureProfile()), WithNetworks(latencyOnly)); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := r.Write(&out, FormatText); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"partial pull (podman)", "previous version " + shortDigest(r.Previous), "files it holds in no layer"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("the text report lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// TestPartialPullCold: without a previous version, every file of the lazy
// layers is fetched, the gzip base downloaded whole, all layers at once.
func TestPartialPullCold(t *testing.T) {
	_, v2img := partialImages(t, layers.FormatZstdChunked, layers.FormatZstdChunked)
	r, err := Estimate(context.Background(), v2img, WithProfile(fixtureProfile()), WithRates(zeroCPU), WithNetworks(latencyOnly))
	if err != nil {
		t.Fatal(err)
	}
	s := partialCost(t, r)
	if s.Requests != 3+1+2+2 {
		t.Errorf("%d requests, want 8 (ping, manifest, config; the base; TOC and files of two layers)", s.Requests)
	}
	if r.Layers[0].PartialPullBytes != r.Layers[0].Size || s.LayerBytes != r.Layers[0].Size {
		t.Errorf("the gzip base: %d bytes, want its size %d", r.Layers[0].PartialPullBytes, r.Layers[0].Size)
	}
	if lib := r.Layers[1]; lib.PartialPullFiles != 21 || lib.PartialPullCopied != 0 {
		t.Errorf("library layer: %d files fetched, %d copied; want 21 and 0", lib.PartialPullFiles, lib.PartialPullCopied)
	}
	got := *r.Estimates[0].PartialPullSeconds
	if want := 5 * latencyOnly.RTT.Seconds(); math.Abs(got-want) > 1e-9 {
		t.Errorf("%.4f s, want %.4f: ping, manifest, config, then TOC and files", got, want)
	}
}

// TestPartialPullPreviousWhole: the files of layers the node pulled whole
// (gzip) are not searched: every file of the new zstd:chunked layer is
// fetched, although the previous version had most of them.
func TestPartialPullPreviousWhole(t *testing.T) {
	v1img, v2img := partialImages(t, layers.FormatZstdChunked, layers.FormatGzip)
	r, err := Estimate(context.Background(), v2img, WithPrevious(v1img), WithProfile(fixtureProfile()), WithRates(zeroCPU), WithNetworks(latencyOnly))
	if err != nil {
		t.Fatal(err)
	}
	if lib := r.Layers[1]; lib.PartialPullFiles != 21 || lib.PartialPullCopied != 0 {
		t.Errorf("library layer: %d files fetched, %d copied; want 21 and 0", lib.PartialPullFiles, lib.PartialPullCopied)
	}
}

// TestPartialPullAbsent: an image with no layer containers/storage pulls
// partially, without a previous version, shows no partial pull.
func TestPartialPullAbsent(t *testing.T) {
	base, _, _ := fixtureLayers(t)
	img := testImage(t, fixtureImageConfig, base, gzipLayer(t, appLayer))
	r, err := Estimate(context.Background(), img, WithProfile(fixtureProfile()), WithRates(zeroCPU), WithNetworks(latencyOnly))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Scenarios {
		if s.Scenario == PartialPull {
			t.Errorf("partial pull shown: %+v", s)
		}
	}
	var out bytes.Buffer
	if err := r.Write(&out, FormatJSON); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "partialPull") || r.Estimates[0].PartialPullSeconds != nil {
		t.Errorf("partial pull figures in the JSON:\n%s", out.String())
	}
	if _, err := Estimate(context.Background(), img, WithPrevious(nil)); err == nil {
		t.Error("WithPrevious(nil) accepted")
	}
}
