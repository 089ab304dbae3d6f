package report

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/layers"
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
	// Before, only the gzip base is pulled whole (containerd 2.4 mounts the
	// lazy layers above it all the same); converting a 7 KB base adds its
	// footer and TOC requests: a little more is fetched.
	if r := ratios["lazyStartBytes/"]; r.Ratio <= 1 || r.Before != float64(c.Before.LazyStartBytes) || r.After != float64(c.After.LazyStartBytes) {
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
