// Package lazy is the seam between the layer encoder of package layers and
// the lazy-pullable formats it writes, eStargz (package estargzfmt) and
// zstd:chunked (package zstdchunkedfmt).
//
// Both formats are a tar stream cut into segments, each compressed on its
// own (a gzip member or a zstd frame) so that a puller can fetch and
// decompress one file without the rest, and closed by a table of contents
// (TOC) that records where every file's data lies. What they share, the
// encoder in package layers does once: it orders the entries (prioritized
// files first), cuts the stream into segments, compresses them in parallel,
// hashes the uncompressed stream (the DiffID) and fills in the TOC. What
// differs is a [Format]:
//
//   - how a segment is compressed ([Format.NewCompressor]);
//   - how the stream is laid out: whether a prefetch landmark entry follows
//     the prioritized files, and whether the compressed payload ends the tar
//     archive or the format's closing bytes do ([Format.Layout]);
//   - what closes the blob: which fields of [TOCEntry] its TOC records, how
//     the TOC is stored, the footer, and the descriptor annotations the
//     layer gets ([Format.NewCloser], [Closer]);
//   - how those annotations are derived again from a blob alone
//     ([Format.Annotations]);
//   - its media type and its encoder version.
//
// This package imports neither layers nor the format packages; layers
// imports all three, and the format packages import only this one, so the
// import graph stays one-way. Callers choose a format with layers.Format
// (layers.FormatEStargz, layers.FormatZstdChunked); this package and the
// format packages matter to those who read or extend the encoder.
package lazy
