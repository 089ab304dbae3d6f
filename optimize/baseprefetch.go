package optimize

import (
	"context"
	"io"
	"log/slog"
	"path"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
)

// baseShell is the program whose start names the base's start-up files:
// every image has its loader and C library, and nearly every base has it.
const baseShell = "/bin/sh"

// baseStartupFiles returns what every dynamically linked program on the
// base reads first, in the order the loader reads it: the files the static
// profile of baseShell names (the dynamic loader, its cache, the C
// library), less baseShell itself and the links to it. It looks at the
// base layers alone, the first n layers of idxs, so the answer, and the
// converted base, are the same for every image on that base. It returns
// nil when the base has no baseShell or its start cannot be followed: the
// base is then converted without a prefetch section, as before.
func baseStartupFiles(ctx context.Context, idxs []*layers.Index, n int, tars *layers.Spool, log *slog.Logger) []string {
	if n == 0 {
		return nil
	}
	ov, err := layers.Merge(idxs[:n]...)
	if err != nil {
		return nil
	}
	final, links, ok := ov.Resolve(baseShell)
	if !ok {
		return nil
	}
	self := map[string]bool{"/" + ov.Entry(final).Path: true}
	for _, r := range links {
		self["/"+ov.Entry(r).Path] = true
	}
	fsys := profile.ImageFS(ov, func(i int) (io.ReaderAt, error) { return tars.Tar(i) })
	p, err := profile.Static(ctx, fsys, profile.Config{Entrypoint: []string{baseShell}})
	if err != nil {
		if log != nil {
			log.Debug("base start-up files: profiling the base's shell failed", "err", err)
		}
		return nil
	}
	var files []string
	for _, f := range p.Files {
		if fr, _, ok := ov.Resolve(f); self[path.Clean(f)] || ok && self["/"+ov.Entry(fr).Path] {
			continue
		}
		files = append(files, f)
	}
	return files
}

// prioritizeBase puts paths (absolute, resolved through the base's own
// symlinks) first in the leading converted layers, the first n. Only
// layers converted as they are (RoleConvert) take them.
func (p *plan) prioritizeBase(paths []string, n int, sparseLimit int64) {
	if n == 0 || len(paths) == 0 {
		return
	}
	ov, err := layers.Merge(p.ov.Layers()[:n]...)
	if err != nil {
		return
	}
	seen := map[layers.Ref]bool{}
	for _, want := range paths {
		final, links, ok := ov.Resolve(want)
		if !ok {
			continue
		}
		for _, r := range append(links, final) {
			if seen[r] {
				continue
			}
			seen[r] = true
			lp := p.layers[r.Layer]
			e := ov.Entry(r)
			if lp.role != RoleConvert || sparseLimit > 0 && e.Size > sparseLimit && profile.ReadInPart(e.Path) {
				continue
			}
			lp.prioritized = append(lp.prioritized, e.Path)
		}
	}
}

// convertedPrefix is the number of leading layers that are converted as
// they are: the base, under BaseConvert.
func convertedPrefix(roles []Role) int {
	n := 0
	for n < len(roles) && roles[n] == RoleConvert {
		n++
	}
	return n
}
