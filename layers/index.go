package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/internal/funcopt"
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Compression is the compression of a layer blob, as sniffed from its bytes.
type Compression string

// The compressions this package reads.
const (
	Uncompressed Compression = "none"
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
)

// LazyFormat says whether a layer can be pulled lazily, and how.
type LazyFormat string

// The lazy formats this package recognizes.
const (
	NotLazy     LazyFormat = ""
	EStargz     LazyFormat = "estargz"
	ZstdChunked LazyFormat = "zstd:chunked"
)

// Names of the special entries that eStargz adds to a layer. They are part of
// the tar stream but not of the container's filesystem: Index records them in
// Index.Special and leaves them out of Entries.
const (
	TOCName                = estargz.TOCTarName
	PrefetchLandmark       = estargz.PrefetchLandmark
	NoPrefetchLandmark     = estargz.NoPrefetchLandmark
	whiteoutPrefix         = ".wh."
	whiteoutMetaPrefix     = ".wh..wh."
	whiteoutOpaqueDirName  = ".wh..wh..opq"
	tarBlockSize           = 512
	defaultMaxEntries      = DefaultMaxEntries
	defaultMaxSize         = DefaultMaxSize
	sniffLen               = 6
	compressedTailCapacity = 64
)

// Default limits of IndexLayer and IndexReader. A real layer stays far
// below both; a decompression bomb or a tar of millions of empty files does
// not, and is stopped with ErrLayerTooLarge or ErrTooManyEntries.
const (
	DefaultMaxEntries       = 4_000_000
	DefaultMaxSize    int64 = 32 << 30
)

// EntryType is the type of an entry in a layer.
type EntryType uint8

// Entry types. Whiteout and Opaque are the OCI whiteout markers: they carry
// the path they delete (Whiteout) or the directory they make opaque (Opaque).
const (
	TypeReg EntryType = iota + 1
	TypeDir
	TypeSymlink
	TypeHardlink
	TypeChar
	TypeBlock
	TypeFIFO
	TypeWhiteout
	TypeOpaque
)

var typeNames = map[EntryType]string{
	TypeReg: "file", TypeDir: "dir", TypeSymlink: "symlink", TypeHardlink: "hardlink",
	TypeChar: "char", TypeBlock: "block", TypeFIFO: "fifo", TypeWhiteout: "whiteout", TypeOpaque: "opaque",
}

func (t EntryType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// IsMarker reports whether t is a whiteout or opaque marker rather than a
// filesystem object.
func (t EntryType) IsMarker() bool { return t == TypeWhiteout || t == TypeOpaque }

// Entry is one tar entry of a layer.
type Entry struct {
	// Path is the cleaned path relative to the root, without a leading "/"
	// or "./"; the root directory itself is ".". For a whiteout it is the
	// path deleted; for an opaque marker, the directory made opaque.
	Path string
	// Name is the name as written in the tar header.
	Name string
	Type EntryType
	// Mode holds the permission bits and setuid, setgid and sticky bits.
	Mode     int64
	UID, GID int
	// Size is the content size of a regular file; for a hard link, the size
	// of the file it links to.
	Size int64
	// Linkname is a symlink's target as written, or a hard link's target as a
	// cleaned path.
	Linkname           string
	Devmajor, Devminor int64
	ModTime            time.Time
	// Xattrs holds the extended attributes (PAX SCHILY.xattr.* records).
	Xattrs map[string]string
	// PAX holds the PAX records that are neither xattrs nor standard header
	// fields.
	PAX map[string]string
	// Digest is the sha256 of a regular file's content; for a hard link, of
	// the content it links to when the target is in the same layer.
	Digest [sha256.Size]byte
	// LinkIndex is, for a hard link whose target is in the same layer, the
	// index in Index.Entries of the entry it links to; otherwise -1.
	LinkIndex int
	// Offset is the offset of the entry's first header block (including any
	// PAX or GNU long-name headers) in the uncompressed tar stream, and
	// DataOffset the offset of its content.
	Offset, DataOffset int64
}

// ContentDigest returns Digest as a v1.Hash; the zero Hash when the entry has
// no known content.
func (e *Entry) ContentDigest() v1.Hash {
	if e.Digest == ([sha256.Size]byte{}) {
		return v1.Hash{}
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(e.Digest[:])}
}

// HasContent reports whether the entry carries file content (a regular file,
// or a hard link resolved inside its layer).
func (e *Entry) HasContent() bool {
	return e.Type == TypeReg || (e.Type == TypeHardlink && e.LinkIndex >= 0)
}

// SameMetadata reports whether two entries describe the same object apart
// from their path: type, mode, owner, content, link target, device numbers,
// xattrs and modification time.
func SameMetadata(a, b *Entry) bool {
	if a.Type != b.Type || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID ||
		a.Size != b.Size || a.Digest != b.Digest || a.Devmajor != b.Devmajor || a.Devminor != b.Devminor ||
		!a.ModTime.Equal(b.ModTime) || !equalMaps(a.Xattrs, b.Xattrs) {
		return false
	}
	if a.Type == TypeSymlink || a.Type == TypeHardlink {
		return a.Linkname == b.Linkname
	}
	return true
}

// SameContent reports whether two entries hold the same file content, or
// are the same kind of non-file object, whatever their mode and owner.
func SameContent(a, b *Entry) bool {
	if a.HasContent() && b.HasContent() {
		return a.Size == b.Size && a.Digest == b.Digest
	}
	if a.Type != b.Type {
		return false
	}
	switch a.Type {
	case TypeSymlink:
		return a.Linkname == b.Linkname
	case TypeChar, TypeBlock:
		return a.Devmajor == b.Devmajor && a.Devminor == b.Devminor
	}
	return true
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Special is an eStargz metadata entry: the TOC or a prefetch landmark.
type Special struct {
	Name   string
	Offset int64
	Size   int64
}

// Index describes one layer: every entry, and the layer's digests and sizes.
// Its memory is proportional to the number of entries.
type Index struct {
	// Digest and Size describe the compressed blob; DiffID and
	// UncompressedSize the uncompressed tar stream.
	Digest           v1.Hash
	Size             int64
	DiffID           v1.Hash
	UncompressedSize int64
	MediaType        types.MediaType
	Compression      Compression
	// Lazy is the lazy-pull format found in the blob's footer and TOC.
	Lazy LazyFormat
	// TOCDigest is the digest of the eStargz TOC JSON. For zstd:chunked it is
	// taken from the descriptor annotation when present.
	TOCDigest v1.Hash
	// Foreign is set for non-distributable layers, which are not read:
	// Entries is empty.
	Foreign bool
	// Entries in tar order, without eStargz metadata entries.
	Entries []Entry
	// Special lists the eStargz metadata entries found in the tar stream.
	Special []Special
	// GlobalHeaders counts the PAX global headers of the tar stream: they
	// are not entries and no rewrite keeps them.
	GlobalHeaders int
}

// Option configures Index and IndexReader.
type Option func(*options) error

type options struct {
	maxEntries int
	maxSize    int64
	logger     *slog.Logger
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{maxEntries: defaultMaxEntries, maxSize: defaultMaxSize, logger: slog.New(slog.DiscardHandler)}
	if _, err := funcopt.Apply(o, opts); err != nil {
		return nil, err
	}
	return o, nil
}

// WithMaxEntries limits the number of tar entries in one layer. The default
// is DefaultMaxEntries (4,000,000).
func WithMaxEntries(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("max entries must be positive, got %d", n)
		}
		o.maxEntries = n
		return nil
	}
}

// WithMaxSize limits the uncompressed size of one layer, which bounds the
// work a decompression bomb can cause. The default is DefaultMaxSize (32 GiB).
func WithMaxSize(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("max layer size must be positive, got %d", n)
		}
		o.maxSize = n
		return nil
	}
}

// WithLogger sets the logger. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.logger = l
		return nil
	}
}

// IsForeign reports whether mt is a non-distributable (foreign) layer type.
func IsForeign(mt types.MediaType) bool {
	switch mt {
	case types.DockerForeignLayer, types.OCIRestrictedLayer, types.OCIUncompressedRestrictedLayer,
		//lint:ignore SA1019 recognized, never written: image-spec deprecates producing these layers
		ocispec.MediaTypeImageLayerNonDistributableZstd:
		return true
	}
	return false
}

// KnownMediaType reports whether mt is a layer media type this package reads.
func KnownMediaType(mt types.MediaType) bool {
	switch mt {
	case types.DockerLayer, types.DockerUncompressedLayer, types.OCILayer, types.OCILayerZStd,
		types.OCIUncompressedLayer:
		return true
	}
	return IsForeign(mt)
}

// IndexLayer scans the compressed blob of l once and returns its index. The
// compression is sniffed from the bytes; the digest and size of the blob are
// checked against l.Digest and l.Size at the end of the stream.
func IndexLayer(ctx context.Context, l v1.Layer, opts ...Option) (*Index, error) {
	dgst, err := l.Digest()
	if err != nil {
		return nil, fmt.Errorf("reading layer digest: %w", err)
	}
	mt, err := l.MediaType()
	if err != nil {
		return nil, fmt.Errorf("layer %s: reading media type: %w", dgst, err)
	}
	if !KnownMediaType(mt) {
		return nil, fmt.Errorf("layer %s: %w %q", dgst, ErrUnknownMediaType, mt)
	}
	size, err := l.Size()
	if err != nil {
		return nil, fmt.Errorf("layer %s: reading size: %w", dgst, err)
	}
	if IsForeign(mt) {
		return &Index{Digest: dgst, Size: size, MediaType: mt, Foreign: true}, nil
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("layer %s: opening blob: %w", dgst, err)
	}
	defer rc.Close()
	vr := &verifyingReader{r: rc, h: sha256.New()}
	idx, err := IndexReader(ctx, vr, opts...)
	if err != nil {
		// A blob that does not match its digest explains any parse error:
		// say so rather than blaming the format.
		if ctx.Err() == nil && !errors.Is(err, ErrLayerTooLarge) && !errors.Is(err, ErrTooManyEntries) {
			_, cerr := io.Copy(io.Discard, vr)
			switch got := vr.digest(); {
			case cerr != nil:
				// The source itself failed (for example it checks digests
				// as it reads): that is the cause.
				return nil, fmt.Errorf("layer %s: reading blob: %w (%v)", dgst, cerr, err)
			case got != dgst:
				return nil, fmt.Errorf("layer %s: %w: blob hashes to %s (%v)", dgst, ErrDigestMismatch, got, err)
			}
		}
		return nil, fmt.Errorf("layer %s: %w", dgst, err)
	}
	if idx.Digest != dgst {
		return nil, fmt.Errorf("layer %s: %w: blob hashes to %s", dgst, ErrDigestMismatch, idx.Digest)
	}
	if idx.Size != size {
		return nil, fmt.Errorf("layer %s: %w: descriptor says %d bytes, blob has %d", dgst, ErrSizeMismatch, size, idx.Size)
	}
	idx.MediaType = mt
	if idx.Lazy == ZstdChunked {
		if d, ok := layerAnnotation(l, estargz.TOCJSONDigestAnnotation); ok {
			if h, err := v1.NewHash(d); err == nil {
				idx.TOCDigest = h
			}
		}
	}
	return idx, nil
}

func layerAnnotation(l v1.Layer, key string) (string, bool) {
	wd, ok := l.(interface {
		Descriptor() (*v1.Descriptor, error)
	})
	if !ok {
		return "", false
	}
	d, err := wd.Descriptor()
	if err != nil || d == nil {
		return "", false
	}
	v, ok := d.Annotations[key]
	return v, ok
}

// verifyingReader hashes what is read through it.
type verifyingReader struct {
	r io.Reader
	h hash.Hash
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	return n, err
}

func (v *verifyingReader) digest() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(v.h.Sum(nil))}
}

// countingReader counts the bytes read through it and checks a size limit.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
	ctx   context.Context
	calls int
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.calls++; c.calls&63 == 0 {
		if err := c.ctx.Err(); err != nil {
			return 0, err
		}
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		return n, fmt.Errorf("%w: more than %d bytes uncompressed", ErrLayerTooLarge, c.limit)
	}
	return n, err
}

// offsetReader counts the bytes read through it.
type offsetReader struct {
	r io.Reader
	n int64
}

func (c *offsetReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// tailWriter keeps the last bytes written to it.
type tailWriter struct {
	buf [compressedTailCapacity]byte
	n   int64
}

func (t *tailWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= len(t.buf) {
		copy(t.buf[:], p[len(p)-len(t.buf):])
	} else {
		copy(t.buf[:], t.buf[len(p):])
		copy(t.buf[len(t.buf)-len(p):], p)
	}
	t.n += int64(n)
	return n, nil
}

func (t *tailWriter) tail() []byte {
	if t.n < int64(len(t.buf)) {
		return t.buf[int64(len(t.buf))-t.n:]
	}
	return t.buf[:]
}

// IndexReader scans a layer blob (gzip, zstd or uncompressed tar) from r and
// returns its index. Digest and Size describe the bytes read from r.
func IndexReader(ctx context.Context, r io.Reader, opts ...Option) (*Index, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	ch := sha256.New()
	tail := &tailWriter{}
	cr := &countingReader{r: r, limit: 1 << 62, ctx: ctx}
	src := io.TeeReader(cr, io.MultiWriter(ch, tail))
	dec, comp, err := Decompress(src)
	if err != nil {
		return nil, err
	}
	defer dec.Close()

	uh := sha256.New()
	ucount := &countingReader{r: dec, limit: o.maxSize, ctx: ctx}
	pipe := newHashPipe(ctx, ucount, uh)
	defer pipe.Close()
	ur := &offsetReader{r: pipe}
	idx := &Index{Compression: comp}
	if err := scanTar(ctx, ur, idx, o); err != nil {
		if comp != Uncompressed && isDecompressError(err) {
			return nil, fmt.Errorf("%w: %s stream: %v", ErrCorrupt, comp, err)
		}
		return nil, err
	}
	// Drain what follows the tar end marker (padding, eStargz footer) so that
	// the digests cover the whole blob.
	if _, err := io.Copy(io.Discard, ur); err != nil {
		if errors.Is(err, ErrLayerTooLarge) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s stream: %v", ErrCorrupt, comp, err)
	}
	pipe.Close()
	if _, err := io.Copy(io.Discard, src); err != nil {
		return nil, fmt.Errorf("reading blob: %w", err)
	}
	idx.DiffID = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uh.Sum(nil))}
	idx.UncompressedSize = ucount.n
	idx.Digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(ch.Sum(nil))}
	idx.Size = cr.n
	detectLazy(idx, tail.tail())
	return idx, nil
}

func isDecompressError(err error) bool {
	if errors.Is(err, ErrLayerTooLarge) || errors.Is(err, ErrUnsafePath) || errors.Is(err, ErrTooManyEntries) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "zstd") || strings.Contains(err.Error(), "flate")
}

func sniff(magic []byte) Compression {
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return Gzip
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd
	case len(magic) >= 4 && magic[1] == 0x2a && magic[2] == 0x4d && magic[3] == 0x18 && magic[0]&0xf0 == 0x50:
		return Zstd // a zstd stream that starts with a skippable frame
	}
	return Uncompressed
}

// detectLazy looks at the blob's footer and special entries.
func detectLazy(idx *Index, tail []byte) {
	hasTOC := false
	for _, s := range idx.Special {
		if s.Name == TOCName {
			hasTOC = true
		}
	}
	switch idx.Compression {
	case Gzip:
		if !hasTOC {
			return
		}
		ra := &tailReaderAt{tail: tail, size: idx.Size}
		if _, _, err := OpenFooter(io.NewSectionReader(ra, 0, idx.Size)); err == nil {
			idx.Lazy = EStargz
		}
	case Zstd:
		if len(tail) < zstdchunked.FooterSize {
			return
		}
		var d zstdchunked.Decompressor
		if _, _, _, err := ParseFooter(&d, tail[len(tail)-zstdchunked.FooterSize:]); err == nil {
			idx.Lazy = ZstdChunked
		}
	}
}

// tailReaderAt serves reads of the last bytes of a blob of the given size.
type tailReaderAt struct {
	tail []byte
	size int64
}

func (t *tailReaderAt) ReadAt(p []byte, off int64) (int, error) {
	start := t.size - int64(len(t.tail))
	if off < start || off > t.size {
		return 0, fmt.Errorf("offset %d outside the blob tail", off)
	}
	n := copy(p, t.tail[off-start:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// scanTar reads the tar stream and fills idx.Entries.
func scanTar(ctx context.Context, pos *offsetReader, idx *Index, o *options) error {
	tr := tar.NewReader(pos)
	fh := sha256.New()
	var buf []byte
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdrOff := roundUp(pos.n)
		hdr, err := tr.Next()
		if err == io.EOF {
			if n == 0 && pos.n == 0 {
				return fmt.Errorf("%w: empty stream", ErrNotTar)
			}
			idx.findLinks()
			return nil
		}
		if err != nil {
			if errors.Is(err, tar.ErrHeader) {
				if n == 0 {
					return fmt.Errorf("%w: %v", ErrNotTar, err)
				}
				return fmt.Errorf("%w: entry %d at offset %d: %v", ErrNotTar, n, hdrOff, err)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: tar stream ends inside entry %d: %v", ErrCorrupt, n, err)
			}
			return fmt.Errorf("reading tar entry %d: %w", n, err)
		}
		if len(idx.Entries)+len(idx.Special) >= o.maxEntries {
			return fmt.Errorf("%w: more than %d", ErrTooManyEntries, o.maxEntries)
		}
		dataOff := pos.n
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			// A PAX global header (git archive writes one) is metadata of
			// the archive, not a file: containerd and Docker skip it, and
			// Go's tar reader does not apply its records to later entries.
			idx.GlobalHeaders++
			continue
		}
		e, special, err := entryFromHeader(hdr)
		if err != nil {
			return err
		}
		e.Offset, e.DataOffset = hdrOff, dataOff
		if special {
			sz := hdr.Size
			if hdr.Name == TOCName {
				// Keep the TOC digest: it is the digest of the TOC JSON.
				fh.Reset()
				if _, err := copyBuf(fh, tr, &buf); err != nil {
					return readErr(hdr.Name, err)
				}
				idx.TOCDigest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(fh.Sum(nil))}
			}
			idx.Special = append(idx.Special, Special{Name: hdr.Name, Offset: hdrOff, Size: sz})
			continue
		}
		switch e.Type {
		case TypeReg:
			fh.Reset()
			nr, err := copyBuf(fh, tr, &buf)
			if err != nil {
				return readErr(hdr.Name, err)
			}
			if nr != hdr.Size {
				return fmt.Errorf("%w: entry %q: header says %d bytes, read %d", ErrCorrupt, hdr.Name, hdr.Size, nr)
			}
			fh.Sum(e.Digest[:0])
		}
		idx.Entries = append(idx.Entries, e)
	}
}

func readErr(name string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: content of %q is truncated", ErrCorrupt, name)
	}
	return fmt.Errorf("reading content of %q: %w", name, err)
}

func copyBuf(w hash.Hash, r io.Reader, buf *[]byte) (int64, error) {
	if *buf == nil {
		*buf = make([]byte, 256<<10)
	}
	return io.CopyBuffer(w, r, *buf)
}

func roundUp(n int64) int64 { return (n + tarBlockSize - 1) &^ (tarBlockSize - 1) }

// CleanPath turns a tar entry name into a path relative to the root. It
// rejects absolute names and names that climb out of the root.
func CleanPath(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: entry name %q contains NUL", ErrUnsafePath, name)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: entry %q has an absolute path", ErrUnsafePath, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: entry %q climbs out of the layer root", ErrUnsafePath, name)
		}
	}
	p := path.Clean(name)
	if p == "" {
		p = "."
	}
	return p, nil
}

var standardPAX = map[string]bool{
	"path": true, "linkpath": true, "size": true, "uid": true, "gid": true, "uname": true,
	"gname": true, "mtime": true, "atime": true, "ctime": true,
}

// entryFromHeader converts a tar header. special is set for eStargz metadata
// entries.
func entryFromHeader(hdr *tar.Header) (Entry, bool, error) {
	e := Entry{Name: hdr.Name, LinkIndex: -1}
	switch hdr.Name {
	case TOCName, PrefetchLandmark, NoPrefetchLandmark:
		if hdr.Typeflag == tar.TypeReg {
			return e, true, nil
		}
	}
	p, err := CleanPath(hdr.Name)
	if err != nil {
		return e, false, err
	}
	e.Path = p
	e.Mode = hdr.Mode & 0o7777
	e.UID, e.GID = hdr.Uid, hdr.Gid
	e.ModTime = hdr.ModTime
	e.Devmajor, e.Devminor = hdr.Devmajor, hdr.Devminor
	for k, v := range hdr.PAXRecords {
		if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if e.Xattrs == nil {
				e.Xattrs = map[string]string{}
			}
			e.Xattrs[x] = v
		} else if !standardPAX[k] {
			if e.PAX == nil {
				e.PAX = map[string]string{}
			}
			e.PAX[k] = v
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		e.Type = TypeReg
		e.Size = hdr.Size
	case tar.TypeDir:
		e.Type = TypeDir
	case tar.TypeSymlink:
		e.Type = TypeSymlink
		e.Linkname = hdr.Linkname
	case tar.TypeLink:
		e.Type = TypeHardlink
		t, err := CleanPath(hdr.Linkname)
		if err != nil {
			return e, false, fmt.Errorf("hard link %q: %w", hdr.Name, err)
		}
		e.Linkname = t
	case tar.TypeChar:
		e.Type = TypeChar
	case tar.TypeBlock:
		e.Type = TypeBlock
	case tar.TypeFifo:
		e.Type = TypeFIFO
	default:
		return e, false, fmt.Errorf("%w: entry %q has unsupported type %q", ErrNotTar, hdr.Name, hdr.Typeflag)
	}
	base := path.Base(p)
	if strings.HasPrefix(base, whiteoutPrefix) {
		dir := path.Dir(p)
		switch {
		case base == whiteoutOpaqueDirName:
			e.Type, e.Path = TypeOpaque, dir
		case strings.HasPrefix(base, whiteoutMetaPrefix):
			// AUFS metadata (.wh..wh.plnk and friends): keep as a plain entry;
			// it is not an OCI whiteout.
		default:
			target := strings.TrimPrefix(base, whiteoutPrefix)
			if target == "" || target == "." || target == ".." {
				return e, false, fmt.Errorf("%w: whiteout %q names no file", ErrUnsafePath, hdr.Name)
			}
			e.Type, e.Path = TypeWhiteout, path.Join(dir, target)
		}
		e.Size = 0
	}
	return e, false, nil
}

// SortedPaths returns the distinct paths of entries, sorted.
func SortedPaths(entries []Entry) []string {
	seen := map[string]bool{}
	var out []string
	for i := range entries {
		if !seen[entries[i].Path] {
			seen[entries[i].Path] = true
			out = append(out, entries[i].Path)
		}
	}
	sort.Strings(out)
	return out
}

// findLinks sets, for every hard link whose target is an earlier file (or
// link) of the layer, LinkIndex, and the target's size and digest; the
// others get LinkIndex -1 and no digest.
func (idx *Index) findLinks() {
	byPath := map[string]int{} // path -> index of the last regular file or hard link entry
	for i := range idx.Entries {
		e := &idx.Entries[i]
		switch e.Type {
		case TypeReg:
			byPath[e.Path] = i
		case TypeHardlink:
			e.LinkIndex, e.Digest = -1, [sha256.Size]byte{}
			if t, ok := byPath[e.Linkname]; ok {
				e.LinkIndex, e.Size, e.Digest = t, idx.Entries[t].Size, idx.Entries[t].Digest
			}
			byPath[e.Path] = i
		default:
			delete(byPath, e.Path)
		}
	}
}
