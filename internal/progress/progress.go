// Package progress counts the bytes read of a layer's blob, for progress
// reports: a reader and a v1.Layer wrapper that pass the running total to
// a callback.
package progress

import (
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
)

// Reader returns a reader of r that calls report with the bytes read so
// far after every read that returned some.
func Reader(r io.Reader, report func(done int64)) io.Reader {
	return &reader{r: r, report: report}
}

type reader struct {
	r      io.Reader
	report func(int64)
	n      int64
}

func (c *reader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		c.report(c.n)
	}
	return n, err
}

// readCloser is a counted reader that closes its source.
type readCloser struct {
	io.Reader
	io.Closer
}

// Layer returns l whose Compressed() reports, through report, the bytes of
// the blob read so far (from 0 again for each Compressed call). Digest,
// size, media type, descriptor (annotations included) and bytes are l's.
func Layer(l v1.Layer, report func(done int64)) v1.Layer {
	return &layer{Layer: l, report: report}
}

type layer struct {
	v1.Layer
	report func(int64)
	mu     sync.Mutex
}

func (l *layer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return readCloser{Reader: Reader(rc, func(n int64) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.report(n)
	}), Closer: rc}, nil
}

// Descriptor keeps the wrapped layer's descriptor, annotations included.
func (l *layer) Descriptor() (*v1.Descriptor, error) { return partial.Descriptor(l.Layer) }

// Unwrap returns the layer Layer wrapped.
func Unwrap(l v1.Layer) v1.Layer {
	if w, ok := l.(*layer); ok {
		return w.Layer
	}
	return l
}
