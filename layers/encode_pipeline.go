package layers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"
)

// The encoders split their input into jobs that workers compress
// independently into memory, and an emitter writes the results in order. A job
// never depends on which worker runs it, so the output does not depend on the
// number of workers or on scheduling.

const (
	// encReadBuf is the scratch buffer each worker and hasher reads with.
	encReadBuf = 256 << 10
	// encJobTarget is how much input a job gathers before it is dispatched:
	// enough to amortise the hand-off, small enough to keep memory low.
	encJobTarget = 1 << 20
	// encWindowPerWorker bounds the jobs between the producer and the
	// emitter, so that memory stays a few jobs per worker.
	encWindowPerWorker = 2
)

// encJob is one unit of parallel work. run fills out and sizes (the
// compressed size of each piece the job holds).
type encJob struct {
	run   func(wk *encWorker, j *encJob) error
	first int   // first piece (segment or block) of the job
	count int   // number of pieces
	input int64 // input bytes the job covers, for progress
	out   *bytes.Buffer
	sizes []int64
	done  chan struct{}
	err   error
}

// encWorker is the state one worker goroutine reuses from job to job:
// allocating a compressor per gzip member costs more than compressing it.
type encWorker struct {
	opt EncodeOptions
	src *io.SectionReader
	buf []byte
	sha hash.Hash
	fl  *flate.Writer // plain gzip
}

func newEncWorker(opt EncodeOptions, src *io.SectionReader) *encWorker {
	return &encWorker{opt: opt, src: src, buf: make([]byte, encReadBuf), sha: sha256.New()}
}

func (wk *encWorker) flateWriter(w io.Writer, dict []byte) (*flate.Writer, error) {
	if wk.fl == nil {
		fl, err := flate.NewWriter(w, wk.opt.Level)
		if err != nil {
			return nil, err
		}
		wk.fl = fl
	}
	wk.fl.ResetDict(w, dict)
	return wk.fl, nil
}

// encNewZstd makes a zstd encoder whose output depends only on its input and
// level: concurrency 1 encodes synchronously; above 1 the encoder compresses
// fixed-size sections in parallel, sized by the level alone.
func encNewZstd(w io.Writer, level zstd.EncoderLevel, concurrency int) (*zstd.Encoder, error) {
	opts := []zstd.EOption{zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(concurrency)}
	if concurrency > 1 {
		opts = append(opts, zstd.WithConcurrentBlocks(true))
	}
	return zstd.NewWriter(w, opts...)
}

// copyRange writes src[off:off+n] to dst (and to extra, if not nil).
func (wk *encWorker) copyRange(dst io.Writer, extra io.Writer, off, n int64) error {
	return encCopyRange(wk.src, wk.buf, dst, extra, off, n)
}

func encCopyRange(src io.ReaderAt, buf []byte, dst io.Writer, extra io.Writer, off, n int64) error {
	for n > 0 {
		b := buf
		if int64(len(b)) > n {
			b = b[:n]
		}
		m, err := src.ReadAt(b, off)
		if m < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading layer tar at offset %d: %w", off, err)
		}
		if _, err := dst.Write(b); err != nil {
			return err
		}
		if extra != nil {
			extra.Write(b)
		}
		off += int64(m)
		n -= int64(m)
	}
	return nil
}

var encBufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// encPipeline runs the jobs that produce sends on opt.Workers goroutines,
// hands each finished job to emit in the order produced, and runs the extra
// functions (sequential passes such as hashing) alongside. It returns the
// first error; when ctx is cancelled, that is an error wrapping ctx.Err().
func encPipeline(ctx context.Context, opt EncodeOptions, src *io.SectionReader,
	produce func(ctx context.Context, send func(*encJob) error) error,
	emit func(*encJob) error,
	extra ...func(ctx context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan *encJob)
	order := make(chan *encJob, encWindowPerWorker*opt.Workers)

	g.Go(func() error {
		defer close(order)
		defer close(work)
		return produce(gctx, func(j *encJob) error {
			j.done = make(chan struct{})
			select {
			case order <- j:
			case <-gctx.Done():
				return gctx.Err()
			}
			select {
			case work <- j:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	for range opt.Workers {
		g.Go(func() error {
			wk := newEncWorker(opt, src)
			for j := range work {
				if err := gctx.Err(); err != nil {
					j.err = err
				} else {
					j.out = encBufPool.Get().(*bytes.Buffer)
					j.out.Reset()
					j.err = j.run(wk, j)
				}
				close(j.done)
				if j.err != nil {
					return j.err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		for j := range order {
			select {
			case <-j.done:
			case <-gctx.Done():
				return gctx.Err()
			}
			if j.err != nil {
				return j.err
			}
			err := emit(j)
			encBufPool.Put(j.out)
			j.out = nil
			if err != nil {
				return err
			}
			opt.report(j.input)
		}
		return nil
	})
	for _, f := range extra {
		g.Go(func() error { return f(gctx) })
	}
	err := g.Wait()
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// encSizeWriter counts bytes written through it.
type encSizeWriter struct {
	w io.Writer
	n int64
}

func (c *encSizeWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
