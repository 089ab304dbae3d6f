package estargzfmt

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/coldstart-dev/coldstart/layers/lazy"
)

// Format is eStargz. The zero value is ready to use.
type Format struct{}

var _ lazy.Format = Format{}

// String returns "estargz".
func (Format) String() string { return "estargz" }

// Version returns "": eStargz output has changed only with the encoder's
// shared version so far.
func (Format) Version() string { return "" }

// MediaType is the OCI gzip layer type: eStargz is a valid gzip stream.
func (Format) MediaType() types.MediaType { return types.OCILayer }

// Layout: landmarks; the TOC entry ends the archive.
func (Format) Layout() lazy.Layout { return lazy.Layout{Landmark: true} }

// NewCompressor returns a gzip compressor at level 1-9.
func (Format) NewCompressor(level int) lazy.Compressor { return &compressor{level: level} }

// NewCloser returns the closer of one layer; gzip level 1-9 compresses the
// TOC.
func (Format) NewCloser(level int) lazy.Closer { return &closer{level: level} }

// Annotations returns the TOC digest and the uncompressed size: eStargz
// needs nothing else, and blob may be nil.
func (Format) Annotations(_ *io.SectionReader, toc v1.Hash, uncompressedSize int64) (map[string]string, error) {
	if toc.Hex == "" {
		return nil, fmt.Errorf("%w: eStargz layer without a TOC", lazy.ErrCorrupt)
	}
	return annotations(toc, uncompressedSize), nil
}

func annotations(toc v1.Hash, uncompressedSize int64) map[string]string {
	return map[string]string{
		estargz.TOCJSONDigestAnnotation:         toc.String(),
		estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(uncompressedSize, 10),
	}
}

// compressor makes gzip members with one reused writer.
type compressor struct {
	level int
	gz    *gzip.Writer
}

func (c *compressor) Writer(w io.Writer) (io.WriteCloser, error) {
	if c.gz == nil {
		gz, err := gzip.NewWriterLevel(w, c.level)
		if err != nil {
			return nil, err
		}
		c.gz = gz
		return gz, nil
	}
	c.gz.Reset(w)
	return c.gz, nil
}

// closer writes the TOC member and the footer. It needs nothing from the
// stream.
type closer struct {
	level int
}

func (*closer) Write(p []byte) (int, error)        { return len(p), nil }
func (*closer) File(name string, size int64) error { return nil }

func (c *closer) Close(w io.Writer, t *lazy.Tail) (v1.Hash, map[string]string, error) {
	var entries []*estargz.TOCEntry // nil, "null", as t.TOC is
	if t.TOC != nil {
		entries = make([]*estargz.TOCEntry, 0, len(t.TOC))
	}
	for _, e := range t.TOC {
		entries = append(entries, &e.TOCEntry)
	}
	tocJSON, err := json.Marshal(&estargz.JTOC{Version: 1, Entries: entries})
	if err != nil {
		return v1.Hash{}, nil, fmt.Errorf("encoding the TOC: %w", err)
	}
	// The TOC is the tar's last entry, in a gzip member of its own; closing
	// the tar writer ends the archive.
	var member bytes.Buffer
	gz, err := gzip.NewWriterLevel(&member, c.level)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	tw := tar.NewWriter(io.MultiWriter(gz, t.Stream))
	if err := tw.WriteHeader(&tar.Header{
		Name:     estargz.TOCTarName,
		Typeflag: tar.TypeReg,
		Size:     int64(len(tocJSON)),
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatUSTAR,
	}); err != nil {
		return v1.Hash{}, nil, fmt.Errorf("writing the TOC: %w", err)
	}
	if _, err := tw.Write(tocJSON); err != nil {
		return v1.Hash{}, nil, fmt.Errorf("writing the TOC: %w", err)
	}
	if err := tw.Close(); err != nil {
		return v1.Hash{}, nil, fmt.Errorf("writing the TOC: %w", err)
	}
	if err := gz.Close(); err != nil {
		return v1.Hash{}, nil, fmt.Errorf("writing the TOC: %w", err)
	}
	// The footer is an empty gzip member whose extra field points at the
	// TOC member: subfield "SG", 22 bytes of "%016x" offset and "STARGZ".
	extra := []byte{'S', 'G', 0, 0}
	binary.LittleEndian.PutUint16(extra[2:], 16+6)
	extra = fmt.Appendf(extra, "%016xSTARGZ", t.Payload)
	member.Write(estargz.CreateGzipFooter(extra)) // estargz.FooterSize bytes
	if _, err := w.Write(member.Bytes()); err != nil {
		return v1.Hash{}, nil, err
	}
	sum := sha256.Sum256(tocJSON)
	toc := lazy.SHA256Hash(sum[:])
	return toc, annotations(toc, t.Stream.Size()), nil
}
