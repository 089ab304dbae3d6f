// Package estargzfmt is eStargz as the encoder of package layers writes it
// and stargz-snapshotter reads it: a [lazy.Format].
//
// Every segment of the tar stream is a gzip member. The prioritized entries
// are followed by a .prefetch.landmark entry (or, when none is found, the
// layer starts with a .no.prefetch.landmark), which tells stargz-snapshotter
// what to prefetch. The TOC (stargz.index.json, estargz.JTOC with
// estargz.TOCEntry entries) is the tar's last entry, in a gzip member of its
// own that also ends the archive, and a 51-byte footer, an empty gzip
// member whose extra field holds the TOC's offset, closes the blob. The
// layer descriptor carries the TOC digest
// (containerd.io/snapshot/stargz/toc.digest), which stargz-snapshotter
// verifies the TOC against, and the uncompressed size
// (io.containers.estargz.uncompressed-size).
//
// The package is named estargzfmt, not estargz, so that it reads apart
// from the upstream github.com/containerd/stargz-snapshotter/estargz,
// whose types and constants it uses and which its importers use too.
// Callers select it with layers.FormatEStargz.
package estargzfmt
