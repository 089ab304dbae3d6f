package main

import (
	"os"
	"sync"

	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// bars shows one progress bar per layer on a terminal.
type bars struct {
	p    *mpb.Progress
	mu   sync.Mutex
	bars map[string]*mpb.Bar
}

// progress returns bars when stderr is a terminal and --quiet is not set.
func (g *globals) progress() *bars {
	if g.quiet || g.stderr != os.Stderr {
		return nil
	}
	fi, err := os.Stderr.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return &bars{p: mpb.New(mpb.WithOutput(os.Stderr), mpb.WithWidth(40)), bars: map[string]*mpb.Bar{}}
}

func (b *bars) update(p optimize.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bar, ok := b.bars[p.Layer]
	if !ok {
		name := p.Layer
		if len(name) > 19 {
			name = name[:19]
		}
		bar = b.p.AddBar(p.Total,
			mpb.PrependDecorators(decor.Name(name+" ")),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")))
		b.bars[p.Layer] = bar
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
