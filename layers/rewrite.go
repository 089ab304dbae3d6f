package layers

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Decompress returns the uncompressed tar stream of a layer blob, sniffing
// gzip, zstd or no compression from its first bytes. Close the returned
// reader to release the decompressor; it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, _ := br.Peek(sniffLen)
	switch c := sniff(magic); c {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("%w: gzip header: %v", ErrCorrupt, err)
		}
		return zr, c, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, c, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		return zr.IOReadCloser(), c, nil
	default:
		return io.NopCloser(br), c, nil
	}
}

// Rewrite copies the layer blob r, which idx indexes, to w as an
// uncompressed tar that holds only the entries keep accepts (keep gets the
// index of the entry in idx.Entries). eStargz metadata entries (TOC,
// landmarks) are always left out. Headers and contents are copied as they
// are; the output depends only on the input and keep. It returns the number
// of bytes written.
func Rewrite(ctx context.Context, r io.Reader, idx *Index, keep func(i int) bool, w io.Writer) (int64, error) {
	dec, _, err := Decompress(r)
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	cw := &countWriter{w: w}
	tr := tar.NewReader(dec)
	tw := tar.NewWriter(cw)
	buf := make([]byte, 256<<10)
	i := 0
	for {
		if err := ctx.Err(); err != nil {
			return cw.n, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return cw.n, fmt.Errorf("rewriting: reading entry %d: %w", i, err)
		}
		switch hdr.Name {
		case TOCName, PrefetchLandmark, NoPrefetchLandmark:
			if hdr.Typeflag == tar.TypeReg {
				continue
			}
		}
		if i >= len(idx.Entries) || idx.Entries[i].Name != hdr.Name {
			return cw.n, fmt.Errorf("rewriting: entry %d (%q) does not match the layer index", i, hdr.Name)
		}
		k := keep(i)
		i++
		if !k {
			continue
		}
		if len(hdr.PAXRecords) > 0 {
			hdr.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return cw.n, fmt.Errorf("rewriting: writing header of %q: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.CopyBuffer(tw, tr, buf); err != nil {
				return cw.n, fmt.Errorf("rewriting: copying %q: %w", hdr.Name, err)
			}
		}
	}
	if i != len(idx.Entries) {
		return cw.n, fmt.Errorf("rewriting: layer has %d entries, its index %d", i, len(idx.Entries))
	}
	if err := tw.Close(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
