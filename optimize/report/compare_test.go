package report

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestCompare(t *testing.T) {
	base, lib, app := fixtureLayers(t)
	before := testImage(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, base, lib, app)
	lazyBase := lazyLayer(t, tarOf(t, base), layers.EncodeOptions{Prioritized: []string{"usr/bin/sh"}})
	after := testImage(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, lazyBase, lib, app)
	c, err := Compare(context.Background(), before, after, WithProfile(fixtureProfile()))
	if err != nil {
		t.Fatal(err)
	}
	if c.After.Profile.Paths != c.Before.Profile.Paths || c.After.Profile.Files != 4 {
		t.Fatalf("profiles differ: %+v vs %+v", c.Before.Profile, c.After.Profile)
	}
	ratios := map[string]Ratio{}
	for _, r := range c.Ratios {
		ratios[r.Metric+"/"+r.Network] = r
	}
	// Before, the gzip base is pulled whole, and with it, by containerd's
	// unpacker, the lazy layers above it, which the snapshotter then mounts
	// all the same; with the base converted nothing is fetched whole.
	if r := ratios["lazyStartBytes/"]; r.Ratio >= 1 || r.Before != float64(c.Before.LazyStartBytes) || r.After != float64(c.After.LazyStartBytes) {
		t.Errorf("lazy start bytes: %+v", r)
	}
	// For an image this small the serial footer and TOC round trips of
	// three lazy layers cost more than the bytes saved: the ratio says so.
	r := ratios["lazyStartSeconds/edge"]
	if r.Before != c.Before.Estimates[2].LazyStartSeconds || r.After != c.After.Estimates[2].LazyStartSeconds || !near(r.Ratio, roundSeconds(r.After/r.Before)) {
		t.Errorf("lazy start on edge: %+v", r)
	}
	if len(c.Ratios) != 3+2*3 {
		t.Errorf("%d ratios", len(c.Ratios))
	}
	for _, f := range Formats {
		var b bytes.Buffer
		if err := c.Write(&b, f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		switch f {
		case FormatJSON:
			var doc struct {
				Version int
				Before  map[string]any
				After   map[string]any
				Ratios  []Ratio
			}
			if err := json.Unmarshal(b.Bytes(), &doc); err != nil || doc.Version != Version || doc.Before["lazyStartBytes"] == nil {
				t.Errorf("json: %v %+v", err, doc)
			}
		case FormatText:
			for _, want := range []string{"AFTER/BEFORE", "lazy start", "before", "after"} {
				if !strings.Contains(b.String(), want) {
					t.Errorf("text lacks %q", want)
				}
			}
		case FormatSVG:
			if n := strings.Count(b.String(), "before: "); n != 6 {
				t.Errorf("svg: %d bars of before, want 2 per network", n)
			}
		}
	}
	if _, err := Compare(context.Background(), before, after, WithMeasurement("localhost/x:y")); err == nil {
		t.Error("Compare measured")
	}
}

// TestCompareSaysWhyNotFaster: where the optimized image is not faster,
// the comparison says why, in every text format; where it is, it says
// nothing.
func TestCompareSaysWhyNotFaster(t *testing.T) {
	// Small: three lazy layers' serial TOC round trips cost more than the
	// few bytes saved (see TestCompare).
	base, lib, app := fixtureLayers(t)
	before := testImage(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, base, lib, app)
	lazyBase := lazyLayer(t, tarOf(t, base), layers.EncodeOptions{Prioritized: []string{"usr/bin/sh"}})
	after := testImage(t, v1.Config{Entrypoint: []string{"/bin/sh"}}, lazyBase, lib, app)
	c, err := Compare(context.Background(), before, after, WithProfile(fixtureProfile()), WithNetworks(Edge))
	if err != nil {
		t.Fatal(err)
	}
	if lazySeconds(t, c.After) < lazySeconds(t, c.Before) {
		t.Fatalf("fixture: the small image got faster")
	}
	notes := strings.Join(c.Notes, "\n")
	if !strings.Contains(notes, "edge, lazy start: not faster") || !strings.Contains(notes, "mounting its 3 lazy layers takes") || !strings.Contains(notes, "the image is only") {
		t.Fatalf("notes %q do not say why the lazy start on edge is not faster", c.Notes)
	}
	for _, f := range []string{FormatText, FormatMarkdown, FormatHTML} {
		var b bytes.Buffer
		if err := c.Write(&b, f); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "not faster after optimizing") {
			t.Errorf("%s does not carry the note", f)
		}
	}

	// The other way round: a kept gzip base under lazy layers. containerd's
	// unpacker downloads the lazy layers above it whole too, and the note
	// says so rather than blaming the round trips.
	c, err = Compare(context.Background(), after, before, WithProfile(fixtureProfile()), WithNetworks(bandwidthOnly))
	if err != nil {
		t.Fatal(err)
	}
	notes = strings.Join(c.Notes, "\n")
	if !strings.Contains(notes, "bandwidth, lazy start: not faster") || !strings.Contains(notes, "layer 0 is still downloaded whole, and containerd's unpacker downloads the 2 lazy layers above it whole as well") {
		t.Fatalf("notes %q do not say that the layers above the gzip base are downloaded whole", c.Notes)
	}

	// Large: 16 MiB the container never reads, behind a small start-up
	// file: optimizing pays on every network, and nothing needs
	// explaining.
	big := gzipLayer(t, testimage.Layer{
		testimage.Dir("app", 0o755),
		testimage.File("app/main", noise(7, 20_000), testimage.Mode(0o755)),
		testimage.File("app/assets.bin", noise(8, 16<<20)),
	})
	lazyBig := lazyLayer(t, tarOf(t, big), layers.EncodeOptions{Prioritized: []string{"app/main"}})
	prof := WithProfile(&profile.Profile{Source: profile.SourceFile, Files: []string{"/app/main"}})
	c, err = Compare(context.Background(), testImage(t, v1.Config{Entrypoint: []string{"/app/main"}}, big),
		testImage(t, v1.Config{Entrypoint: []string{"/app/main"}}, lazyBig), prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Notes) != 0 {
		t.Errorf("an image that got faster has notes: %q", c.Notes)
	}
}

// lazySeconds is r's lazy start estimate on its first network.
func lazySeconds(t *testing.T, r *Report) float64 {
	t.Helper()
	if len(r.Estimates) == 0 {
		t.Fatal("no estimate")
	}
	return r.Estimates[0].LazyStartSeconds
}
