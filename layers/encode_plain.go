package layers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"github.com/coldstart-dev/coldstart/internal/ctxio"
	"hash/crc32"
	"io"
)

// Plain gzip is compressed in parallel the way pigz does it: the input is cut
// into fixed blocks, each compressed by its own deflate stream primed with
// the 32 KiB before it and ended with a sync flush, and the streams are
// concatenated into one gzip member. Block boundaries depend only on the
// input, so the bytes never depend on the number of workers.

const (
	encGzipBlock = 1 << 20
	encGzipDict  = 32 << 10
)

func encodeGzip(ctx context.Context, src *io.SectionReader, out io.Writer, opt EncodeOptions) (*Encoded, error) {
	size := src.Size()
	blocks := max(1, int((size+encGzipBlock-1)/encGzipBlock))
	// RFC 1952 header: deflate, no flags, no mtime, OS unknown.
	if _, err := out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}); err != nil {
		return nil, err
	}
	run := func(wk *encWorker, j *encJob) error {
		off := int64(j.first) * encGzipBlock
		n := min(encGzipBlock, size-off)
		var dict []byte
		if off > 0 {
			dict = make([]byte, min(encGzipDict, off))
			if _, err := src.ReadAt(dict, off-int64(len(dict))); err != nil {
				return err
			}
		}
		fl, err := wk.flateWriter(j.out, dict)
		if err != nil {
			return err
		}
		if err := wk.copyRange(fl, nil, off, n); err != nil {
			return err
		}
		if j.first == blocks-1 {
			err = fl.Close()
		} else {
			err = fl.Flush()
		}
		j.sizes = []int64{int64(j.out.Len())}
		return err
	}
	produce := func(ctx context.Context, send func(*encJob) error) error {
		for b := range blocks {
			n := min(encGzipBlock, size-int64(b)*encGzipBlock)
			if err := send(&encJob{run: run, first: b, count: 1, input: n}); err != nil {
				return err
			}
		}
		return nil
	}
	emit := func(j *encJob) error {
		_, err := out.Write(j.out.Bytes())
		return err
	}
	diff := sha256.New()
	crc := crc32.NewIEEE()
	hashAll := func(ctx context.Context) error {
		r := ctxio.Reader(ctx, io.NewSectionReader(src, 0, size))
		_, err := io.CopyBuffer(io.MultiWriter(diff, crc), r, make([]byte, encReadBuf))
		return err
	}
	if err := encPipeline(ctx, opt, src, produce, emit, hashAll); err != nil {
		return nil, err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[0:], crc.Sum32())
	binary.LittleEndian.PutUint32(trailer[4:], uint32(size))
	if _, err := out.Write(trailer[:]); err != nil {
		return nil, err
	}
	return &Encoded{DiffID: encHash(diff), UncompressedSize: size}, nil
}

// encodeZstd compresses with klauspost's parallel stream encoder, whose
// sections are sized by the level alone.
func encodeZstd(ctx context.Context, src *io.SectionReader, out io.Writer, opt EncodeOptions) (*Encoded, error) {
	zw, err := encNewZstd(out, opt.zstdLevel(), max(2, opt.Workers))
	if err != nil {
		return nil, err
	}
	diff := sha256.New()
	r := &encProgressReader{r: ctxio.Reader(ctx, io.NewSectionReader(src, 0, src.Size())), progress: opt.report}
	if _, err := io.Copy(zw, io.TeeReader(r, diff)); err != nil {
		zw.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &Encoded{DiffID: encHash(diff), UncompressedSize: src.Size()}, nil
}

// encProgressReader reports the bytes read through it.
type encProgressReader struct {
	r        io.Reader
	progress func(int64)
}

func (c *encProgressReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.progress != nil {
		c.progress(int64(n))
	}
	return n, err
}
