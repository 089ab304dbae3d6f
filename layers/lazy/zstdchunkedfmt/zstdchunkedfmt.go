package zstdchunkedfmt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"strconv"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/vbatts/tar-split/tar/storage"

	"github.com/coldstart-dev/coldstart/layers/lazy"
)

// Layer descriptor annotations that estargz's zstdchunked package has no
// constant for.
const (
	// ManifestChecksumAnnotation is the digest of the compressed TOC, in
	// the key of containers/storage 1.48 and later (earlier versions read
	// zstdchunked.ManifestChecksumAnnotation).
	ManifestChecksumAnnotation = "io.github.containers.zstd-chunked.manifest-checksum"
	// ManifestPositionAnnotation is "OFFSET:LENGTH:UNCOMPRESSED:TYPE" of the
	// compressed TOC, in the key of containers/storage 1.48 and later
	// (earlier versions read zstdchunked.ManifestPositionAnnotation).
	ManifestPositionAnnotation = "io.github.containers.zstd-chunked.manifest-position"
	// TarSplitPositionAnnotation is "OFFSET:LENGTH:UNCOMPRESSED" of the
	// compressed tar-split.
	TarSplitPositionAnnotation = "io.github.containers.zstd-chunked.tarsplit-position"
	// PrefetchSizeAnnotation is the snapshot label that stargz-snapshotter
	// takes as the number of bytes to prefetch from the start of a layer
	// without a landmark (containerd passes layer annotations with its
	// prefix as snapshot labels): the compressed bytes that hold the
	// prioritized files, 0 when none.
	PrefetchSizeAnnotation = "containerd.io/snapshot/remote/stargz.prefetch"
)

// PartialPullAnnotations are the annotations containers/storage reads to
// pull a zstd:chunked layer partially: the manifest checksum and position,
// in the keys of containers/storage 1.48 and later and in those of earlier
// versions.
var PartialPullAnnotations = []string{
	ManifestChecksumAnnotation, ManifestPositionAnnotation,
	zstdchunked.ManifestChecksumAnnotation, zstdchunked.ManifestPositionAnnotation,
}

const (
	// manifestTypeCRFS is the footer's manifest type: a TOC of estargz's
	// shape.
	manifestTypeCRFS = 1
	// maxMetadata bounds the TOC and tar-split that Annotations reads into
	// memory.
	maxMetadata = 1 << 30
)

var (
	skippableFrameMagic = []byte{0x50, 0x2a, 0x4d, 0x18}
	// footerMagic ends the footer; estargz's zstdchunked reader checks it.
	footerMagic = []byte{0x47, 0x6e, 0x55, 0x6c, 0x49, 0x6e, 0x55, 0x78}
)

// Format is zstd:chunked. The zero value, for containers/storage, is ready
// to use.
type Format struct {
	// Containerd selects the flavour that stargz-snapshotter mounts lazily:
	// the descriptor carries the stargz TOC digest, which the snapshotter
	// verifies the TOC against, instead of containers/storage's manifest
	// checksum (containers/storage refuses a layer that has both); and the
	// TOC, not the tar stream, holds a prefetch landmark entry, so the
	// snapshotter prefetches exactly the prioritized files, or nothing,
	// while the tar stream, and so the layer's DiffID, stays what the
	// encoder was given. podman pulls this flavour whole.
	Containerd bool
}

var _ lazy.Format = Format{}

// String returns "zstd:chunked", or "zstd:chunked-containerd" for the
// containerd flavour.
func (f Format) String() string {
	if f.Containerd {
		return "zstd:chunked-containerd"
	}
	return "zstd:chunked"
}

// Version returns "+zstd:chunked.2" (2: no prefetch landmark), or
// "+zstd:chunked-containerd.1".
func (f Format) Version() string {
	if f.Containerd {
		return "+zstd:chunked-containerd.1"
	}
	return "+zstd:chunked.2"
}

// MediaType is the OCI zstd layer type: zstd:chunked is a valid zstd stream.
func (Format) MediaType() types.MediaType { return types.OCILayerZStd }

// Layout: no landmark in the tar stream (the containerd flavour has one in
// its TOC); the payload is the whole tar.
func (f Format) Layout() lazy.Layout {
	return lazy.Layout{EndArchive: true, TOCLandmark: f.Containerd}
}

// NewCompressor returns a zstd compressor at a level of zstd's 1-22 scale.
func (Format) NewCompressor(level int) lazy.Compressor { return &compressor{level: level} }

// NewCloser returns the closer of one layer: it records the tar-split and
// compresses it and the TOC at a level of zstd's 1-22 scale.
func (f Format) NewCloser(level int) lazy.Closer {
	if f.Containerd {
		return &snapshotterCloser{level: level}
	}
	return &closer{level: level, crc: crc64.New(storage.CRCTable)}
}

// newZstd makes a zstd encoder whose output depends only on its input and
// level: with concurrency 1 it encodes synchronously, in one goroutine.
func newZstd(w io.Writer, level int) (*zstd.Encoder, error) {
	return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
}

// compressor makes zstd frames with one reused encoder.
type compressor struct {
	level int
	zs    *zstd.Encoder
}

func (c *compressor) Writer(w io.Writer) (io.WriteCloser, error) {
	if c.zs == nil {
		zs, err := newZstd(w, c.level)
		if err != nil {
			return nil, err
		}
		c.zs = zs
		return zs, nil
	}
	c.zs.Reset(w)
	return c.zs, nil
}

// closer records the tar-split while the stream goes by: the bytes between
// file data become segment entries, each file's data a file entry with its
// name, size and CRC-64. Then it writes the TOC, the tar-split and the
// footer, each in a skippable frame.
type closer struct {
	level   int
	ts      bytes.Buffer  // the compressed tar-split
	zw      *zstd.Encoder // compresses into ts
	tsCount sizeWriter    // counts the tar-split's JSON into zw
	packer  storage.Packer
	raw     []byte // stream bytes since the last file's data
	file    storage.Entry
	left    int64 // data bytes of file still to come
	crc     hash.Hash64
	err     error
}

func (c *closer) start() error {
	if c.packer == nil && c.err == nil {
		c.zw, c.err = newZstd(&c.ts, c.level)
		c.tsCount.w = c.zw
		c.packer = storage.NewJSONPacker(&c.tsCount)
	}
	return c.err
}

func (c *closer) add(e storage.Entry) error {
	if _, err := c.packer.AddEntry(e); err != nil {
		c.err = fmt.Errorf("writing tar-split: %w", err)
	}
	return c.err
}

func (c *closer) Write(p []byte) (int, error) {
	if err := c.start(); err != nil {
		return 0, err
	}
	n := len(p)
	if c.left > 0 {
		k := min(c.left, int64(len(p)))
		c.crc.Write(p[:k])
		p = p[k:]
		if c.left -= k; c.left == 0 {
			c.file.Payload = c.crc.Sum(nil)
			if err := c.add(c.file); err != nil {
				return 0, err
			}
		}
	}
	c.raw = append(c.raw, p...)
	return n, nil
}

func (c *closer) File(name string, size int64) error {
	if err := c.start(); err != nil {
		return err
	}
	if c.left > 0 {
		return fmt.Errorf("internal error: file %q starts %d bytes before the end of %q", name, c.left, c.file.GetName())
	}
	if err := c.flush(); err != nil {
		return err
	}
	c.file = storage.Entry{Type: storage.FileType, Size: size}
	c.file.SetName(name)
	if size == 0 {
		return c.add(c.file)
	}
	c.left = size
	c.crc.Reset()
	return nil
}

// flush adds the stream bytes since the last file's data as a segment.
func (c *closer) flush() error {
	if len(c.raw) == 0 {
		return nil
	}
	if err := c.add(storage.Entry{Type: storage.SegmentType, Payload: c.raw}); err != nil {
		return err
	}
	c.raw = c.raw[:0]
	return nil
}

func (c *closer) Close(w io.Writer, t *lazy.Tail) (v1.Hash, map[string]string, error) {
	if err := c.start(); err != nil {
		return v1.Hash{}, nil, err
	}
	if c.left > 0 {
		return v1.Hash{}, nil, fmt.Errorf("internal error: the stream ends %d bytes before the end of %q", c.left, c.file.GetName())
	}
	if err := c.flush(); err != nil {
		return v1.Hash{}, nil, err
	}
	if err := c.zw.Close(); err != nil {
		return v1.Hash{}, nil, fmt.Errorf("writing tar-split: %w", err)
	}
	tsDigest := sha256.Sum256(c.ts.Bytes())
	tocJSON, err := marshalTOC(t.TOC, lazy.SHA256Hash(tsDigest[:]).String())
	if err != nil {
		return v1.Hash{}, nil, fmt.Errorf("encoding the TOC: %w", err)
	}
	ctoc, err := compressTOC(tocJSON, c.level)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	pos := position{
		tocOff:       t.Payload + 8,
		tocLen:       int64(ctoc.Len()),
		tocJSONLen:   int64(len(tocJSON)),
		manifestType: manifestTypeCRFS,
		checksum:     sha256.Sum256(ctoc.Bytes()),
		tarSplitLen:  int64(c.ts.Len()),
		tarSplitJSON: c.tsCount.n,
		uncompressed: t.Stream.Size(),
		hasTarSplit:  true,
	}
	pos.tarSplitOff = pos.tocOff + pos.tocLen + 8
	if err := writeTail(w, ctoc.Bytes(), c.ts.Bytes(), footer(pos)); err != nil {
		return v1.Hash{}, nil, err
	}
	sum := sha256.Sum256(tocJSON)
	a := pos.annotations()
	a[PrefetchSizeAnnotation] = strconv.FormatInt(t.Prioritized, 10)
	return lazy.SHA256Hash(sum[:]), a, nil
}

// compressTOC compresses the TOC JSON into one zstd frame.
func compressTOC(tocJSON []byte, level int) (*bytes.Buffer, error) {
	var ctoc bytes.Buffer
	zw, err := newZstd(&ctoc, level)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tocJSON); err != nil {
		return nil, fmt.Errorf("compressing the TOC: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing the TOC: %w", err)
	}
	return &ctoc, nil
}

// footer is the last frame's content: where the TOC is, its lengths, its
// type and the magic.
func footer(pos position) []byte {
	f := make([]byte, zstdchunked.FooterSize)
	binary.LittleEndian.PutUint64(f[0:], uint64(pos.tocOff))
	binary.LittleEndian.PutUint64(f[8:], uint64(pos.tocLen))
	binary.LittleEndian.PutUint64(f[16:], uint64(pos.tocJSONLen))
	binary.LittleEndian.PutUint64(f[24:], manifestTypeCRFS)
	copy(f[32:], footerMagic)
	return f
}

// SkippableFrameHeader is the header of a zstd skippable frame whose
// content is n bytes long: decompressors skip the frame whole.
func SkippableFrameHeader(n uint32) []byte {
	return binary.LittleEndian.AppendUint32(bytes.Clone(skippableFrameMagic), n)
}

// writeTail writes each frame as a zstd skippable frame.
func writeTail(w io.Writer, frames ...[]byte) error {
	var tail bytes.Buffer
	for _, frame := range frames {
		tail.Write(SkippableFrameHeader(uint32(len(frame))))
		tail.Write(frame)
	}
	_, err := w.Write(tail.Bytes())
	return err
}

// snapshotterCloser ends a layer of the containerd flavour: a TOC of
// estargz's own shape (stargz-snapshotter reads no more of an entry) and
// the footer; no tar-split, which only containers/storage reads.
type snapshotterCloser struct{ level int }

func (c *snapshotterCloser) Write(p []byte) (int, error)        { return len(p), nil }
func (c *snapshotterCloser) File(name string, size int64) error { return nil }

func (c *snapshotterCloser) Close(w io.Writer, t *lazy.Tail) (v1.Hash, map[string]string, error) {
	entries := make([]*estargz.TOCEntry, 0, len(t.TOC))
	for _, e := range t.TOC {
		entries = append(entries, &e.TOCEntry)
	}
	tocJSON, err := json.Marshal(&estargz.JTOC{Version: 1, Entries: entries})
	if err != nil {
		return v1.Hash{}, nil, fmt.Errorf("encoding the TOC: %w", err)
	}
	ctoc, err := compressTOC(tocJSON, c.level)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	pos := position{tocOff: t.Payload + 8, tocLen: int64(ctoc.Len()), tocJSONLen: int64(len(tocJSON))}
	if err := writeTail(w, ctoc.Bytes(), footer(pos)); err != nil {
		return v1.Hash{}, nil, err
	}
	sum := sha256.Sum256(tocJSON)
	toc := lazy.SHA256Hash(sum[:])
	return toc, containerdAnnotations(toc, t.Stream.Size()), nil
}

// position is where a zstd:chunked blob keeps its metadata, as its
// annotations record it.
type position struct {
	tocOff, tocLen, tocJSONLen int64
	manifestType               uint64
	checksum                   [sha256.Size]byte // of the compressed TOC
	hasTarSplit                bool
	tarSplitOff, tarSplitLen   int64
	tarSplitJSON               int64
	uncompressed               int64 // the tar stream's size
}

// annotations are the annotations of a blob with metadata at p.
func (p position) annotations() map[string]string {
	checksum := lazy.SHA256Hash(p.checksum[:]).String()
	manifest := fmt.Sprintf("%d:%d:%d:%d", p.tocOff, p.tocLen, p.tocJSONLen, p.manifestType)
	a := map[string]string{
		ManifestChecksumAnnotation:              checksum,
		ManifestPositionAnnotation:              manifest,
		zstdchunked.ManifestChecksumAnnotation:  checksum,
		zstdchunked.ManifestPositionAnnotation:  manifest,
		estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(p.uncompressed, 10),
	}
	if p.hasTarSplit {
		a[TarSplitPositionAnnotation] = fmt.Sprintf("%d:%d:%d", p.tarSplitOff, p.tarSplitLen, p.tarSplitJSON)
	}
	return a
}

// containerdAnnotations are the annotations of the containerd flavour: the
// digest of the TOC JSON, which stargz-snapshotter verifies the TOC
// against, and the uncompressed size.
func containerdAnnotations(toc v1.Hash, uncompressed int64) map[string]string {
	return map[string]string{
		estargz.TOCJSONDigestAnnotation:         toc.String(),
		estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(uncompressed, 10),
	}
}

// sizeWriter counts the bytes written through it.
type sizeWriter struct {
	w io.Writer
	n int64
}

func (s *sizeWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}
