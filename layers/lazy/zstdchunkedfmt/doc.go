// Package zstdchunkedfmt is zstd:chunked as the encoder of package layers
// writes it and containers/storage (podman, CRI-O) reads it: a
// [lazy.Format].
//
// Every segment of the tar stream is a zstd frame, and the compressed
// payload is the whole tar, end-of-archive blocks included. Three zstd
// skippable frames close the blob: the zstd-compressed TOC, the
// zstd-compressed tar-split (vbatts/tar-split's JSON, with which
// containers/storage rebuilds the tar exactly), and a 40-byte footer with
// the TOC's offset, compressed and uncompressed lengths and the
// zstd:chunked magic. The TOC's entries are estargz.TOCEntry's fields plus
// the access and change times and the end offsets that containers/storage
// reads ([lazy.TOCEntry]), and the TOC records the tar-split's digest.
//
// Prioritized files lead the layer, but no landmark entry marks where they
// end: containers/storage would make a landmark a file in every container.
// In its place, the layer descriptor gets stargz-snapshotter's prefetch
// size, [PrefetchSizeAnnotation]. The other annotations are the manifest
// checksum and position in the keys of containers/storage 1.48 and later
// ([ManifestChecksumAnnotation], [ManifestPositionAnnotation],
// [TarSplitPositionAnnotation]) and in the older ones that estargz's
// zstdchunked package writes (Debian 12's podman 4.3 reads those), and the
// uncompressed size. The stargz TOC digest is left out on purpose:
// containers/storage refuses a layer that carries both it and the manifest
// checksum.
//
// The package is named zstdchunkedfmt, not zstdchunked, so that it reads
// apart from the upstream
// github.com/containerd/stargz-snapshotter/estargz/zstdchunked, whose
// constants and footer parser it uses. Callers select it with
// layers.FormatZstdChunked.
package zstdchunkedfmt
