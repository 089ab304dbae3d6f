package layers

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	"github.com/klauspost/compress/zstd"
)

// ZstdChunkedAnnotationKeys are the descriptor annotations of a zstd:chunked
// layer that containers/storage reads to pull it partially: the manifest
// checksum and position, in the keys of containers/storage 1.48 and later
// and in those of earlier versions (Debian 12's podman 4.3 reads these).
var ZstdChunkedAnnotationKeys = []string{
	encZstdManifestChecksum, encZstdManifestPosition,
	zstdchunked.ManifestChecksumAnnotation, zstdchunked.ManifestPositionAnnotation,
}

// maxLazyMetadata bounds the TOC and tar-split that LazyAnnotations reads
// into memory.
const maxLazyMetadata = 1 << 30

// LazyAnnotations returns the layer descriptor annotations that the pullers
// of a lazy layer read, derived from the blob itself: for eStargz the TOC
// digest (containerd.io/snapshot/stargz/toc.digest, which stargz-snapshotter
// verifies the TOC against) and the uncompressed size, both from idx alone;
// for zstd:chunked the manifest checksum and position (in the keys of
// containers/storage before and after 1.48), the tar-split position and the
// uncompressed size, read from blob's footer, TOC and tar-split frames. The
// annotations of a descriptor can be lost on the way (a docker-archive
// round trip drops them); the blob cannot. The one annotation Encode writes
// that the blob does not record is zstd:chunked's prefetch size for
// stargz-snapshotter (see EncodeOptions.Prioritized), which that puller
// reads only with verification disabled. It returns nil for a layer that
// is not lazy.
func LazyAnnotations(blob *io.SectionReader, idx *Index) (map[string]string, error) {
	switch idx.Lazy {
	case EStargz:
		if idx.TOCDigest.Hex == "" {
			return nil, fmt.Errorf("%w: eStargz layer without a TOC", ErrCorrupt)
		}
		return map[string]string{
			estargz.TOCJSONDigestAnnotation:         idx.TOCDigest.String(),
			estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(idx.UncompressedSize, 10),
		}, nil
	case ZstdChunked:
		a, err := zstdChunkedAnnotations(blob)
		if err != nil {
			return nil, err
		}
		a[estargz.StoreUncompressedSizeAnnotation] = strconv.FormatInt(idx.UncompressedSize, 10)
		return a, nil
	}
	return nil, nil
}

func zstdChunkedAnnotations(blob *io.SectionReader) (map[string]string, error) {
	if blob == nil {
		return nil, fmt.Errorf("zstd:chunked annotations need the blob")
	}
	size := blob.Size()
	if size < zstdchunked.FooterSize {
		return nil, fmt.Errorf("%w: zstd:chunked blob of %d bytes has no footer", ErrCorrupt, size)
	}
	footer := make([]byte, zstdchunked.FooterSize)
	if _, err := blob.ReadAt(footer, size-zstdchunked.FooterSize); err != nil {
		return nil, fmt.Errorf("reading the zstd:chunked footer: %w", err)
	}
	var d zstdchunked.Decompressor
	_, tocOff, tocLen, err := d.ParseFooter(footer)
	if err != nil {
		return nil, fmt.Errorf("%w: zstd:chunked footer: %v", ErrCorrupt, err)
	}
	if tocOff < 8 || tocLen <= 0 || tocLen > maxLazyMetadata || tocOff+tocLen > size-zstdchunked.FooterSize {
		return nil, fmt.Errorf("%w: zstd:chunked footer puts the TOC at %d+%d in a %d-byte blob", ErrCorrupt, tocOff, tocLen, size)
	}
	ctoc := make([]byte, tocLen)
	if _, err := blob.ReadAt(ctoc, tocOff); err != nil {
		return nil, fmt.Errorf("reading the zstd:chunked TOC: %w", err)
	}
	tocJSONLen, err := zstdLen(ctoc)
	if err != nil {
		return nil, fmt.Errorf("%w: zstd:chunked TOC: %v", ErrCorrupt, err)
	}
	sum := sha256.Sum256(ctoc)
	checksum := encHashBytes(sum[:]).String()
	manifestType := binary.LittleEndian.Uint64(footer[24:32])
	position := fmt.Sprintf("%d:%d:%d:%d", tocOff, tocLen, tocJSONLen, manifestType)
	a := map[string]string{
		encZstdManifestChecksum:                checksum,
		encZstdManifestPosition:                position,
		zstdchunked.ManifestChecksumAnnotation: checksum,
		zstdchunked.ManifestPositionAnnotation: position,
	}
	// The tar-split, when there is one, is the skippable frame right after
	// the TOC's.
	hdr := make([]byte, 8)
	next := tocOff + tocLen
	if next+8 <= size-zstdchunked.FooterSize {
		if _, err := blob.ReadAt(hdr, next); err != nil {
			return nil, fmt.Errorf("reading the zstd:chunked tar-split frame: %w", err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[4:]))
		if bytes.Equal(hdr[:4], encSkippableFrameMagic) && n > 0 && n <= maxLazyMetadata && next+8+n <= size-zstdchunked.FooterSize-8 {
			ts := make([]byte, n)
			if _, err := blob.ReadAt(ts, next+8); err != nil {
				return nil, fmt.Errorf("reading the zstd:chunked tar-split: %w", err)
			}
			tsLen, err := zstdLen(ts)
			if err != nil {
				return nil, fmt.Errorf("%w: zstd:chunked tar-split: %v", ErrCorrupt, err)
			}
			a[encZstdTarSplitPosition] = fmt.Sprintf("%d:%d:%d", next+8, n, tsLen)
		}
	}
	return a, nil
}

// zstdLen returns the decompressed length of a zstd stream.
func zstdLen(b []byte) (int64, error) {
	zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	n, err := io.Copy(io.Discard, io.LimitReader(zr, maxLazyMetadata+1))
	if err != nil {
		return 0, err
	}
	if n > maxLazyMetadata {
		return 0, fmt.Errorf("more than %d bytes decompressed", maxLazyMetadata)
	}
	return n, nil
}
