package report

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// findProfile returns the start-up files: the profiler's over img's merged
// filesystem (profile.StaticProfiler by default).
func (o *options) findProfile(ctx context.Context, img v1.Image, ov *layers.Overlay, ls []*layerInfo, tmp string) (*profile.Profile, error) {
	if o.profile != nil {
		return o.profile, nil
	}
	fsys := newImageFS(ov, ls, tmp)
	defer fsys.close()
	pr := o.profiler
	if pr == nil {
		pr = profile.StaticProfiler(profile.WithLogger(o.logger))
	}
	p, err := pr.Profile(ctx, img, fsys)
	if err != nil {
		return nil, fmt.Errorf("profiling start-up files: %w", err)
	}
	if err := fsys.err(); err != nil {
		return nil, fmt.Errorf("profiling start-up files: %w", err)
	}
	return p, nil
}

// imageFS is an image's merged filesystem for the profiler: metadata from
// the overlay, file contents from each layer's tar, spooled uncompressed to
// a temporary file the first time a file of that layer is opened.
// imageFS spools layers into uncompressed tars on first use and serves the
// merged filesystem over them (profile.ImageFS).
type imageFS struct {
	profile.FS
	ls      []*layerInfo
	tmp     string
	mu      sync.Mutex
	spooled map[int]*os.File
	failed  error
}

func newImageFS(ov *layers.Overlay, ls []*layerInfo, tmp string) *imageFS {
	f := &imageFS{ls: ls, tmp: tmp, spooled: map[int]*os.File{}}
	f.FS = profile.ImageFS(ov, func(i int) (io.ReaderAt, error) { return f.spool(i) })
	return f
}

func (f *imageFS) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.spooled {
		s.Close()
		os.Remove(s.Name())
	}
	f.spooled = nil
}

// err returns the first failure to spool a layer: the profiler turns
// unreadable files into warnings, but a broken layer must not pass
// silently.
func (f *imageFS) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// spool returns the uncompressed tar of layer i, writing it the first time.
func (f *imageFS) spool(i int) (*os.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.spooled[i]; ok {
		return s, nil
	}
	blob := f.ls[i].blob
	if blob == "" {
		return nil, fmt.Errorf("layer %d has no content", i)
	}
	s, err := func() (*os.File, error) {
		in, err := os.Open(blob)
		if err != nil {
			return nil, err
		}
		defer in.Close()
		dec, _, err := layers.Decompress(in)
		if err != nil {
			return nil, err
		}
		defer dec.Close()
		out, err := os.Create(filepath.Join(f.tmp, fmt.Sprintf("layer-%d.tar", i)))
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(out, dec); err != nil {
			out.Close()
			os.Remove(out.Name())
			return nil, err
		}
		return out, nil
	}()
	if err != nil {
		err = fmt.Errorf("reading layer %d %s: %w", i, f.ls[i].desc.Digest, err)
		if f.failed == nil {
			f.failed = err
		}
		return nil, err
	}
	f.spooled[i] = s
	return s, nil
}
