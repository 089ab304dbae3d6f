package report

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// findProfile returns the start-up files: the profiler's over img's merged
// filesystem (profile.StaticProfiler by default), its contents read from the
// layers' blobs kept in tmp.
func (o *options) findProfile(ctx context.Context, img v1.Image, ov *layers.Overlay, ls []*layerInfo, tmp string) (*profile.Profile, error) {
	if o.profile != nil {
		return o.profile, nil
	}
	spool := layers.NewSpool(ctx, len(ls), tmp, func(i int) (io.ReadCloser, error) {
		if ls[i].blob == "" {
			return nil, fmt.Errorf("layer %d %s has no content", i, ls[i].desc.Digest)
		}
		return os.Open(ls[i].blob)
	})
	defer spool.Close()
	pr := o.profiler
	if pr == nil {
		pr = profile.StaticProfiler(profile.WithLogger(o.logger))
	}
	p, err := pr.Profile(ctx, img, profile.ImageFS(ov, func(i int) (io.ReaderAt, error) { return spool.Tar(i) }))
	if err != nil {
		return nil, fmt.Errorf("profiling start-up files: %w", err)
	}
	if err := spool.Err(); err != nil {
		return nil, fmt.Errorf("profiling start-up files: %w", err)
	}
	return p, nil
}
