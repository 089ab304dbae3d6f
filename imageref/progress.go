package imageref

import (
	"github.com/coldstart-dev/coldstart/internal/progress"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Progress reports how much of one layer blob Write has written.
type Progress struct {
	// Digest is the blob's.
	Digest v1.Hash
	// Done and Total count compressed bytes. A blob the destination holds
	// already is reported once, with Done equal to Total.
	Done, Total int64
}

// WithProgress makes Write call fn as it writes each layer blob (not the
// config or the manifests); fn may be called from several goroutines at
// once. Default: none.
func WithProgress(fn func(Progress)) Option {
	return func(o *options) error {
		o.progress = fn
		return nil
	}
}

// counted returns l whose reads are reported to o's progress callback, or
// l without one. A mountable layer stays mountable.
func (o *options) counted(l v1.Layer) v1.Layer {
	if o.progress == nil {
		return l
	}
	d, err := l.Digest()
	if err != nil {
		return l
	}
	size, err := l.Size()
	if err != nil {
		return l
	}
	report := func(n int64) { o.progress(Progress{Digest: d, Done: n, Total: size}) }
	if ml, ok := l.(*remote.MountableLayer); ok {
		return &remote.MountableLayer{Layer: progress.Layer(ml.Layer, report), Reference: ml.Reference}
	}
	return progress.Layer(l, report)
}

// written reports l as written in full, for a blob the destination had.
func (o *options) written(l v1.Layer) {
	if o.progress == nil {
		return
	}
	d, err := l.Digest()
	if err != nil {
		return
	}
	if size, err := l.Size(); err == nil {
		o.progress(Progress{Digest: d, Done: size, Total: size})
	}
}

// countingImage is an image whose layers report what is read of them.
type countingImage struct {
	v1.Image
	o *options
}

func (c countingImage) Layers() ([]v1.Layer, error) {
	ls, err := c.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = c.o.counted(l)
	}
	return out, nil
}

func (c countingImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := c.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return c.o.counted(l), nil
}

func (c countingImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	l, err := c.Image.LayerByDiffID(h)
	if err != nil {
		return nil, err
	}
	return c.o.counted(l), nil
}
