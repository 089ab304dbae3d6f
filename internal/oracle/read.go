package oracle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"
)

const xattrPrefix = "SCHILY.xattr."

// ReadLayer reads an uncompressed layer tar in one streaming pass. Memory
// is proportional to the number of entries: every regular file's content
// is hashed and dropped.
//
// It accepts what containerd's applier accepts: PAX and GNU long names,
// PAX extended headers (nanosecond mtimes, xattrs), PAX global headers
// (kept as [TypeGlobalHeader] entries) and absolute names (taken from the
// root). A name or hard link target that climbs out of the root with
// "..", a whiteout that names no file, a broken or truncated tar are
// errors wrapping [ErrBadLayer] that name the entry.
func ReadLayer(r io.Reader) (*Layer, error) {
	return readLayer(context.Background(), r)
}

// ReadBlob reads a layer blob compressed with gzip or zstd or not at all:
// the compression is sniffed from the first bytes (see [Decompress]).
func ReadBlob(r io.Reader) (*Layer, error) {
	return readBlob(context.Background(), r)
}

func readBlob(ctx context.Context, r io.Reader) (*Layer, error) {
	dr, err := Decompress(r)
	if err != nil {
		return nil, err
	}
	if _, plain := dr.(nopCloser); plain {
		return readLayer(ctx, dr)
	}
	// Decompress in a goroutine of its own, a few buffers ahead of the
	// tar parsing and hashing: they cost about the same.
	ra := newReadAhead(dr, 4, 256<<10)
	defer ra.Close()
	return readLayer(ctx, ra)
}

// readAhead reads its source in a goroutine, up to n buffers ahead. The
// goroutine closes the source when it stops: at the source's end or
// error, or at the first read after Close (a read in progress is not
// interrupted, so Close does not wait for it).
type readAhead struct {
	full  chan chunk
	free  chan []byte
	done  chan struct{}
	cur   []byte
	buf   []byte
	err   error
	close sync.Once
}

type chunk struct {
	b   []byte
	err error
}

func newReadAhead(src io.ReadCloser, n, size int) *readAhead {
	ra := &readAhead{full: make(chan chunk, n), free: make(chan []byte, n), done: make(chan struct{})}
	for range n {
		ra.free <- make([]byte, size)
	}
	go func() {
		defer src.Close()
		for {
			var buf []byte
			select {
			case buf = <-ra.free:
			case <-ra.done:
				return
			}
			m, err := fill(src, buf)
			select {
			case ra.full <- chunk{buf[:m], err}:
			case <-ra.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ra
}

// fill reads into buf until it is full or the source fails; the error is
// the source's, io.EOF included.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.buf != nil {
			ra.free <- ra.buf[:cap(ra.buf)]
			ra.buf = nil
		}
		c := <-ra.full
		ra.cur, ra.buf, ra.err = c.b, c.b, c.err
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the goroutine (after the read it may be in).
func (ra *readAhead) Close() { ra.close.Do(func() { close(ra.done) }) }

// Compression names what [Sniff] found.
type Compression string

// The compressions [Decompress] knows.
const (
	None Compression = "none"
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// Sniff reports the compression of a blob from its first bytes: the gzip
// magic 1f 8b, the zstd magic 28 b5 2f fd (or a zstd skippable frame, 5x 2a
// 4d 18, which zstd:chunked layers may start with), else none.
func Sniff(head []byte) Compression {
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return Gzip
	case len(head) >= 4 && bytes.Equal(head[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd
	case len(head) >= 4 && head[0]&0xf0 == 0x50 && bytes.Equal(head[1:4], []byte{0x2a, 0x4d, 0x18}):
		return Zstd
	}
	return None
}

// Decompress returns the uncompressed stream of a blob, sniffing gzip
// (concatenated members included, as eStargz writes them), zstd or none
// from the first bytes. Closing it releases the decoder; it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: reading the first bytes: %w", ErrBadLayer, err)
	}
	switch Sniff(head) {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", ErrBadLayer, err)
		}
		return zr, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", ErrBadLayer, err)
		}
		return zstdCloser{zr}, nil
	}
	return nopCloser{br}, nil
}

type nopCloser struct{ io.Reader }

func (nopCloser) Close() error { return nil }

type zstdCloser struct{ *zstd.Decoder }

func (z zstdCloser) Close() error { z.Decoder.Close(); return nil }

// countReader counts bytes and checks ctx between reads.
type countReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *countReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func readLayer(ctx context.Context, r io.Reader) (*Layer, error) {
	cr := &countReader{ctx: ctx, r: r}
	br := bufio.NewReaderSize(cr, 1<<16)
	tr := tar.NewReader(br)
	l := &Layer{}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			if i == 0 && cr.n == 0 {
				return nil, fmt.Errorf("%w: empty stream, not a tar", ErrBadLayer)
			}
			// Read to the end of the stream: the padding after the
			// end-of-archive blocks counts in the DiffID, and a
			// decompressor checks its trailer (gzip's CRC) only there.
			if _, err := io.Copy(io.Discard, br); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("%w: after the end of the tar: %w", ErrBadLayer, err)
			}
			l.Bytes = cr.n
			return l, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if i == 0 {
				return nil, fmt.Errorf("%w: not a tar: %w", ErrBadLayer, err)
			}
			return nil, fmt.Errorf("%w: reading the header of entry %d: %w", ErrBadLayer, i, err)
		}
		e := Entry{
			Index:    i,
			Name:     hdr.Name,
			Typeflag: hdr.Typeflag,
			Mode:     hdr.Mode & 0o7777,
			UID:      hdr.Uid,
			GID:      hdr.Gid,
			ModTime:  hdr.ModTime,
			Devmajor: hdr.Devmajor,
			Devminor: hdr.Devminor,
		}
		clean, err := CleanName(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadLayer, &e, err)
		}
		if err := classify(&e, clean, hdr.Typeflag); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadLayer, &e, err)
		}
		for k, v := range hdr.PAXRecords {
			if x, ok := strings.CutPrefix(k, xattrPrefix); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[x] = v
			}
		}
		switch e.Type {
		case TypeSymlink:
			e.Linkname = hdr.Linkname
		case TypeHardlink:
			t, err := CleanName(hdr.Linkname)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: hard link target: %w", ErrBadLayer, &e, err)
			}
			e.Linkname = t
		case TypeFile:
			h.Reset()
			n, err := io.CopyBuffer(h, tr, buf)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("%w: %s: reading content: %w", ErrBadLayer, &e, err)
			}
			e.Size = n
			h.Sum(e.Digest[:0])
		}
		l.Entries = append(l.Entries, e)
	}
}

// Opener opens one layer blob (compressed or not).
type Opener func() (io.ReadCloser, error)

// ReadImage reads the layers of one image, bottom first, at most
// parallelism at a time (1 if less), with [ReadBlob]. The first error
// cancels the others and is returned with the layer's index.
func ReadImage(ctx context.Context, layers []Opener, parallelism int) ([]*Layer, error) {
	if parallelism < 1 {
		parallelism = 1
	}
	out := make([]*Layer, len(layers))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelism)
	for i, open := range layers {
		g.Go(func() error {
			rc, err := open()
			if err != nil {
				return fmt.Errorf("opening layer %d: %w", i, err)
			}
			l, err := readBlob(gctx, rc)
			if cerr := rc.Close(); err == nil && cerr != nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("reading layer %d: %w", i, err)
			}
			out[i] = l
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadV1Image reads the layers of img, bottom first, from their
// compressed blobs (the compression is sniffed, not taken from the media
// type), at most parallelism at a time.
func ReadV1Image(ctx context.Context, img v1.Image, parallelism int) ([]*Layer, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	openers := make([]Opener, len(ls))
	for i, l := range ls {
		openers[i] = l.Compressed
	}
	return ReadImage(ctx, openers, parallelism)
}
