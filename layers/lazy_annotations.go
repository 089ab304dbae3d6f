package layers

import (
	"io"

	"github.com/coldstart-dev/coldstart/layers/lazy/zstdchunkedfmt"
)

// ZstdChunkedAnnotationKeys are the descriptor annotations of a zstd:chunked
// layer that containers/storage reads to pull it partially: the manifest
// checksum and position, in the keys of containers/storage 1.48 and later
// and in those of earlier versions (Debian 12's podman 4.3 reads these).
var ZstdChunkedAnnotationKeys = zstdchunkedfmt.PartialPullAnnotations

// LazyAnnotations returns the layer descriptor annotations that the pullers
// of a lazy layer read, derived from the blob itself: for eStargz the TOC
// digest (containerd.io/snapshot/stargz/toc.digest, which stargz-snapshotter
// verifies the TOC against) and the uncompressed size, both from idx alone;
// for zstd:chunked the manifest checksum and position (in the keys of
// containers/storage before and after 1.48), the tar-split position and the
// uncompressed size, read from blob's footer, TOC and tar-split frames (for
// zstd:chunked for containerd, whose TOC alone has a landmark entry, the TOC
// digest and the uncompressed size). The
// annotations of a descriptor can be lost on the way (a docker-archive
// round trip drops them); the blob cannot. The one annotation Encode writes
// that the blob does not record is zstd:chunked's prefetch size for
// stargz-snapshotter (see EncodeOptions.Prioritized), which that puller
// reads only with verification disabled. It returns nil for a layer that
// is not lazy.
func LazyAnnotations(blob *io.SectionReader, idx *Index) (map[string]string, error) {
	var f Format
	switch idx.Lazy {
	case EStargz:
		f = FormatEStargz
	case ZstdChunked:
		f = FormatZstdChunked
	default:
		return nil, nil
	}
	return f.lazyFormat().Annotations(blob, idx.TOCDigest, idx.UncompressedSize)
}
