package lazy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrCorrupt is returned, wrapped, when a blob's footer, TOC or other
// metadata cannot be read. It is the value of layers.ErrCorrupt.
var ErrCorrupt = errors.New("corrupt or truncated layer")

// Format is a lazy-pullable layer format as the encoder of package layers
// writes it: the parts that differ between eStargz and zstd:chunked. A
// Format is a stateless value; the state of one layer lives in the
// Compressors and the Closer it makes.
type Format interface {
	// Version is what the format adds to layers.EncoderVersion: "" until
	// the bytes written in this format change on their own. Caches of
	// converted layers key on the sum.
	Version() string
	// MediaType is the layer media type of a blob in this format.
	MediaType() types.MediaType
	// Layout says how the encoder lays the tar stream out.
	Layout() Layout
	// NewCompressor returns a Compressor at level (the level is valid for
	// the format's compression: 1-9 for gzip, zstd's 1-22 for zstd). Every
	// worker of the encoder owns one.
	NewCompressor(level int) Compressor
	// NewCloser returns the Closer of one layer, at level.
	NewCloser(level int) Closer
	// Annotations returns the layer descriptor annotations that the
	// format's pullers read, derived from the blob itself: toc is the
	// digest of the blob's TOC JSON and uncompressedSize the length of its
	// tar stream (both as layers.Index records them). A format that needs
	// no more may be given a nil blob. An unreadable blob is an error
	// wrapping ErrCorrupt.
	Annotations(blob *io.SectionReader, toc v1.Hash, uncompressedSize int64) (map[string]string, error)
}

// Layout says how the encoder lays out the tar stream of a format.
type Layout struct {
	// Landmark: a landmark entry follows the prioritized entries
	// (estargz.PrefetchLandmark), or opens the layer when none of them is
	// found (estargz.NoPrefetchLandmark). Without it, the prioritized
	// entries simply lead the layer.
	Landmark bool
	// TOCLandmark: the TOC, not the tar stream, has the landmark entry, at
	// the place Landmark would put it in the stream, with no data: the
	// prefetch landmark's offset is where the first file after the
	// prioritized ones starts in the blob (the end of the payload when
	// there is none), so that stargz-snapshotter prefetches up to there;
	// the no-prefetch landmark's is 0. The tar stream is the encoder's
	// input, landmark-free.
	TOCLandmark bool
	// EndArchive: the compressed payload ends with the tar's end-of-archive
	// blocks, inside its last segment. Without it the Closer ends the
	// archive (in eStargz, the TOC is the tar's last entry).
	EndArchive bool
}

// Compressor compresses the segments of a layer, each into one gzip member
// or zstd frame that decompresses on its own. One worker owns a Compressor
// and reuses its state from segment to segment: allocating a compressor per
// segment (that is, for every small file) costs more than compressing it.
type Compressor interface {
	// Writer returns a writer for the next segment: what is written to it
	// goes to w, compressed, and is complete once it is closed. The writer
	// of the previous call must have been closed. The bytes depend only on
	// the input and the level.
	Writer(w io.Writer) (io.WriteCloser, error)
}

// Closer ends one layer. While the segments are compressed, it sees the
// uncompressed tar stream in order (zstd:chunked records its tar-split
// from it); once the payload is written, Close writes what closes the blob.
type Closer interface {
	// Write receives the uncompressed tar stream, every byte in order:
	// header blocks, file data, padding and end-of-archive blocks.
	io.Writer
	// File says that the entry whose header was written last is named name
	// and that the next size bytes written are its data.
	File(name string, size int64) error
	// Close writes the TOC, the footer and whatever else closes the blob to
	// w, whose first byte lies at t.Payload in the blob; it returns the
	// digest of the TOC JSON and the layer descriptor annotations.
	Close(w io.Writer, t *Tail) (toc v1.Hash, annotations map[string]string, err error)
}

// Tail is what the encoder knows when the payload is written.
type Tail struct {
	// Payload is the size of the compressed segments: the offset in the
	// blob at which the Closer's bytes start.
	Payload int64
	// Prioritized is the number of compressed bytes from the start of the
	// blob that hold the prioritized entries: 0 when no prioritized entry
	// was found, Payload when every entry with data is prioritized.
	Prioritized int64
	// TOC lists the entries of the layer in stream order, a regular file of
	// several chunks followed by one "chunk" entry for each chunk after the
	// first, with offsets and digests filled in.
	TOC []*TOCEntry
	// Stream is the uncompressed tar stream written so far. Bytes the
	// Closer adds to the tar (the eStargz TOC entry) go to it too: they
	// belong to the DiffID and the uncompressed size.
	Stream *Stream
}

// TOCEntry is one entry of a lazy layer's TOC as the encoder fills it:
// estargz's entry, which both formats write as it is, and the fields that
// containers/storage reads in a zstd:chunked TOC beyond it, with their JSON
// names. A format's Closer writes the fields its TOC has.
type TOCEntry struct {
	estargz.TOCEntry
	// AccessTime and ChangeTime are the entry's access and change times in
	// RFC 3339, "" when the tar header has none.
	AccessTime string `json:"accesstime,omitempty"`
	ChangeTime string `json:"changetime,omitempty"`
	// EndOffset is the offset in the blob at which the compressed data of
	// the entry ends: for a regular file, the end of the segment that holds
	// its last chunk; for a chunk, the end of its own segment; 0 for an
	// entry without data.
	EndOffset int64 `json:"endOffset,omitempty"`
}

// Stream hashes and counts the uncompressed tar stream of a layer: its
// digest is the layer's DiffID. The zero value is not ready; use NewStream.
type Stream struct {
	h hash.Hash
	n int64
}

// NewStream returns an empty Stream.
func NewStream() *Stream { return &Stream{h: sha256.New()} }

// Write adds p to the stream. It never fails.
func (s *Stream) Write(p []byte) (int, error) {
	s.h.Write(p)
	s.n += int64(len(p))
	return len(p), nil
}

// Size is the number of bytes written.
func (s *Stream) Size() int64 { return s.n }

// Digest is the sha256 digest of the bytes written.
func (s *Stream) Digest() v1.Hash { return SHA256Hash(s.h.Sum(nil)) }

// SHA256Hash turns a sha256 sum into a v1.Hash.
func SHA256Hash(sum []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum)}
}
