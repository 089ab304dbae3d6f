package optimize

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/coldstart-dev/coldstart/internal/ctxio"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// layerTars decompresses layers into temporary tar files on first use, so
// that files can be read at their offsets, and so that each layer is
// decompressed at most once more after indexing.
type layerTars struct {
	ctx    context.Context
	ls     []v1.Layer
	tmp    *tempDir
	mu     sync.Mutex
	once   []sync.Once
	files  []*os.File
	errs   []error
	closed bool
}

func newLayerTars(ctx context.Context, ls []v1.Layer, tmp *tempDir) *layerTars {
	return &layerTars{ctx: ctx, ls: ls, tmp: tmp, once: make([]sync.Once, len(ls)), files: make([]*os.File, len(ls)), errs: make([]error, len(ls))}
}

// tar returns layer i's uncompressed tar.
func (t *layerTars) tar(i int) (*os.File, error) {
	t.once[i].Do(func() {
		f, err := t.extract(i)
		t.mu.Lock()
		t.files[i], t.errs[i] = f, err
		t.mu.Unlock()
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.files[i], t.errs[i]
}

// opened returns layer i's tar if it was already extracted.
func (t *layerTars) opened(i int) *os.File {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.files[i]
}

func (t *layerTars) extract(i int) (*os.File, error) {
	rc, err := t.ls[i].Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	dec, _, err := layers.Decompress(rc)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	f, err := t.tmp.create("layer-*.tar")
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(f, ctxio.Reader(t.ctx, dec)); err != nil {
		t.tmp.discard(f)
		return nil, fmt.Errorf("decompressing layer %d: %w", i, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		t.tmp.discard(f)
		return nil, os.ErrClosed
	}
	return f, nil
}

// close removes every extracted tar.
func (t *layerTars) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for i, f := range t.files {
		if f != nil {
			t.tmp.discard(f)
			t.files[i] = nil
		}
	}
}

// newImageFS is the merged filesystem of an image over its lazily
// decompressed layer tars.
func newImageFS(ov *layers.Overlay, tars *layerTars) profile.FS {
	return profile.ImageFS(ov, func(i int) (io.ReaderAt, error) { return tars.tar(i) })
}
