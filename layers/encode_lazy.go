package layers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/coldstart-dev/coldstart/layers/lazy"
	"github.com/coldstart-dev/coldstart/layers/lazy/zstdchunkedfmt"
)

// encodeLazy writes the lazy format f: the payload here, the end of the
// blob by f's Closer.
func encodeLazy(ctx context.Context, src *io.SectionReader, out io.Writer, opt EncodeOptions, f lazy.Format) (*Encoded, error) {
	entries, err := encIndexTar(ctx, src)
	if err != nil {
		return nil, err
	}
	p := encMakePlan(entries, opt, f.Layout())
	closer := f.NewCloser(opt.Level)

	// Compress the segments in parallel; meanwhile hash the uncompressed
	// stream and show it to the closer, sequentially.
	segOff := make([]int64, len(p.segs)+1)
	var written int64
	ordered := encSizeWriter{w: out}
	produceSegs := func(from, to int) func(ctx context.Context, send func(*encJob) error) error {
		return func(ctx context.Context, send func(*encJob) error) error {
			for first := from; first < to; {
				j := &encJob{run: p.compress, first: first}
				var size int64
				for first < to && (size < encJobTarget || j.count == 0) {
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
	}
	produce := produceSegs(0, len(p.segs))
	var copyFrame int64 // the copies' skippable frame, header included
	if p.copySegs > 0 {
		// The frame's header holds its length: compress the copies once to
		// learn it (the same bytes as below: segments compress alone).
		var n int64
		sizeOnly := func(j *encJob) error {
			for _, k := range j.sizes {
				n += k
			}
			return nil
		}
		if err := encPipeline(ctx, opt, src, produceSegs(0, p.copySegs), sizeOnly); err != nil {
			return nil, err
		}
		if n > math.MaxUint32 {
			return nil, fmt.Errorf("the prioritized files compress to %d bytes, more than a zstd skippable frame holds", n)
		}
		hdr := zstdchunkedfmt.SkippableFrameHeader(uint32(n))
		if _, err := ordered.Write(hdr); err != nil {
			return nil, err
		}
		written = int64(len(hdr))
		copyFrame = written + n
	}
	emit := func(j *encJob) error {
		for k, n := range j.sizes {
			segOff[j.first+k] = written
			written += n
		}
		_, err := ordered.Write(j.out.Bytes())
		return err
	}
	h := &encHasher{src: src, plan: p, stream: lazy.NewStream(), closer: closer, fileDigest: map[int]string{}}
	if err := encPipeline(ctx, opt, src, produce, emit, h.run); err != nil {
		return nil, err
	}
	if written != ordered.n {
		return nil, fmt.Errorf("internal error: %d bytes written, %d accounted", ordered.n, written)
	}
	segOff[len(p.segs)] = written
	if p.copySegs > 0 && segOff[p.copySegs] != copyFrame {
		return nil, fmt.Errorf("internal error: the copies took %d bytes, then %d", copyFrame, segOff[p.copySegs])
	}
	opt.report(src.Size() - encPlanInput(p))

	// Fill in offsets and digests.
	for i, te := range p.toc {
		if s := p.tocSeg[i]; s >= 0 {
			te.Offset = segOff[s]
			te.ChunkDigest = p.chunkDigest[i]
			te.EndOffset = segOff[s+1]
			if te.Type == "reg" {
				te.Digest = te.ChunkDigest
				if d, ok := h.fileDigest[i]; ok {
					te.Digest = d
				}
				te.EndOffset = segOff[p.lastSeg[i]+1]
			}
		}
	}
	var prioritized int64 // where the prioritized files end
	switch {
	case !p.prioritized:
	case p.restSeg >= 0:
		prioritized = segOff[p.restSeg]
	default:
		prioritized = written
	}
	if p.landmark >= 0 && p.prioritized {
		// Where the prefetch ends; the no-prefetch landmark's offset is 0.
		p.toc[p.landmark].Offset = prioritized
	}
	toc, annotations, err := closer.Close(out, &lazy.Tail{
		Payload:     written,
		Prioritized: prioritized,
		TOC:         p.toc,
		Stream:      h.stream,
	})
	if err != nil {
		return nil, err
	}
	return &Encoded{
		MissingPrioritized: p.missing,
		TOCDigest:          toc,
		Annotations:        annotations,
		DiffID:             h.stream.Digest(),
		UncompressedSize:   h.stream.Size(),
	}, nil
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
		start := int64(j.out.Len())
		if err := p.compressSeg(wk, j, p.segs[s]); err != nil {
			return err
		}
		j.sizes = append(j.sizes, int64(j.out.Len())-start)
	}
	return nil
}

// compressSeg appends segment seg to the job's output as one gzip member or
// zstd frame, at the start-up level if it is a start-up file's.
func (p *encPlan) compressSeg(wk *encWorker, j *encJob, seg encSeg) error {
	pool, level := encCompressors, wk.opt.Level
	if seg.startup && wk.opt.StartupLevel != wk.opt.Level {
		pool, level = encStartup, wk.opt.StartupLevel
	}
	comp := pool.get(wk.opt.Format, level)
	defer pool.put(wk.opt.Format, level, comp)
	cw, err := comp.Writer(j.out)
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
	return cw.Close()
}

// encHasher walks the uncompressed output stream in order: it computes the
// DiffID and the digests of files of several chunks, and shows the stream
// to the format's Closer (zstd:chunked records its tar-split from it).
type encHasher struct {
	src        *io.SectionReader
	plan       *encPlan
	stream     *lazy.Stream
	closer     lazy.Closer
	fileDigest map[int]string // by TOC index
}

func (h *encHasher) run(ctx context.Context) error {
	buf := make([]byte, encReadBuf)
	sha := sha256.New()
	var pad []byte
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
		if _, err := h.Write(hdr); err != nil {
			return err
		}
		if err := h.closer.File(e.hdr.Name, e.size); err != nil {
			return err
		}
		// Data.
		dst := io.Writer(h)
		regIdx, multi := h.plan.multi[e]
		if multi {
			sha.Reset()
			dst = io.MultiWriter(h, sha)
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
		// Padding.
		if n := e.pad(); n > 0 {
			pad = slices.Grow(pad[:0], int(n))[:n]
			if e.litData != nil {
				clear(pad)
			} else if err := h.readAt(pad, e.dataOff+e.size); err != nil {
				return err
			}
			if _, err := h.Write(pad); err != nil {
				return err
			}
		}
	}
	if h.plan.trailer != nil {
		if _, err := h.Write(h.plan.trailer); err != nil {
			return err
		}
	}
	return nil
}

// Write adds p to the stream and shows it to the closer.
func (h *encHasher) Write(p []byte) (int, error) {
	h.stream.Write(p)
	return h.closer.Write(p)
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

// The compressors of the lazy formats are lent per segment from two
// process-wide pools, which bound how many exist at once: a zstd encoder
// keeps its history window (megabytes), and one per worker of every layer
// encoded at once would grow the memory with the concurrency, not with
// the cores that run them. Which compressor compresses a segment does not
// change its bytes.
var (
	// encCompressors lends those of EncodeOptions.Level, one per core and
	// two for the workers reading their input.
	encCompressors = newEncCompressorPool(runtime.GOMAXPROCS(0) + 2)
	// encStartup lends those of EncodeOptions.StartupLevel: stronger
	// levels keep larger match tables (zstd's strongest, 32 MiB), and the
	// start-up files are a small part of most layers.
	encStartup = newEncCompressorPool(2)
)

func newEncCompressorPool(n int) *encCompressorPool {
	return &encCompressorPool{free: map[encCompressorKey][]lazy.Compressor{}, sem: make(chan struct{}, n)}
}

type encCompressorKey struct {
	f     Format
	level int
}

type encCompressorPool struct {
	mu   sync.Mutex
	free map[encCompressorKey][]lazy.Compressor
	sem  chan struct{}
}

// get waits for a free place and returns a compressor of format f at level.
func (p *encCompressorPool) get(f Format, level int) lazy.Compressor {
	p.sem <- struct{}{}
	k := encCompressorKey{f, level}
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.free[k]; len(l) > 0 {
		c := l[len(l)-1]
		p.free[k] = l[:len(l)-1]
		return c
	}
	return f.lazyFormat().NewCompressor(level)
}

// put gives back a compressor get returned.
func (p *encCompressorPool) put(f Format, level int, c lazy.Compressor) {
	k := encCompressorKey{f, level}
	p.mu.Lock()
	if len(p.free[k]) < cap(p.sem) {
		p.free[k] = append(p.free[k], c)
	}
	p.mu.Unlock()
	<-p.sem
}
