package report

import (
	"math"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestSimulate(t *testing.T) {
	n := Network{BytesPerSecond: 1000, RTT: 10 * time.Millisecond}
	for _, tc := range []struct {
		name  string
		build func(p *plan)
		want  []float64 // end of each task
	}{
		{"one request", func(p *plan) { p.request(1000, 0, phaseDownload) }, []float64{1.01}},
		{"two requests share the bandwidth", func(p *plan) {
			p.request(1000, 0, phaseDownload)
			p.request(3000, 0, phaseDownload)
			// 500 B/s each until the first is done at 0.01+2, then the
			// second alone: 2000 bytes left, 2 s.
		}, []float64{2.01, 4.01}},
		{"a chain waits", func(p *plan) {
			a := p.request(1000, 0, phaseDownload)
			p.request(1000, 0, phaseDownload, a)
		}, []float64{1.01, 2.02}},
		{"a pool of one serializes", func(p *plan) {
			pool := p.pool(1)
			p.add(task{pool: pool, request: true, bytes: 1000})
			p.add(task{pool: pool, request: true, bytes: 3000})
		}, []float64{1.01, 4.02}},
		{"a pool of two takes the third when one ends", func(p *plan) {
			pool := p.pool(2)
			p.add(task{pool: pool, request: true, bytes: 1000})
			p.add(task{pool: pool, request: true, bytes: 3000})
			p.add(task{pool: pool, request: true, bytes: 1000})
			// At 2.01 the first ends (both ran at 500 B/s) and the third
			// starts: during its RTT the second runs alone (10 bytes, 1990
			// left); then they share until the third's 1000 bytes are in
			// at 4.02, and the second's last 990 bytes take 0.99 s.
		}, []float64{2.01, 5.01, 4.02}},
		{"CPU overlaps the transfer", func(p *plan) {
			p.request(1000, 5, phaseDownload)
			p.request(1000, 0.5, phaseDownload)
			// Both transfer at 500 B/s until 2.01: the second's CPU (ends
			// 0.51) is hidden, the first's (ends 5.01) is not.
		}, []float64{5.01, 2.01}},
		{"work runs after its dependencies", func(p *plan) {
			a := p.request(1000, 0, phaseDownload)
			b := p.request(2000, 0, phaseDownload)
			p.work(1.5, phaseUnpack, a, b)
		}, []float64{2.01, 3.01, 4.51}},
		{"a wait ends on the first of its alternatives", func(p *plan) {
			a := p.request(1000, 0, phaseDownload)
			slow := p.request(5000, 0, phaseDownload, a)
			timeout := p.timer(2, phaseDownload, a)
			p.waitAny(phaseDownload, []int{a}, []int{slow, timeout})
			// a ends at 1.01; the timeout at 3.01, before slow (6.02).
		}, []float64{1.01, 6.02, 3.01, 3.01}},
		{"a wait needs its dependencies too", func(p *plan) {
			a := p.request(1000, 0, phaseDownload)
			fast := p.work(0.5, phaseDownload)
			p.waitAny(phaseDownload, []int{a}, []int{fast})
		}, []float64{1.01, 0.5, 1.01}},
		{"a join of nothing costs nothing", func(p *plan) {
			a := p.request(0, 0, phaseDownload)
			p.work(0, phaseDownload, a)
		}, []float64{0.01, 0.01}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p plan
			tc.build(&p)
			tm := simulate(&p, n)
			for i, w := range tc.want {
				if !near(tm.end[i], w) {
					t.Errorf("task %d ends at %.9f, want %.9f", i, tm.end[i], w)
				}
			}
		})
	}
}

// TestSimulateTimerNotCounted: a timeout nothing waits for past its end
// does not make the start longer.
func TestSimulateTimerNotCounted(t *testing.T) {
	var p plan
	a := p.request(1000, 0, phaseDownload)
	p.timer(10, phaseDownload, a)
	if tm := simulate(&p, Network{BytesPerSecond: 1000}); !near(tm.total(), 1) {
		t.Fatalf("total %v, want 1 (the request alone)", tm.total())
	}
}

func TestSimulateUnlimitedAndOverhead(t *testing.T) {
	p := plan{overhead: 0.005}
	a := p.request(1e9, 0, phaseDownload)
	p.request(1e9, 0.001, phaseDownload, a)
	tm := simulate(&p, Network{RTT: 10 * time.Millisecond})
	if !near(tm.end[0], 0.015) || !near(tm.end[1], 0.031) {
		t.Fatalf("ends %v, want an RTT plus overhead each, no transfer time, and the CPU", tm.end)
	}
	if !near(tm.total(), 0.031) {
		t.Fatalf("total %v", tm.total())
	}
}

// TestSimulateWorkConserving: with no round trip and no CPU, a plan that
// always has a transfer running takes its bytes over the rate, however it
// is shaped.
func TestSimulateWorkConserving(t *testing.T) {
	var p plan
	pool := p.pool(3)
	root := p.request(100, 0, phaseDownload)
	var total float64 = 100
	for i := range 7 {
		b := float64(1000 * (i + 1))
		p.add(task{deps: []int{root}, pool: pool, request: true, bytes: b})
		total += b
	}
	tm := simulate(&p, Network{BytesPerSecond: 2000})
	if !near(tm.total(), total/2000) {
		t.Fatalf("total %.9f, want %.9f", tm.total(), total/2000)
	}
}
