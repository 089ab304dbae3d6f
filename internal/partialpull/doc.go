// Package partialpull plans what containers/storage 1.43 (Debian 12's
// podman 4.3; CRI-O uses the same library) fetches when it pulls an
// eStargz or zstd:chunked layer partially (enable_partial_images = "true"),
// from the layer's descriptor, its TOC and the TOCs of the layers the store
// already holds. The cost model (optimize/report) prices the plan; the real
// podman judges it (optimize/report's TestPodmanPartialPull).
//
// What containers/storage 1.43 does, and this package models (its
// pkg/chunked: compression.go, storage_linux.go, cache_linux.go):
//
//   - A layer is pulled partially when its descriptor carries the
//     zstd:chunked manifest checksum annotation
//     (io.containers.zstd-chunked.manifest-checksum, the key of 1.43) or,
//     failing that, the eStargz TOC digest
//     (containerd.io/snapshot/stargz/toc.digest); any other layer is
//     downloaded whole.
//   - The TOC: for zstd:chunked one ranged GET of the compressed TOC at the
//     io.containers.zstd-chunked.manifest-position annotation (without it,
//     the 40-byte footer first); for eStargz the 51-byte footer, then the
//     TOC from the offset the footer gives to the footer. Nothing else of
//     the blob's metadata (no tar-split) is read.
//   - Every regular file of the layer with content whose digest is the
//     digest of a file in a layer the store holds with a TOC (a layer it
//     pulled partially; layers pulled whole are not searched) is copied
//     from there. Of the other files, every chunk whose chunk digest is in
//     such a layer is copied too, chunks of zeros are holes; what is left
//     is fetched: the compressed range [offset, end) of each chunk, where a
//     chunk ends where the next starts and a file's last chunk at its
//     endOffset (for eStargz, which has none, at the offset of the next
//     entry with data, the landmarks skipped, or the TOC).
//   - The ranges are merged as mergeMissingChunks does: adjacent chunks of
//     one file always; then, above 1024 ranges, the gaps that cost least
//     (gap bytes plus copied chunks that merging fetches again) until 1024
//     remain. They are asked in one GET with a multi-range header.
//   - Directories, symbolic and hard links, device nodes, FIFOs and empty
//     files are created from the TOC alone.
//
// The registry's answer ([ResponseBytes]) is what Go's net/http
// ServeContent sends, which Debian's docker-registry (CNCF distribution)
// uses for a filesystem store: the bare range for one range, else a
// multipart/byteranges body with a 60-character boundary and, per part, a
// Content-Range and a Content-Type: application/octet-stream header.
package partialpull
