package zstdchunkedfmt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"

	"github.com/coldstart-dev/coldstart/layers/lazy"
)

// Annotations reads the footer, the TOC frame and the tar-split frame of
// blob and returns the annotations Encode gives the layer, but for
// PrefetchSizeAnnotation: the blob does not record which files were
// prioritized. toc is not needed. The flavour is the blob's, not f's: a
// TOC with a landmark entry is the containerd flavour's.
func (Format) Annotations(blob *io.SectionReader, _ v1.Hash, uncompressedSize int64) (map[string]string, error) {
	if blob == nil {
		return nil, errors.New("zstd:chunked annotations need the blob")
	}
	size := blob.Size()
	if size < zstdchunked.FooterSize {
		return nil, fmt.Errorf("%w: zstd:chunked blob of %d bytes has no footer", lazy.ErrCorrupt, size)
	}
	footer := make([]byte, zstdchunked.FooterSize)
	if _, err := blob.ReadAt(footer, size-zstdchunked.FooterSize); err != nil {
		return nil, fmt.Errorf("reading the zstd:chunked footer: %w", err)
	}
	var d zstdchunked.Decompressor
	_, tocOff, tocLen, err := d.ParseFooter(footer)
	if err != nil {
		return nil, fmt.Errorf("%w: zstd:chunked footer: %v", lazy.ErrCorrupt, err)
	}
	if tocOff < 8 || tocLen <= 0 || tocLen > maxMetadata || tocOff+tocLen > size-zstdchunked.FooterSize {
		return nil, fmt.Errorf("%w: zstd:chunked footer puts the TOC at %d+%d in a %d-byte blob", lazy.ErrCorrupt, tocOff, tocLen, size)
	}
	ctoc := make([]byte, tocLen)
	if _, err := blob.ReadAt(ctoc, tocOff); err != nil {
		return nil, fmt.Errorf("reading the zstd:chunked TOC: %w", err)
	}
	tocJSON, err := unzstd(ctoc)
	if err != nil {
		return nil, fmt.Errorf("%w: zstd:chunked TOC: %v", lazy.ErrCorrupt, err)
	}
	tocJSONLen := int64(len(tocJSON))
	if hasLandmark(tocJSON) {
		// Only the containerd flavour's TOC has a landmark entry.
		sum := sha256.Sum256(tocJSON)
		return containerdAnnotations(lazy.SHA256Hash(sum[:]), uncompressedSize), nil
	}
	pos := position{
		tocOff:       tocOff,
		tocLen:       tocLen,
		tocJSONLen:   tocJSONLen,
		manifestType: binary.LittleEndian.Uint64(footer[24:32]),
		checksum:     sha256.Sum256(ctoc),
		uncompressed: uncompressedSize,
	}
	// The tar-split, when there is one, is the skippable frame right after
	// the TOC's.
	hdr := make([]byte, 8)
	next := tocOff + tocLen
	if next+8 <= size-zstdchunked.FooterSize {
		if _, err := blob.ReadAt(hdr, next); err != nil {
			return nil, fmt.Errorf("reading the zstd:chunked tar-split frame: %w", err)
		}
		n := int64(binary.LittleEndian.Uint32(hdr[4:]))
		if bytes.Equal(hdr[:4], skippableFrameMagic) && n > 0 && n <= maxMetadata && next+8+n <= size-zstdchunked.FooterSize-8 {
			ts := make([]byte, n)
			if _, err := blob.ReadAt(ts, next+8); err != nil {
				return nil, fmt.Errorf("reading the zstd:chunked tar-split: %w", err)
			}
			tsLen, err := zstdLen(ts)
			if err != nil {
				return nil, fmt.Errorf("%w: zstd:chunked tar-split: %v", lazy.ErrCorrupt, err)
			}
			pos.hasTarSplit = true
			pos.tarSplitOff, pos.tarSplitLen, pos.tarSplitJSON = next+8, n, tsLen
		}
	}
	return pos.annotations(), nil
}

// unzstd decompresses a zstd stream of metadata.
func unzstd(b []byte) ([]byte, error) {
	var out bytes.Buffer
	_, err := decodeMetadata(b, &out)
	return out.Bytes(), err
}

// hasLandmark says whether a TOC has an entry for a prefetch landmark.
func hasLandmark(tocJSON []byte) bool {
	var t struct {
		Entries []struct {
			Name string `json:"name"`
		} `json:"entries"`
	}
	if json.Unmarshal(tocJSON, &t) != nil {
		return false
	}
	for _, e := range t.Entries {
		if e.Name == estargz.PrefetchLandmark || e.Name == estargz.NoPrefetchLandmark {
			return true
		}
	}
	return false
}

// zstdLen returns the decompressed length of a zstd stream.
func zstdLen(b []byte) (int64, error) { return decodeMetadata(b, io.Discard) }

// decodeMetadata decompresses a zstd stream of metadata into w, at most
// maxMetadata bytes, and returns their number.
func decodeMetadata(b []byte, w io.Writer) (int64, error) {
	zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	n, err := io.Copy(w, io.LimitReader(zr, maxMetadata+1))
	if err != nil {
		return 0, err
	}
	if n > maxMetadata {
		return 0, fmt.Errorf("more than %d bytes decompressed", maxMetadata)
	}
	return n, nil
}
