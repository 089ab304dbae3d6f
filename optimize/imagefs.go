package optimize

import (
	"context"
	"io"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// newSpool spools the layers ls into tmp: each is decompressed at most
// once more after indexing.
func newSpool(ctx context.Context, ls []v1.Layer, tmp *tempDir) *layers.Spool {
	return layers.NewSpool(ctx, len(ls), tmp.dir, func(i int) (io.ReadCloser, error) { return ls[i].Compressed() })
}

// newImageFS is the merged filesystem of an image over its spooled layers.
func newImageFS(ov *layers.Overlay, tars *layers.Spool) profile.FS {
	return profile.ImageFS(ov, func(i int) (io.ReaderAt, error) { return tars.Tar(i) })
}
