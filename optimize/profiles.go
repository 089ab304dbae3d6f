package optimize

import (
	"context"
	"fmt"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ProfileImage runs profiler (profile.StaticProfiler() when nil) over img's
// merged filesystem and returns its profile, with Image set to img's digest.
func ProfileImage(ctx context.Context, img v1.Image, profiler profile.Profiler, opts ...Option) (*profile.Profile, error) {
	o, err := newPipeline(opts)
	if err != nil {
		return nil, err
	}
	if profiler == nil {
		profiler = profile.StaticProfiler()
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	idxs, err := o.indexImage(ctx, img, "")
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d, err)
	}
	idxs, _ = resolveSymlinkParents(idxs)
	ov, err := layers.Merge(idxs...)
	if err != nil {
		return nil, err
	}
	tmp, err := newTempDir(o.tempDir)
	if err != nil {
		return nil, err
	}
	defer tmp.remove()
	tars := newSpool(ctx, ls, tmp)
	defer tars.Close()
	p, err := profiler.Profile(ctx, img, newImageFS(ov, tars))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", d, err)
	}
	p.Image = d.String()
	return p, nil
}
