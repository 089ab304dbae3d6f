package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"strconv"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/vbatts/tar-split/tar/storage"
)

// Annotation keys that current containers/storage reads for zstd:chunked
// (estargz's zstdchunked package still writes the older io.containers.* ones).
const (
	encZstdManifestChecksum = "io.github.containers.zstd-chunked.manifest-checksum"
	encZstdManifestPosition = "io.github.containers.zstd-chunked.manifest-position"
	encZstdTarSplitPosition = "io.github.containers.zstd-chunked.tarsplit-position"
	encZstdManifestTypeCRFS = 1
	// encStargzPrefetch is the snapshot label stargz-snapshotter takes as the
	// number of bytes to prefetch from the start of a layer without a
	// landmark; containerd passes layer annotations with its prefix as
	// snapshot labels.
	encStargzPrefetch = "containerd.io/snapshot/remote/stargz.prefetch"
)

var (
	encSkippableFrameMagic = []byte{0x50, 0x2a, 0x4d, 0x18}
	// encZstdChunkedMagic is the footer magic estargz's zstdchunked reader checks.
	encZstdChunkedMagic = []byte{0x47, 0x6e, 0x55, 0x6c, 0x49, 0x6e, 0x55, 0x78}
)

// encodeLazy writes eStargz or zstd:chunked.
func encodeLazy(ctx context.Context, src *io.SectionReader, out io.Writer, opt EncodeOptions) (*Encoded, error) {
	entries, err := encIndexTar(ctx, src)
	if err != nil {
		return nil, err
	}
	p := encMakePlan(entries, opt)
	zstdChunked := opt.Format == FormatZstdChunked

	// Compress the segments in parallel; meanwhile hash the uncompressed
	// stream (and, for zstd:chunked, write the tar-split) sequentially.
	segOff := make([]int64, len(p.segs)+1)
	var written int64
	ordered := encSizeWriter{w: out}
	produce := func(ctx context.Context, send func(*encJob) error) error {
		for first := 0; first < len(p.segs); {
			j := &encJob{run: p.compress, first: first}
			var size int64
			for first < len(p.segs) && (size < encJobTarget || j.count == 0) {
				size += p.segs[first].size
				j.input += p.segs[first].input
				first++
				j.count++
			}
			if err := send(j); err != nil {
				return err
			}
		}
		return nil
	}
	emit := func(j *encJob) error {
		for k, n := range j.sizes {
			segOff[j.first+k] = written
			written += n
		}
		_, err := ordered.Write(j.out.Bytes())
		return err
	}
	h := &encHasher{src: src, plan: p, diff: sha256.New(), fileDigest: map[int]string{}}
	if zstdChunked {
		h.tarSplit = new(bytes.Buffer)
	}
	if err := encPipeline(ctx, opt, src, produce, emit, func(ctx context.Context) error {
		return h.run(ctx, opt)
	}); err != nil {
		return nil, err
	}
	if written != ordered.n {
		return nil, fmt.Errorf("internal error: %d bytes written, %d accounted", ordered.n, written)
	}
	segOff[len(p.segs)] = written
	opt.report(src.Size() - encPlanInput(p))

	// Fill in offsets and digests.
	for i, te := range p.toc {
		if s := p.tocSeg[i]; s >= 0 {
			te.Offset = segOff[s]
			te.ChunkDigest = p.chunkDigest[i]
			if zstdChunked {
				te.EndOffset = segOff[s+1]
			}
			if te.Type == "reg" {
				te.Digest = te.ChunkDigest
				if d, ok := h.fileDigest[i]; ok {
					te.Digest = d
				}
				if zstdChunked {
					te.EndOffset = segOff[p.lastSeg[i]+1]
				}
			}
		}
	}
	res := &Encoded{MissingPrioritized: p.missing}
	if zstdChunked {
		var prefetch int64 // where the prioritized files end
		switch {
		case !p.prioritized:
		case p.restSeg >= 0:
			prefetch = segOff[p.restSeg]
		default:
			prefetch = written
		}
		err = encFinishZstdChunked(out, written, prefetch, p, h, opt, res)
	} else {
		err = encFinishEStargz(out, written, p, h, opt, res)
	}
	if err != nil {
		return nil, err
	}
	res.DiffID = encHash(h.diff)
	res.UncompressedSize = h.n
	return res, nil
}

// encPlanInput is the number of input bytes the segments cover.
func encPlanInput(p *encPlan) int64 {
	var n int64
	for _, s := range p.segs {
		n += s.input
	}
	return n
}

// compress is the job function of the lazy formats: every segment of the job
// becomes one gzip member or zstd frame.
func (p *encPlan) compress(wk *encWorker, j *encJob) error {
	j.sizes = make([]int64, 0, j.count)
	for s := j.first; s < j.first+j.count; s++ {
		seg := p.segs[s]
		start := int64(j.out.Len())
		var cw io.WriteCloser
		var err error
		if wk.opt.Format == FormatZstdChunked {
			cw, err = wk.zstdWriter(j.out)
		} else {
			cw, err = wk.gzipWriter(j.out)
		}
		if err != nil {
			return err
		}
		for _, sp := range p.spans[seg.first:seg.end] {
			var digest hash.Hash
			if sp.toc >= 0 {
				digest = wk.sha
				digest.Reset()
			}
			if sp.lit != nil {
				if _, err := cw.Write(sp.lit[:sp.n]); err != nil {
					return err
				}
				if digest != nil {
					digest.Write(sp.lit[:sp.n])
				}
			} else if err := wk.copyRange(cw, digest, sp.off, sp.n); err != nil {
				return err
			}
			if digest != nil {
				p.chunkDigest[sp.toc] = "sha256:" + hex.EncodeToString(digest.Sum(nil))
			}
		}
		if err := cw.Close(); err != nil {
			return err
		}
		j.sizes = append(j.sizes, int64(j.out.Len())-start)
	}
	return nil
}

// encHasher walks the uncompressed output stream in order: it computes the
// DiffID, the digests of files of several chunks and, for zstd:chunked, the
// tar-split that containers/storage needs to rebuild the tar exactly.
type encHasher struct {
	src        *io.SectionReader
	plan       *encPlan
	diff       hash.Hash
	n          int64          // uncompressed bytes so far
	fileDigest map[int]string // by TOC index
	tarSplit   *bytes.Buffer  // compressed tar-split; nil unless zstd:chunked
	tarSplitN  int64          // its uncompressed size
}

func (h *encHasher) run(ctx context.Context, opt EncodeOptions) error {
	buf := make([]byte, encReadBuf)
	var packer storage.Packer
	var zw *zstd.Encoder
	var tsCount *encSizeWriter
	if h.tarSplit != nil {
		var err error
		zw, err = encNewZstd(h.tarSplit, opt.zstdLevel(), 1)
		if err != nil {
			return err
		}
		tsCount = &encSizeWriter{w: zw}
		packer = storage.NewJSONPacker(tsCount)
	}
	var pending []byte // padding of the previous entry, for the next tar-split segment
	crc := crc64.New(storage.CRCTable)
	sha := sha256.New()
	for i, e := range h.plan.entries {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		// Header blocks.
		hdr := e.lit
		if hdr == nil {
			hdr = make([]byte, e.dataOff-e.hdrOff)
			if err := h.readAt(hdr, e.hdrOff); err != nil {
				return err
			}
		}
		h.write(hdr)
		if packer != nil {
			if _, err := packer.AddEntry(storage.Entry{Type: storage.SegmentType, Payload: append(pending, hdr...)}); err != nil {
				return fmt.Errorf("writing tar-split: %w", err)
			}
		}
		// Data.
		var extra []io.Writer
		if packer != nil && e.size > 0 {
			crc.Reset()
			extra = append(extra, crc)
		}
		regIdx, multi := h.plan.multi[e]
		if multi {
			sha.Reset()
			extra = append(extra, sha)
		}
		dst := io.Writer(h)
		if len(extra) > 0 {
			dst = io.MultiWriter(append([]io.Writer{h}, extra...)...)
		}
		if e.litData != nil {
			if _, err := dst.Write(e.litData); err != nil {
				return err
			}
		} else if err := encCopyRange(h.src, buf, dst, nil, e.dataOff, e.size); err != nil {
			return err
		}
		if multi {
			h.fileDigest[regIdx] = "sha256:" + hex.EncodeToString(sha.Sum(nil))
		}
		if packer != nil {
			fe := storage.Entry{Type: storage.FileType, Size: e.size}
			fe.SetName(e.hdr.Name)
			if e.size > 0 {
				fe.Payload = crc.Sum(nil)
			}
			if _, err := packer.AddEntry(fe); err != nil {
				return fmt.Errorf("writing tar-split: %w", err)
			}
		}
		// Padding.
		pending = make([]byte, e.pad())
		if e.litData == nil && len(pending) > 0 {
			if err := h.readAt(pending, e.dataOff+e.size); err != nil {
				return err
			}
		}
		h.write(pending)
	}
	if h.plan.trailer != nil {
		h.write(h.plan.trailer)
		pending = append(pending, h.plan.trailer...)
	}
	if packer != nil {
		if len(pending) > 0 {
			if _, err := packer.AddEntry(storage.Entry{Type: storage.SegmentType, Payload: pending}); err != nil {
				return fmt.Errorf("writing tar-split: %w", err)
			}
		}
		if err := zw.Close(); err != nil {
			return fmt.Errorf("writing tar-split: %w", err)
		}
		h.tarSplitN = tsCount.n
	}
	return nil
}

func (h *encHasher) Write(p []byte) (int, error) {
	h.write(p)
	return len(p), nil
}

func (h *encHasher) write(p []byte) {
	h.diff.Write(p)
	h.n += int64(len(p))
}

func (h *encHasher) readAt(b []byte, off int64) error {
	if n, err := h.src.ReadAt(b, off); n < len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading layer tar at offset %d: %w", off, err)
	}
	return nil
}

// encFinishEStargz appends the TOC member and the footer.
func encFinishEStargz(out io.Writer, tocOff int64, p *encPlan, h *encHasher, opt EncodeOptions, res *Encoded) error {
	tocJSON, err := json.Marshal(&encTOC{Version: 1, Entries: p.toc})
	if err != nil {
		return fmt.Errorf("encoding the TOC: %w", err)
	}
	var member bytes.Buffer
	gz, err := gzip.NewWriterLevel(&member, opt.Level)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(io.MultiWriter(gz, h))
	if err := tw.WriteHeader(&tar.Header{
		Name:     estargz.TOCTarName,
		Typeflag: tar.TypeReg,
		Size:     int64(len(tocJSON)),
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatUSTAR,
	}); err != nil {
		return fmt.Errorf("writing the TOC: %w", err)
	}
	if _, err := tw.Write(tocJSON); err != nil {
		return fmt.Errorf("writing the TOC: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing the TOC: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("writing the TOC: %w", err)
	}
	// The footer is an empty gzip member whose extra field points at the TOC.
	extra := []byte{'S', 'G', 0, 0}
	binary.LittleEndian.PutUint16(extra[2:], 16+6)
	extra = fmt.Appendf(extra, "%016xSTARGZ", tocOff)
	member.Write(estargz.CreateGzipFooter(extra))
	if _, err := out.Write(member.Bytes()); err != nil {
		return err
	}
	tocDigest := sha256.Sum256(tocJSON)
	res.TOCDigest = encHashBytes(tocDigest[:])
	res.Annotations = map[string]string{
		estargz.TOCJSONDigestAnnotation:         res.TOCDigest.String(),
		estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(h.n, 10),
	}
	return nil
}

// encFinishZstdChunked appends the TOC, the tar-split and the footer, each
// in a zstd skippable frame.
func encFinishZstdChunked(out io.Writer, payloadEnd, prefetch int64, p *encPlan, h *encHasher, opt EncodeOptions, res *Encoded) error {
	tsDigest := sha256.Sum256(h.tarSplit.Bytes())
	tocJSON, err := json.Marshal(&encTOC{
		Version:        1,
		Entries:        p.toc,
		TarSplitDigest: encHashBytes(tsDigest[:]).String(),
	})
	if err != nil {
		return fmt.Errorf("encoding the TOC: %w", err)
	}
	var ctoc bytes.Buffer
	zw, err := encNewZstd(&ctoc, opt.zstdLevel(), 1)
	if err != nil {
		return err
	}
	if _, err := zw.Write(tocJSON); err != nil {
		return fmt.Errorf("compressing the TOC: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing the TOC: %w", err)
	}
	tocOff := payloadEnd + 8
	tsOff := tocOff + int64(ctoc.Len()) + 8
	footer := make([]byte, zstdchunked.FooterSize)
	binary.LittleEndian.PutUint64(footer[0:], uint64(tocOff))
	binary.LittleEndian.PutUint64(footer[8:], uint64(ctoc.Len()))
	binary.LittleEndian.PutUint64(footer[16:], uint64(len(tocJSON)))
	binary.LittleEndian.PutUint64(footer[24:], encZstdManifestTypeCRFS)
	copy(footer[32:], encZstdChunkedMagic)

	var tail bytes.Buffer
	for _, frame := range [][]byte{ctoc.Bytes(), h.tarSplit.Bytes(), footer} {
		tail.Write(encSkippableFrameMagic)
		tail.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(frame))))
		tail.Write(frame)
	}
	if _, err := out.Write(tail.Bytes()); err != nil {
		return err
	}
	tocDigest := sha256.Sum256(tocJSON)
	ctocDigest := sha256.Sum256(ctoc.Bytes())
	res.TOCDigest = encHashBytes(tocDigest[:])
	position := fmt.Sprintf("%d:%d:%d:%d", tocOff, ctoc.Len(), len(tocJSON), encZstdManifestTypeCRFS)
	res.Annotations = map[string]string{
		encZstdManifestChecksum:                 encHashBytes(ctocDigest[:]).String(),
		encZstdManifestPosition:                 position,
		encZstdTarSplitPosition:                 fmt.Sprintf("%d:%d:%d", tsOff, h.tarSplit.Len(), h.tarSplitN),
		zstdchunked.ManifestChecksumAnnotation:  encHashBytes(ctocDigest[:]).String(),
		zstdchunked.ManifestPositionAnnotation:  position,
		estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(h.n, 10),
		encStargzPrefetch:                       strconv.FormatInt(prefetch, 10),
	}
	return nil
}

func encHashBytes(sum []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum)}
}
