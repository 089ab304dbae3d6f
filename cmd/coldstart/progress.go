package main

import (
	"cmp"
	"fmt"
	"sync"

	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// bars shows, on a terminal, one progress bar per layer and phase: "pull
// layer N" and "push layer N" count compressed bytes, "convert layer N"
// uncompressed tar bytes, each bar says which.
type bars struct {
	p    *mpb.Progress
	mu   sync.Mutex
	bars map[barKey]*mpb.Bar
}

type barKey struct {
	phase    optimize.Phase
	platform string
	layer    int
}

// progress returns bars when standard error is a terminal and --quiet is
// not set, else nil: progress never goes to a file or a pipe.
func (g *globals) progress() *bars {
	if g.quiet {
		return nil
	}
	tty, width := g.term(g.stderr)
	if !tty {
		return nil
	}
	// Auto refresh and the width: the terminal check is ours (g.term),
	// not mpb's.
	return &bars{p: mpb.New(mpb.WithOutput(g.stderr), mpb.WithWidth(cmp.Or(width, defaultWidth)), mpb.WithAutoRefresh()),
		bars: map[barKey]*mpb.Bar{}}
}

// barName is the bar's label: "pull    layer 3", with the platform for an
// index's images.
func barName(k barKey) string {
	name := fmt.Sprintf("%-7s layer %d", k.phase, k.layer)
	if k.platform != "" {
		name = fmt.Sprintf("%-7s %s layer %d", k.phase, k.platform, k.layer)
	}
	return name + " "
}

// unit says what a phase's bytes are.
func unit(p optimize.Phase) string {
	if p == optimize.PhaseConvert {
		return " tar bytes"
	}
	return " compressed"
}

// priority orders the bars by phase, then layer (mpb puts the lowest
// first), whatever order the events come in.
func priority(k barKey) int {
	phase := map[optimize.Phase]int{optimize.PhasePull: 0, optimize.PhaseConvert: 1, optimize.PhasePush: 2}[k.phase]
	return phase<<20 + k.layer
}

func (b *bars) update(p optimize.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := barKey{p.Phase, p.Platform, p.Layer}
	bar, ok := b.bars[k]
	if !ok {
		bar = b.p.AddBar(p.Total, mpb.BarPriority(priority(k)), mpb.BarWidth(30),
			mpb.PrependDecorators(decor.Name(barName(k))),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f"), decor.Name(unit(p.Phase))))
		b.bars[k] = bar
	}
	bar.SetCurrent(p.Done)
}

func (b *bars) wait() {
	b.mu.Lock()
	for _, bar := range b.bars {
		if !bar.Completed() {
			bar.Abort(false)
		}
	}
	b.mu.Unlock()
	b.p.Wait()
}
