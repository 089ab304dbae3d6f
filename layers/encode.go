package layers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/coldstart-dev/coldstart/layers/lazy"
	"github.com/coldstart-dev/coldstart/layers/lazy/estargzfmt"
	"github.com/coldstart-dev/coldstart/layers/lazy/zstdchunkedfmt"
)

// Format is the encoding Encode writes.
//
// The zero value is FormatEStargz, the format coldstart writes unless told
// otherwise.
type Format int

// The formats Encode writes.
const (
	// FormatEStargz is gzip-compressed eStargz as stargz-snapshotter reads it:
	// every regular file (and every ChunkSize piece of a large one) starts a
	// gzip member, a stargz.index.json TOC and a 51-byte footer close the
	// blob, and prefetch landmarks mark the start-up files.
	FormatEStargz Format = iota
	// FormatZstdChunked is zstd:chunked as containers/storage reads it: every
	// regular file (or chunk) starts a zstd frame; the TOC, the tar-split
	// metadata and a footer are zstd skippable frames at the end. Prioritized
	// files lead, but no landmark marks where they end: containers/storage
	// (podman, CRI-O) would make a landmark a file in every container.
	FormatZstdChunked
	// FormatGzip is a plain gzip-compressed tar.
	FormatGzip
	// FormatZstd is a plain zstd-compressed tar.
	FormatZstd
	// FormatZstdChunkedContainerd is zstd:chunked as stargz-snapshotter
	// mounts it lazily: FormatZstdChunked's blob, but for the TOC, which has
	// the prefetch landmark entry (the tar stream has none), and the
	// descriptor, which carries the stargz TOC digest instead of
	// containers/storage's manifest checksum (containers/storage refuses a
	// layer with both; podman pulls this one whole). Given a tar whose
	// entries it need not reorder or drop, it keeps the tar stream byte for
	// byte, and so the layer's DiffID: a containerd node that holds the
	// original layer's snapshot reuses it.
	FormatZstdChunkedContainerd
)

var formatNames = [...]string{
	FormatEStargz:     "estargz",
	FormatZstdChunked: "zstd:chunked",
	FormatGzip:        "gzip",
	FormatZstd:        "zstd",

	FormatZstdChunkedContainerd: "zstd:chunked-containerd",
}

// String returns the name ParseFormat accepts: "estargz", "zstd:chunked",
// "gzip", "zstd" or "zstd:chunked-containerd".
func (f Format) String() string {
	if f < 0 || int(f) >= len(formatNames) {
		return fmt.Sprintf("Format(%d)", int(f))
	}
	return formatNames[f]
}

// ParseFormat parses a format name, case-insensitively: "estargz",
// "zstd:chunked" (or "zstdchunked"), "gzip", "zstd" or
// "zstd:chunked-containerd".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "estargz":
		return FormatEStargz, nil
	case "zstd:chunked", "zstdchunked":
		return FormatZstdChunked, nil
	case "gzip":
		return FormatGzip, nil
	case "zstd":
		return FormatZstd, nil
	case "zstd:chunked-containerd":
		return FormatZstdChunkedContainerd, nil
	}
	return 0, fmt.Errorf("unknown layer format %q: want estargz, zstd:chunked, gzip, zstd or zstd:chunked-containerd", s)
}

// MarshalText implements encoding.TextMarshaler.
func (f Format) MarshalText() ([]byte, error) {
	if !f.valid() {
		return nil, fmt.Errorf("unknown layer format %d", int(f))
	}
	return []byte(f.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseFormat.
func (f *Format) UnmarshalText(b []byte) error {
	p, err := ParseFormat(string(b))
	if err != nil {
		return err
	}
	*f = p
	return nil
}

// MediaType is the OCI layer media type of the format.
func (f Format) MediaType() types.MediaType {
	if l := f.lazyFormat(); l != nil {
		return l.MediaType()
	}
	if f == FormatZstd {
		return types.OCILayerZStd
	}
	return types.OCILayer
}

// Lazy reports whether the format can be pulled lazily (it has a TOC).
func (f Format) Lazy() bool { return f.lazyFormat() != nil }

// lazyFormat is the implementation of a lazy format, nil for the plain ones.
func (f Format) lazyFormat() lazy.Format {
	switch f {
	case FormatEStargz:
		return estargzfmt.Format{}
	case FormatZstdChunked:
		return zstdchunkedfmt.Format{}
	case FormatZstdChunkedContainerd:
		return zstdchunkedfmt.Format{Containerd: true}
	}
	return nil
}

func (f Format) valid() bool { return f >= FormatEStargz && f <= FormatZstdChunkedContainerd }

// Zstd says whether f compresses with zstd (levels on zstd's 1-22 scale)
// rather than gzip (1-9).
func (f Format) Zstd() bool {
	return f == FormatZstdChunked || f == FormatZstd || f == FormatZstdChunkedContainerd
}

// MaxLevel is f's strongest compression level: 22 for zstd, 9 for gzip.
func (f Format) MaxLevel() int {
	if f.Zstd() {
		return 22
	}
	return 9
}

// EncoderVersion changes whenever Encode would write other bytes for the
// same input and options in every format; Format.EncoderVersion adds the
// changes of one format. Caches of converted layers include the latter in
// their keys. 2: hard links to a replaced copy of a name keep their content.
const EncoderVersion = "2"

// EncoderVersion is the version of the encoder's output in format f:
// EncoderVersion, followed by the changes of f alone (for the lazy formats,
// their lazy.Format's Version). zstd:chunked "2": no prefetch landmark.
func (f Format) EncoderVersion() string {
	if l := f.lazyFormat(); l != nil {
		return EncoderVersion + l.Version()
	}
	return EncoderVersion
}

// Defaults of EncodeOptions, chosen by measuring size and speed side by side
// in one run (BenchmarkEncode) on a 169 MB tar of Debian's /usr (Python,
// Perl, vim, locales, zoneinfo, sbin), against estargz.Build's defaults
// (stdlib gzip at BestCompression):
//
//	gzip level      5     6     7     8     9
//	size vs ref  +4.7% +3.1% +1.1% +0.4% +0.2%
//	CPU speed-up  15x   14x   9.4x  6.4x  1.1x
//
// Level 7 is the first within 2% of the reference size, with a wide margin
// on speed; level 9 searches so deep it is barely faster than the reference.
// (Measured CPU time: wall time on a 2-core machine shows the same ratios
// when nothing else runs, and the blob is the same.) For zstd,
// level 3 (klauspost's SpeedDefault, containers' default) is 4% larger than
// the gzip reference in zstd:chunked at 9.6x its speed, level 7 is +1.0% at
// 6.2x.
const (
	// DefaultGzipLevel is the compression level of FormatEStargz and
	// FormatGzip when EncodeOptions.Level is 0.
	DefaultGzipLevel = 7
	// DefaultZstdLevel is the zstd level (in zstd's 1-22 scale) of
	// FormatZstdChunked and FormatZstd when EncodeOptions.Level is 0.
	DefaultZstdLevel = 3
	// DefaultChunkSize is the largest piece of a regular file that one
	// gzip member or zstd frame holds in the lazy formats: estargz's default.
	DefaultChunkSize = 4 << 20
	// DefaultEncodeWorkers is the number of compressing goroutines when
	// EncodeOptions.Workers is 0. It is a constant, not GOMAXPROCS, although
	// the output never depends on the number of workers anyway.
	DefaultEncodeWorkers = 4
	// MaxChunkSize bounds EncodeOptions.ChunkSize, so that
	// no piece held in memory grows with the layer.
	MaxChunkSize = 64 << 20
)

// EncodeOptions says how Encode encodes a layer. The zero value writes
// eStargz with the default level, chunk size and workers and no prioritized
// files.
type EncodeOptions struct {
	// Format to write. Default FormatEStargz.
	Format Format

	// Level is the compression level: 1-9 for the gzip formats, zstd's
	// 1-22 for the zstd formats. 0 selects DefaultGzipLevel or
	// DefaultZstdLevel.
	Level int

	// StartupLevel is the compression level of the data a container reads
	// at start (lazy formats only): the prioritized files' chunks (under
	// KeepOrder, their copies) and those of the files named in OnDemand.
	// Every cold start fetches those bytes, and no start fetches the rest,
	// so a stronger level there pays for its time on every start. The same
	// scale as Level; 0 selects Level.
	StartupLevel int

	// OnDemand lists start-up files (names as in Prioritized) that stay
	// where they are, outside the prefetch, because a start reads them in
	// part: their chunks are fetched on demand. Only their compression
	// level (StartupLevel) depends on it. Default none.
	OnDemand []string

	// ChunkSize is the largest number of bytes of one regular file that one
	// gzip member or zstd frame holds (lazy formats only); larger files are
	// split into chunks, each with its own digest in the TOC. 0 selects
	// DefaultChunkSize; at most MaxChunkSize.
	ChunkSize int

	// Prioritized lists tar entry names in the order a container reads them
	// at start-up (lazy formats only). Names are matched as estargz does:
	// "a/b", "/a/b" and "./a/b" are the same entry. Each found entry moves to
	// the front of the layer, in this order, after its parent directories
	// and, for a hard link, after its target. In eStargz a .prefetch.landmark
	// entry follows them, or, when none is found, the layer starts with a
	// .no.prefetch.landmark; zstd:chunked has no landmark. Names absent from
	// the layer are not an error; Encoded.MissingPrioritized lists them.
	// Default none.
	Prioritized []string

	// KeepOrder keeps the input's tar stream byte for byte, and so its
	// DiffID: the chain ID containerd names a layer's snapshot by, which a
	// node that holds the layer from another image reuses
	// (FormatZstdChunkedContainerd only). Prioritized files are then not
	// moved: their data is copied, in the order given (a hard link's
	// target for a link), into a zstd skippable frame that opens the blob.
	// Decompressors skip that frame; the TOC points at the copies, and its
	// prefetch landmark at the frame's end, so stargz-snapshotter
	// prefetches exactly them. The blob grows by their compressed size.
	// When none is found, the layer gets the no-prefetch landmark.
	KeepOrder bool

	// Workers is the number of goroutines that compress. 0 selects
	// DefaultEncodeWorkers. The output bytes do not depend on it.
	Workers int

	// Progress, if set, is called with the number of input tar bytes encoded
	// since the previous call, never concurrently; the calls add up to the
	// size of the input on success.
	Progress func(n int64)
}

// Encoded describes the blob Encode wrote.
type Encoded struct {
	// Format of the blob.
	Format Format
	// Digest and Size of the blob written, as a descriptor needs them.
	Digest v1.Hash
	Size   int64
	// DiffID is the digest of the uncompressed blob (the config's diff_id)
	// and UncompressedSize its length. For the lazy formats this tar differs
	// from the input: entries are reordered and, for eStargz, a landmark
	// added and the TOC appended; under KeepOrder it is the input.
	DiffID           v1.Hash
	UncompressedSize int64
	// TOCDigest is the digest of the TOC JSON, zero for the plain formats.
	TOCDigest v1.Hash
	// MediaType is the layer media type for the descriptor.
	MediaType types.MediaType
	// Annotations go on the layer descriptor; nil for the plain formats.
	// Packages layers/lazy/estargzfmt and layers/lazy/zstdchunkedfmt
	// define them:
	//
	// eStargz: containerd.io/snapshot/stargz/toc.digest and
	// io.containers.estargz.uncompressed-size.
	//
	// zstd:chunked: io.github.containers.zstd-chunked.manifest-checksum,
	// ...manifest-position and ...tarsplit-position as current
	// containers/storage reads them, the io.containers.zstd-chunked.* keys of
	// estargz's zstdchunked package,
	// io.containers.estargz.uncompressed-size, and
	// containerd.io/snapshot/remote/stargz.prefetch: the compressed bytes
	// from the start of the blob that hold the prioritized files (0 when
	// none), which stargz-snapshotter prefetches in place of a landmark. The
	// stargz toc.digest is left out on purpose: containers/storage refuses a
	// layer that carries both it and the zstd:chunked manifest checksum (and
	// without it stargz-snapshotter mounts the layer lazily only when its
	// verification is disabled).
	Annotations map[string]string
	// MissingPrioritized lists the names of EncodeOptions.Prioritized that
	// the layer does not contain, in the order given.
	MissingPrioritized []string
}

// Encode reads the uncompressed layer tar src and writes it to w in the
// format opt selects, returning what a descriptor and the image config need.
//
// The lazy formats are built in parallel from independent gzip members or
// zstd frames, with hashes taken while encoding: the output bytes depend only
// on src and opt (never on Workers, GOMAXPROCS or the machine), no temporary
// file is written, and no more than a few chunks per worker are held in
// memory. src must be a tar archive; compressed input is rejected. Entries
// whose cleaned names repeat are kept once, at the place of the last one, as
// estargz does. Sparse files and PAX global headers are not supported.
//
// Encode honours ctx: when it is cancelled, Encode stops and returns an error
// that wraps ctx.Err(); w may then hold a partial blob.
func Encode(ctx context.Context, src *io.SectionReader, w io.Writer, opt EncodeOptions) (*Encoded, error) {
	o, err := opt.resolve()
	if err != nil {
		return nil, err
	}
	if err := encCheckUncompressed(src); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("encoding layer: %w", err)
	}
	out := &encDigestWriter{w: w, h: sha256.New()}
	var res *Encoded
	switch l := o.Format.lazyFormat(); {
	case l != nil:
		res, err = encodeLazy(ctx, src, out, o, l)
	case o.Format == FormatGzip:
		res, err = encodeGzip(ctx, src, out, o)
	case o.Format == FormatZstd:
		res, err = encodeZstd(ctx, src, out, o)
	}
	if err != nil {
		return nil, fmt.Errorf("encoding layer as %s: %w", o.Format, err)
	}
	res.Format = o.Format
	res.MediaType = o.Format.MediaType()
	res.Size = out.n
	res.Digest = encHash(out.h)
	return res, nil
}

// resolve validates opt and fills in the defaults.
func (opt EncodeOptions) resolve() (EncodeOptions, error) {
	o := opt
	if !o.Format.valid() {
		return o, fmt.Errorf("encode options: unknown format %d", int(o.Format))
	}
	switch {
	case o.Level == 0 && o.Format.Zstd():
		o.Level = DefaultZstdLevel
	case o.Level == 0:
		o.Level = DefaultGzipLevel
	case o.Level < 1 || o.Level > o.Format.MaxLevel():
		return o, fmt.Errorf("encode options: %s level %d out of range 1-%d", o.Format, o.Level, o.Format.MaxLevel())
	}
	switch {
	case o.StartupLevel == 0:
		o.StartupLevel = o.Level
	case o.StartupLevel < 1 || o.StartupLevel > o.Format.MaxLevel():
		return o, fmt.Errorf("encode options: %s start-up level %d out of range 1-%d", o.Format, o.StartupLevel, o.Format.MaxLevel())
	}
	if o.KeepOrder && o.Format != FormatZstdChunkedContainerd {
		return o, fmt.Errorf("encode options: keeping the tar stream's order with prioritized files needs the zstd:chunked-containerd format, not %s", o.Format)
	}
	if o.ChunkSize < 0 || o.ChunkSize > MaxChunkSize {
		return o, fmt.Errorf("encode options: chunk size %d out of range 0-%d", o.ChunkSize, MaxChunkSize)
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.Workers < 0 {
		return o, fmt.Errorf("encode options: negative worker count %d", o.Workers)
	}
	if o.Workers == 0 {
		o.Workers = DefaultEncodeWorkers
	}
	return o, nil
}

// zstdLevel maps the zstd-scale level to klauspost's encoder levels.
func (opt EncodeOptions) zstdLevel() zstd.EncoderLevel {
	return zstd.EncoderLevelFromZstd(opt.Level)
}

// encCheckUncompressed rejects gzip and zstd input: Encode needs the tar.
func encCheckUncompressed(src *io.SectionReader) error {
	var magic [4]byte
	n, err := src.ReadAt(magic[:], 0)
	if err != nil && err != io.EOF {
		return fmt.Errorf("reading layer tar: %w", err)
	}
	switch {
	case n >= 3 && bytes.Equal(magic[:3], []byte{0x1f, 0x8b, 0x08}):
		return fmt.Errorf("%w: the input is gzip-compressed; Encode needs the uncompressed tar", ErrNotTar)
	case n >= 4 && bytes.Equal(magic[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return fmt.Errorf("%w: the input is zstd-compressed; Encode needs the uncompressed tar", ErrNotTar)
	}
	return nil
}

// encDigestWriter counts and hashes what goes to w.
type encDigestWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (d *encDigestWriter) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	d.h.Write(p[:n])
	d.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("writing encoded layer: %w", err)
	}
	return n, nil
}

// encHash turns a finished sha256 into a v1.Hash.
func encHash(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// report passes n input bytes to the Progress callback, if any.
func (opt EncodeOptions) report(n int64) {
	if opt.Progress != nil && n > 0 {
		opt.Progress(n)
	}
}
