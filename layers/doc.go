// Package layers knows one container image layer at a time: it scans a
// layer blob into an [Index] in one streaming pass, merges indexes into an
// [Overlay] with OCI whiteout semantics, and encodes layer tars as eStargz,
// zstd:chunked, gzip or zstd.
//
// # Index
//
// [IndexLayer] and [IndexReader] read a blob once. The compression (gzip,
// zstd or none) is sniffed from the first bytes, never taken from the media
// type. While the tar is parsed, the compressed bytes are hashed (the blob
// digest), the uncompressed bytes are hashed in a second goroutine (the
// DiffID) and every regular file's content is hashed (Entry.Digest). Memory
// is proportional to the number of entries, never to the size of the layer.
// The eStargz footer and TOC, or the zstd:chunked footer, mark a layer as
// already lazy-pullable.
//
// Entry paths are cleaned and relative ("./etc/passwd" becomes
// "etc/passwd"); an absolute name or one that climbs out with ".." is an
// error wrapping [ErrUnsafePath]. Whiteouts (".wh.NAME") and opaque markers
// (".wh..wh..opq") become entries of type [TypeWhiteout] and [TypeOpaque]
// whose Path is what they delete or make opaque.
//
// # Overlay
//
// [Merge] stacks indexes bottom first and answers, for every entry, whether
// a container sees it and, if not, which later layer hid it and how
// (overwritten, deleted, hidden by an opaque directory, an ancestor
// directory replaced by a non-directory). Within one layer a later entry for
// the same path replaces the earlier one, as containerd applies layers, and
// a whiteout applies to lower layers only. Hard links carry the content of
// the file they link to. The overlay also finds identical re-adds, metadata
// copy-ups (the chmod and chown layers of many Dockerfiles) and one content
// stored at several paths.
//
// Wasted bytes, as [Overlay.Waste] counts them, are the sizes of
// regular-file entries that are the final version of their path in their
// layer and that no container sees because a later layer overwrote them,
// deleted them, hid them under an opaque directory or replaced an ancestor
// directory.
//
// # Formats
//
// [Encode] writes a layer tar in one of five [Format]s. [FormatGzip] and
// [FormatZstd] are plain compressed tars, compressed in parallel in blocks
// whose boundaries depend only on the input. [FormatEStargz] (the default),
// [FormatZstdChunked] and [FormatZstdChunkedContainerd] can be pulled
// lazily: the tar is cut into
// segments, each compressed on its own (every regular file, or every
// [EncodeOptions.ChunkSize] piece of one, starts a segment), and a table of
// contents (TOC) at the end says where each file lies, so that a puller
// fetches the TOC and then only the files a container reads. The
// [EncodeOptions.Prioritized] files lead the layer; they and the
// [EncodeOptions.OnDemand] ones, the start-up files, may be compressed at
// a level of their own ([EncodeOptions.StartupLevel]), since every cold
// start fetches them and none fetches the rest.
//
// What the lazy formats share, this package does once: it orders the
// entries, plans the segments, compresses them on [EncodeOptions.Workers]
// goroutines (the bytes never depend on how many) and hashes the
// uncompressed stream as it goes. What differs is a lazy.Format from
// package layers/lazy, one subpackage each:
//
//   - layers/lazy/estargzfmt, eStargz as stargz-snapshotter reads it: gzip
//     members, a .prefetch.landmark after the prioritized files, the TOC
//     (estargz.JTOC) as the tar's last entry, a 51-byte gzip footer, and
//     the TOC digest annotation that stargz-snapshotter verifies;
//   - layers/lazy/zstdchunkedfmt, zstd:chunked as containers/storage
//     (podman, CRI-O) reads it: zstd frames, no landmark (it would be a
//     file in every container), and the TOC (with access and change times
//     and end offsets), the tar-split and a footer in zstd skippable frames;
//     the annotations hold the manifest checksum and position, and the
//     prefetch size that stargz-snapshotter takes in place of a landmark;
//     its containerd flavour (Format.Containerd) is zstd:chunked as
//     stargz-snapshotter mounts it: estargz's TOC with the landmark in the
//     TOC only, the footer, no tar-split, and the stargz TOC digest
//     annotation in place of the manifest checksum. With nothing to
//     reorder it keeps the tar stream, and so the DiffID, byte for byte;
//     under [EncodeOptions.KeepOrder] it keeps it with prioritized files
//     too, their data copied into a zstd skippable frame that opens the
//     blob, which the TOC points at and decompressors skip.
//
// [LazyAnnotations] derives the same annotations from a blob again, and
// [Format.EncoderVersion] changes whenever a format's bytes do, so that
// caches of converted layers can key on it.
package layers
