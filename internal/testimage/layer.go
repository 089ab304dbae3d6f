package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// Epoch is the modification time every entry gets unless [MTime] is given,
// and the creation time of images built by [Image].
var Epoch = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// Whiteout name prefixes, as defined by the OCI image-spec layer format.
const (
	WhiteoutPrefix = ".wh."
	OpaqueMarker   = ".wh..wh..opq"
)

// Entry is one tar entry: a header and, for regular files, its content.
// Construct it with [Dir], [File], [Symlink] and the other helpers, or fill
// it in by hand; [Layer.Tar] writes it as is.
type Entry struct {
	Header  tar.Header
	Content []byte
}

// EntryOption changes the header of an entry built by one of the helpers.
type EntryOption func(*tar.Header)

// Mode sets the permission bits plus setuid (0o4000), setgid (0o2000) and
// sticky (0o1000), in tar's encoding.
func Mode(mode int64) EntryOption {
	return func(h *tar.Header) { h.Mode = mode }
}

// Owner sets the numeric owner. The default is 0:0.
func Owner(uid, gid int) EntryOption {
	return func(h *tar.Header) { h.Uid, h.Gid = uid, gid }
}

// OwnerNames sets the user and group names. The default is empty.
func OwnerNames(uname, gname string) EntryOption {
	return func(h *tar.Header) { h.Uname, h.Gname = uname, gname }
}

// Xattr adds an extended attribute, written as a PAX "SCHILY.xattr." record.
func Xattr(name, value string) EntryOption {
	return func(h *tar.Header) {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+name] = value
	}
}

// MTime sets the modification time. The default is [Epoch].
func MTime(t time.Time) EntryOption {
	return func(h *tar.Header) { h.ModTime = t }
}

func entry(h tar.Header, content []byte, opts []EntryOption) Entry {
	h.ModTime = Epoch
	h.Format = tar.FormatUnknown
	for _, o := range opts {
		o(&h)
	}
	if h.Typeflag == tar.TypeReg {
		h.Size = int64(len(content))
	}
	return Entry{Header: h, Content: content}
}

// Dir is a directory entry. A trailing "/" is added to the name, as tar
// writers do.
func Dir(name string, mode int64, opts ...EntryOption) Entry {
	if !strings.HasSuffix(name, "/") {
		name += "/"
	}
	return entry(tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}, nil, opts)
}

// File is a regular file with mode 0o644 unless [Mode] says otherwise.
func File(name, content string, opts ...EntryOption) Entry {
	return entry(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, []byte(content), opts)
}

// Symlink is a symbolic link name -> target, mode 0o777.
func Symlink(name, target string, opts ...EntryOption) Entry {
	return entry(tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, nil, opts)
}

// Hardlink is a hard link entry: name becomes another name of target, a
// regular file written earlier (target is an archive path, like name).
func Hardlink(name, target string, opts ...EntryOption) Entry {
	return entry(tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}, nil, opts)
}

// Char is a character device.
func Char(name string, major, minor int64, opts ...EntryOption) Entry {
	return entry(tar.Header{Typeflag: tar.TypeChar, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor}, nil, opts)
}

// Block is a block device.
func Block(name string, major, minor int64, opts ...EntryOption) Entry {
	return entry(tar.Header{Typeflag: tar.TypeBlock, Name: name, Mode: 0o660, Devmajor: major, Devminor: minor}, nil, opts)
}

// FIFO is a named pipe.
func FIFO(name string, opts ...EntryOption) Entry {
	return entry(tar.Header{Typeflag: tar.TypeFifo, Name: name, Mode: 0o644}, nil, opts)
}

// Whiteout deletes name from the layers below: an empty file "DIR/.wh.BASE".
// A "./" or "/" prefix of name is kept.
func Whiteout(name string, opts ...EntryOption) Entry {
	name = strings.TrimSuffix(name, "/")
	dir, base := "", name
	if i := strings.LastIndex(name, "/"); i >= 0 {
		dir, base = name[:i+1], name[i+1:]
	}
	return entry(tar.Header{Typeflag: tar.TypeReg, Name: dir + WhiteoutPrefix + base, Mode: 0o644}, nil, opts)
}

// Opaque hides every child that the layers below have in dir: an empty file
// "DIR/.wh..wh..opq". It does not add an entry for dir itself.
func Opaque(dir string, opts ...EntryOption) Entry {
	dir = strings.TrimSuffix(dir, "/")
	name := OpaqueMarker
	if dir != "" && dir != "." {
		name = dir + "/" + OpaqueMarker
	}
	return entry(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, nil, opts)
}

// Raw is an entry written exactly as given: no default mode or time, and
// Size is not derived from content. Use it for malformed entries.
func Raw(h tar.Header, content []byte) Entry {
	return Entry{Header: h, Content: content}
}

// Layer is a list of tar entries, written in order.
type Layer []Entry

// Option configures [Layer.Tar], [Layer.WriteTar] and [Layer.Compressed].
type Option func(*options) error

type options struct {
	parents   bool
	mediaType types.MediaType
	level     int
}

func makeOptions(opts []Option) (*options, error) {
	o := &options{level: gzip.DefaultCompression}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// WithParents adds a directory entry (mode 0o755, owner 0:0) before every
// entry whose ancestors have not appeared as directories earlier in the
// layer. The default is to write only the given entries.
func WithParents() Option {
	return func(o *options) error {
		o.parents = true
		return nil
	}
}

// WithMediaType sets the media type [Layer.Compressed] reports. The default
// is the OCI layer media type that matches the compression.
func WithMediaType(mt types.MediaType) Option {
	return func(o *options) error {
		o.mediaType = mt
		return nil
	}
}

// WithLevel sets the gzip or zstd compression level. The default is each
// library's default level.
func WithLevel(level int) Option {
	return func(o *options) error {
		o.level = level
		return nil
	}
}

// entries returns the entries to write, with parents added if asked.
func (l Layer) entries(o *options) []Entry {
	if !o.parents {
		return l
	}
	out := make([]Entry, 0, len(l))
	seen := map[string]bool{}
	for _, e := range l {
		clean := strings.TrimPrefix(path.Clean("/"+e.Header.Name), "/")
		for _, a := range ancestors(clean) {
			if !seen[a] {
				seen[a] = true
				out = append(out, Dir(a, 0o755))
			}
		}
		if e.Header.Typeflag == tar.TypeDir {
			seen[clean] = true
		}
		out = append(out, e)
	}
	return out
}

// ancestors returns the proper ancestor directories of a cleaned relative
// path, outermost first: "a/b/c" -> ["a", "a/b"].
func ancestors(p string) []string {
	var out []string
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}

// WriteTar writes the layer as an uncompressed tar stream.
func (l Layer) WriteTar(w io.Writer, opts ...Option) error {
	o, err := makeOptions(opts)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for i, e := range l.entries(o) {
		h := e.Header
		h.PAXRecords = maps.Clone(h.PAXRecords)
		if err := tw.WriteHeader(&h); err != nil {
			return fmt.Errorf("writing entry %d (%s): %w", i, h.Name, err)
		}
		if len(e.Content) > 0 {
			if _, err := tw.Write(e.Content); err != nil {
				return fmt.Errorf("writing entry %d (%s): %w", i, h.Name, err)
			}
		}
	}
	return tw.Close()
}

// Tar returns the layer as uncompressed tar bytes. It panics if an entry
// cannot be written (only possible with [Raw] entries); use [Layer.WriteTar]
// to get the error instead.
func (l Layer) Tar(opts ...Option) []byte {
	var b bytes.Buffer
	if err := l.WriteTar(&b, opts...); err != nil {
		panic("testimage: " + err.Error())
	}
	return b.Bytes()
}

// Compressed returns the layer as a v1.Layer held in memory, compressed with
// c (compression.None, compression.GZip or compression.ZStd). Its bytes are
// deterministic for a given Go toolchain and klauspost/compress version.
func (l Layer) Compressed(c compression.Compression, opts ...Option) (v1.Layer, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	var raw bytes.Buffer
	if err := l.WriteTar(&raw, opts...); err != nil {
		return nil, err
	}
	return compressBytes(raw.Bytes(), c, o)
}

// LayerFromTar returns uncompressed tar bytes as a v1.Layer compressed with
// c. The options [WithMediaType] and [WithLevel] apply.
func LayerFromTar(tarBytes []byte, c compression.Compression, opts ...Option) (v1.Layer, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	return compressBytes(tarBytes, c, o)
}

// Compress returns b compressed with c, deterministically.
func Compress(b []byte, c compression.Compression, opts ...Option) ([]byte, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	return compress(b, c, o)
}

func compress(b []byte, c compression.Compression, o *options) ([]byte, error) {
	var out bytes.Buffer
	switch c {
	case compression.None:
		return b, nil
	case compression.GZip:
		zw, err := gzip.NewWriterLevel(&out, o.level)
		if err != nil {
			return nil, err
		}
		if _, err := zw.Write(b); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
	case compression.ZStd:
		zopts := []zstd.EOption{zstd.WithEncoderConcurrency(1)}
		if o.level != gzip.DefaultCompression {
			zopts = append(zopts, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(o.level)))
		}
		zw, err := zstd.NewWriter(&out, zopts...)
		if err != nil {
			return nil, err
		}
		if _, err := zw.Write(b); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown compression %q", c)
	}
	return out.Bytes(), nil
}

func compressBytes(raw []byte, c compression.Compression, o *options) (v1.Layer, error) {
	data, err := compress(raw, c, o)
	if err != nil {
		return nil, err
	}
	mt := o.mediaType
	if mt == "" {
		switch c {
		case compression.None:
			mt = types.OCIUncompressedLayer
		case compression.GZip:
			mt = types.OCILayer
		case compression.ZStd:
			mt = types.OCILayerZStd
		}
	}
	return &memLayer{
		compressed:   data,
		uncompressed: raw,
		digest:       sha256Hash(data),
		diffID:       sha256Hash(raw),
		mediaType:    mt,
	}, nil
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// memLayer is a v1.Layer whose compressed and uncompressed bytes are in
// memory.
type memLayer struct {
	compressed, uncompressed []byte
	digest, diffID           v1.Hash
	mediaType                types.MediaType
}

var _ v1.Layer = (*memLayer)(nil)

func (l *memLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)     { return int64(len(l.compressed)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) {
	return l.mediaType, nil
}
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.uncompressed)), nil
}

// GlobalHeader is a PAX global extended header named "pax_global_header",
// as git archive writes first: metadata, not a file.
func GlobalHeader(records map[string]string) Entry {
	return Entry{Header: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: maps.Clone(records)}}
}
