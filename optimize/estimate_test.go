package optimize_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/report"
)

// TestEstimateFromHand: the before/after estimate Image makes from what it
// has in hand (input indexes, the TOCs of the blobs it wrote or the tails
// the cache keeps) is the estimate report.Compare makes by reading both
// images again: the same bytes and requests, the same seconds (within 1%:
// the unpack estimate counts a TOC's entries instead of the tar's), for
// every format, cold and from the cache.
func TestEstimateFromHand(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	src := buildImage(t, testimage.Random(r, testimage.RandomOptions{Layers: 3, MaxFileSize: 1 << 14}))
	prio := []string{"/d1", "/f1", "/f2", "/f3"}
	for _, f := range formats {
		t.Run(f.String(), func(t *testing.T) {
			c := newDirCache(t)
			for _, run := range []string{"cold", "cached layers"} {
				out, res := optimizeImage(t, src, optimize.WithFormat(f), optimize.WithPrioritizedFiles(prio),
					optimize.WithEstimate(true), optimize.WithCache(layersOnly{c}))
				got := res.Images[0].Estimate
				if got == nil {
					t.Fatalf("%s: no estimate", run)
				}
				prof := &profile.Profile{Files: prio}
				want, err := report.Compare(context.Background(), src, out, report.WithProfile(prof))
				if err != nil {
					t.Fatal(err)
				}
				for i, side := range [][2]*report.Report{{want.Before, got.Before}, {want.After, got.After}} {
					w, g := side[0], side[1]
					if w.FullPullBytes != g.FullPullBytes || w.LazyStartBytes != g.LazyStartBytes || w.LowerBoundBytes != g.LowerBoundBytes ||
						w.FullPullRequests != g.FullPullRequests || w.LazyStartRequests != g.LazyStartRequests {
						t.Errorf("%s, side %d: bytes/requests %d %d %d / %d %d, read back %d %d %d / %d %d", run, i,
							g.FullPullBytes, g.LazyStartBytes, g.LowerBoundBytes, g.FullPullRequests, g.LazyStartRequests,
							w.FullPullBytes, w.LazyStartBytes, w.LowerBoundBytes, w.FullPullRequests, w.LazyStartRequests)
					}
					for k := range w.Estimates {
						we, ge := w.Estimates[k], g.Estimates[k]
						for _, p := range [][2]float64{{we.FullPullSeconds, ge.FullPullSeconds}, {we.LazyStartSeconds, ge.LazyStartSeconds}} {
							if math.Abs(p[0]-p[1]) > 0.01*p[0]+1e-4 {
								t.Errorf("%s, side %d, %s: %.4f s, read back %.4f s", run, i, we.Network, p[1], p[0])
							}
						}
					}
				}
			}
		})
	}
}

// TestEstimateRates: WithRates is what the before/after estimate is made
// with: a node whose containers take 2 s longer to start starts 2 s later
// in it, before and after; rates that cannot be used are refused, by name.
func TestEstimateRates(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	src := buildImage(t, testimage.Random(r, testimage.RandomOptions{Layers: 2, MaxFileSize: 1 << 12}))
	prio := []string{"/f1", "/f2"}
	slow := report.DefaultRates
	slow.ContainerStart += 2
	lazy := func(rates report.Rates) (before, after float64) {
		_, res := optimizeImage(t, src, optimize.WithPrioritizedFiles(prio), optimize.WithEstimate(true), optimize.WithRates(rates))
		e := res.Images[0].Estimate
		if e == nil {
			t.Fatal("no estimate")
		}
		if e.After.Rates.ContainerStart != rates.ContainerStart {
			t.Errorf("the estimate's rates have ContainerStart %.3f s, want %.3f s", e.After.Rates.ContainerStart, rates.ContainerStart)
		}
		return e.Before.Estimates[0].LazyStartSeconds, e.After.Estimates[0].LazyStartSeconds
	}
	b0, a0 := lazy(report.DefaultRates)
	b1, a1 := lazy(slow)
	if math.Abs(b1-b0-2) > 0.002 || math.Abs(a1-a0-2) > 0.002 {
		t.Errorf("lazy start before %.3f -> %.3f s, after %.3f -> %.3f s: want both 2 s longer", b0, b1, a0, a1)
	}
	bad := report.DefaultRates
	bad.PartRead = 1.5
	if _, err := optimize.Image(context.Background(), src, optimize.WithRates(bad)); err == nil || !strings.Contains(err.Error(), "partReadFraction") {
		t.Errorf("rates with a fraction of 1.5: %v, want an error naming partReadFraction", err)
	}
}
