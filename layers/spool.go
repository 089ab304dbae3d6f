package layers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/coldstart-dev/coldstart/internal/ctxio"
)

// Spool decompresses the layers of an image into temporary tar files, each
// the first time it is asked for, so that a file's content can be read at
// its Entry.DataOffset: the one way the optimizer, the profiler and the cost
// model read file contents out of layers (see profile.ImageFS). It is safe
// for concurrent use; Close removes the files.
type Spool struct {
	ctx    context.Context
	open   func(i int) (io.ReadCloser, error)
	dir    string
	mu     sync.Mutex
	once   []sync.Once
	files  []*os.File
	errs   []error
	failed error
	closed bool
}

// NewSpool spools n layers whose compressed blobs open returns (gzip, zstd
// or uncompressed, sniffed as Decompress does) into temporary files in dir
// ("" for the system's), reading until ctx is done.
func NewSpool(ctx context.Context, n int, dir string, open func(i int) (io.ReadCloser, error)) *Spool {
	return &Spool{ctx: ctx, open: open, dir: dir, once: make([]sync.Once, n), files: make([]*os.File, n), errs: make([]error, n)}
}

// Tar returns layer i's uncompressed tar, writing it the first time.
func (s *Spool) Tar(i int) (*os.File, error) {
	if i < 0 || i >= len(s.once) {
		return nil, fmt.Errorf("layer %d of %d", i, len(s.once))
	}
	s.once[i].Do(func() {
		f, err := s.extract(i)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.files[i], s.errs[i] = f, err
		if err != nil && s.failed == nil {
			s.failed = err
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[i], s.errs[i]
}

// Spooled returns layer i's tar if it was written already, else nil.
func (s *Spool) Spooled(i int) *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[i]
}

// Err returns the first failure to spool a layer: readers that turn
// unreadable files into warnings (the profiler) must not let a broken layer
// pass silently.
func (s *Spool) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *Spool) extract(i int) (*os.File, error) {
	rc, err := s.open(i)
	if err != nil {
		return nil, fmt.Errorf("layer %d: %w", i, err)
	}
	defer rc.Close()
	dec, _, err := Decompress(rc)
	if err != nil {
		return nil, fmt.Errorf("layer %d: %w", i, err)
	}
	defer dec.Close()
	f, err := os.CreateTemp(s.dir, "layer-*.tar")
	if err != nil {
		return nil, err
	}
	discard := func() { f.Close(); os.Remove(f.Name()) }
	if _, err := io.Copy(f, ctxio.Reader(s.ctx, dec)); err != nil {
		discard()
		return nil, fmt.Errorf("decompressing layer %d: %w", i, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		discard()
		return nil, os.ErrClosed
	}
	return f, nil
}

// Close removes every spooled tar.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	for i, f := range s.files {
		if f != nil {
			errs = append(errs, f.Close(), os.Remove(f.Name()))
			s.files[i] = nil
		}
	}
	return errors.Join(errs...)
}
