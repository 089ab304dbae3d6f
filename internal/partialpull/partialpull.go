package partialpull

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Format is a layer format containers/storage pulls partially.
type Format string

// The formats.
const (
	EStargz     Format = "estargz"
	ZstdChunked Format = "zstd:chunked"
)

// The descriptor annotations containers/storage 1.43 reads, and the sizes
// and limits it applies.
const (
	// ZstdChecksumAnnotation (the digest of the compressed TOC) makes a
	// layer zstd:chunked for containers/storage 1.43.
	ZstdChecksumAnnotation = "io.containers.zstd-chunked.manifest-checksum"
	// ZstdPositionAnnotation is "OFFSET:LENGTH:UNCOMPRESSED:TYPE" of the
	// compressed TOC.
	ZstdPositionAnnotation = "io.containers.zstd-chunked.manifest-position"
	// EStargzTOCAnnotation (the digest of the TOC JSON) makes a layer
	// eStargz.
	EStargzTOCAnnotation = "containerd.io/snapshot/stargz/toc.digest"
	// ZstdFooterSize and EStargzFooterSize are the footers read when the
	// TOC's position is not annotated.
	ZstdFooterSize    = 40
	EStargzFooterSize = 51
	// MaxTOCBytes is the largest TOC containers/storage reads (50 MiB).
	MaxTOCBytes = 50 << 20
	// MaxRanges is the number of ranges above which the cheapest gaps are
	// merged (maxNumberMissingChunks).
	MaxRanges = 1024
)

// Pullable says whether containers/storage 1.43 pulls a layer with these
// descriptor annotations partially, and as which format.
func Pullable(annotations map[string]string) (Format, bool) {
	if _, ok := annotations[ZstdChecksumAnnotation]; ok {
		return ZstdChunked, true
	}
	if _, ok := annotations[EStargzTOCAnnotation]; ok {
		return EStargz, true
	}
	return "", false
}

// Range is the byte range [Offset, Offset+Length) of a blob.
type Range struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// End is the offset just past the range.
func (r Range) End() int64 { return r.Offset + r.Length }

// entry is one TOC entry, with the fields containers/storage reads.
type entry struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	Digest      string `json:"digest"`
	Offset      int64  `json:"offset"`
	EndOffset   int64  `json:"endOffset"`
	ChunkOffset int64  `json:"chunkOffset"`
	ChunkSize   int64  `json:"chunkSize"`
	ChunkDigest string `json:"chunkDigest"`
	ChunkType   string `json:"chunkType"`
}

// file is a regular file with content, its chunks merged as
// mergeTocEntries merges them.
type file struct {
	name   string
	size   int64
	digest string
	chunks []chunk
}

// chunk is one chunk of a file: its compressed range, its uncompressed
// size, its digest and type.
type chunk struct {
	r      Range
	size   int64
	digest string
	zeros  bool
}

// Layer is a layer as containers/storage sees it through its TOC.
type Layer struct {
	Format Format
	// Size is the blob's size.
	Size int64
	// TOCReads are the ranged GETs that read the TOC, in order.
	TOCReads []Range
	// Entries is the number of entries the TOC creates (landmarks and the
	// eStargz TOC entry left out); Files the regular files with content,
	// FileBytes their size.
	Entries, Files int
	FileBytes      int64

	raw   []entry // the TOC's entries, in order
	files []file
}

// TOCBytes is the number of bytes the TOC reads fetch.
func (l *Layer) TOCBytes() int64 {
	var n int64
	for _, r := range l.TOCReads {
		n += r.Length
	}
	return n
}

// Open reads the TOC of a blob of the given size through ra, as
// containers/storage 1.43 reads it from the registry, given the layer's
// descriptor annotations. It fails for a layer that is not Pullable or
// whose TOC cannot be read as containers/storage reads it (which then
// downloads the layer whole).
func Open(ra io.ReaderAt, size int64, annotations map[string]string) (*Layer, error) {
	f, ok := Pullable(annotations)
	if !ok {
		return nil, errors.New("partial pull: the layer has neither zstd:chunked nor eStargz annotations")
	}
	l := &Layer{Format: f, Size: size}
	var (
		toc       []byte
		tocOffset int64
		err       error
	)
	if f == ZstdChunked {
		toc, tocOffset, err = l.readZstd(ra, annotations)
	} else {
		toc, tocOffset, err = l.readEStargz(ra)
	}
	if err != nil {
		return nil, fmt.Errorf("partial pull: reading the %s TOC: %w", f, err)
	}
	var doc struct {
		Entries []entry `json:"entries"`
	}
	if err := json.Unmarshal(toc, &doc); err != nil {
		return nil, fmt.Errorf("partial pull: reading the %s TOC: %w", f, err)
	}
	l.raw = doc.Entries
	if err := l.merge(tocOffset); err != nil {
		return nil, fmt.Errorf("partial pull: %s TOC: %w", f, err)
	}
	return l, nil
}

func readAt(ra io.ReaderAt, r Range) ([]byte, error) {
	b := make([]byte, r.Length)
	if n, err := ra.ReadAt(b, r.Offset); n < len(b) {
		return nil, errors.Join(err, io.ErrUnexpectedEOF)
	}
	return b, nil
}

// readZstd reads a zstd:chunked TOC: at the annotated position, else
// where the footer says.
func (l *Layer) readZstd(ra io.ReaderAt, annotations map[string]string) ([]byte, int64, error) {
	if l.Size <= ZstdFooterSize {
		return nil, 0, errors.New("blob too small")
	}
	var off, n, un, typ uint64
	if pos := annotations[ZstdPositionAnnotation]; pos != "" {
		if _, err := fmt.Sscanf(pos, "%d:%d:%d:%d", &off, &n, &un, &typ); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", ZstdPositionAnnotation, err)
		}
	} else {
		fr := Range{Offset: l.Size - ZstdFooterSize, Length: ZstdFooterSize}
		footer, err := readAt(ra, fr)
		if err != nil {
			return nil, 0, err
		}
		l.TOCReads = append(l.TOCReads, fr)
		off, n = binary.LittleEndian.Uint64(footer[0:8]), binary.LittleEndian.Uint64(footer[8:16])
		un, typ = binary.LittleEndian.Uint64(footer[16:24]), binary.LittleEndian.Uint64(footer[24:32])
	}
	if typ != 1 {
		return nil, 0, fmt.Errorf("manifest type %d", typ)
	}
	if n > MaxTOCBytes || un > MaxTOCBytes || off+n > uint64(l.Size) {
		return nil, 0, fmt.Errorf("TOC of %d bytes at %d in a blob of %d", n, off, l.Size)
	}
	tr := Range{Offset: int64(off), Length: int64(n)}
	ctoc, err := readAt(ra, tr)
	if err != nil {
		return nil, 0, err
	}
	l.TOCReads = append(l.TOCReads, tr)
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxTOCBytes))
	if err != nil {
		return nil, 0, err
	}
	defer dec.Close()
	toc, err := dec.DecodeAll(ctoc, make([]byte, 0, un))
	if err != nil {
		return nil, 0, err
	}
	return toc, int64(off), nil
}

// readEStargz reads an eStargz TOC: the footer, then the TOC up to it.
func (l *Layer) readEStargz(ra io.ReaderAt) ([]byte, int64, error) {
	if l.Size <= EStargzFooterSize {
		return nil, 0, errors.New("blob too small")
	}
	fr := Range{Offset: l.Size - EStargzFooterSize, Length: EStargzFooterSize}
	footer, err := readAt(ra, fr)
	if err != nil {
		return nil, 0, err
	}
	l.TOCReads = append(l.TOCReads, fr)
	off, err := strconv.ParseInt(string(footer[16:32]), 16, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("footer: %w", err)
	}
	n := l.Size - EStargzFooterSize - off
	if off <= 0 || n <= 0 || n > MaxTOCBytes {
		return nil, 0, fmt.Errorf("TOC of %d bytes at %d in a blob of %d", n, off, l.Size)
	}
	tr := Range{Offset: off, Length: n}
	ctoc, err := readAt(ra, tr)
	if err != nil {
		return nil, 0, err
	}
	l.TOCReads = append(l.TOCReads, tr)
	zr, err := gzip.NewReader(bytes.NewReader(ctoc))
	if err != nil {
		return nil, 0, err
	}
	tr2 := tar.NewReader(zr)
	h, err := tr2.Next()
	if err != nil {
		return nil, 0, err
	}
	if h.Size > MaxTOCBytes {
		return nil, 0, fmt.Errorf("TOC of %d bytes", h.Size)
	}
	toc := make([]byte, h.Size)
	if _, err := io.ReadFull(tr2, toc); err != nil {
		return nil, 0, err
	}
	return toc, off, nil
}

// skipped are the eStargz entries containers/storage leaves out.
var skipped = map[string]bool{".prefetch.landmark": true, ".no.prefetch.landmark": true, "stargz.index.json": true}

// merge groups the chunk entries with their files and finds where every
// chunk ends, as mergeTocEntries does.
func (l *Layer) merge(tocOffset int64) error {
	type merged struct {
		e      entry
		chunks []int // indexes in l.raw
	}
	var ms []merged
	for i := 0; i < len(l.raw); i++ {
		e := l.raw[i]
		if l.Format == EStargz && skipped[e.Name] {
			continue
		}
		if e.Type == "chunk" {
			return errors.New("chunk type without a regular file")
		}
		m := merged{e: e}
		if e.Type == "reg" {
			m.chunks = []int{i}
			for i+1 < len(l.raw) && l.raw[i+1].Type == "chunk" {
				i++
				m.chunks = append(m.chunks, i)
			}
			m.e.EndOffset = l.raw[m.chunks[len(m.chunks)-1]].EndOffset
		}
		ms = append(ms, m)
	}
	// eStargz has no endOffset: an entry ends where the next with data
	// starts, the last at the TOC.
	last := tocOffset
	for i := len(ms) - 1; i >= 0; i-- {
		m := &ms[i]
		if m.e.EndOffset == 0 {
			m.e.EndOffset = last
		}
		if m.e.Offset != 0 {
			last = m.e.Offset
		}
	}
	l.Entries = len(ms)
	for _, m := range ms {
		if m.e.Type != "reg" || m.e.Size == 0 {
			continue
		}
		f := file{name: m.e.Name, size: m.e.Size, digest: m.e.Digest, chunks: make([]chunk, len(m.chunks))}
		end := m.e.EndOffset
		for j := len(m.chunks) - 1; j >= 0; j-- {
			c := l.raw[m.chunks[j]]
			f.chunks[j] = chunk{r: Range{Offset: c.Offset, Length: end - c.Offset}, digest: c.ChunkDigest, zeros: c.ChunkType == "zeros"}
			end = c.Offset
		}
		rest := f.size
		for j := range f.chunks {
			c := l.raw[m.chunks[j]]
			n := rest
			if c.ChunkSize > 0 {
				n = c.ChunkSize
			}
			rest -= n
			f.chunks[j].size = n
		}
		l.files = append(l.files, f)
		l.Files++
		l.FileBytes += f.size
	}
	return nil
}

// Store is what a containers/storage store holds that a partial pull
// searches: the TOCs of the layers it pulled partially (layers pulled
// whole are not searched), in the order they were added.
type Store struct {
	layers []map[string]int64 // digest → the offset of its first location
}

// Add adds a layer the store pulled partially. As the store's lookaside
// cache does, it records for every digest (of a file, or of a chunk) the
// first place it occurs: offset 0 of a file for a file digest, the chunk's
// offset for a chunk digest.
func (s *Store) Add(l *Layer) {
	m := map[string]int64{}
	add := func(d string, off int64) {
		if _, ok := m[d]; !ok {
			m[d] = off
		}
	}
	seen := map[string]bool{}
	for _, e := range l.raw {
		if e.Digest != "" {
			add(e.Digest, 0)
			if e.ChunkDigest != "" {
				add(e.ChunkDigest, e.ChunkOffset)
			}
			continue
		}
		if e.ChunkDigest != "" && !seen[e.ChunkDigest] {
			seen[e.ChunkDigest] = true
			add(e.ChunkDigest, e.ChunkOffset)
		}
	}
	s.layers = append(s.layers, m)
}

// find returns where the first layer that has digest d has it.
func (s *Store) find(d string) (int64, bool) {
	if s == nil || d == "" {
		return 0, false
	}
	for _, m := range s.layers {
		if off, ok := m[d]; ok {
			return off, true
		}
	}
	return 0, false
}

// Plan is what pulling one layer partially fetches and writes.
type Plan struct {
	// Ranges are the ranges of the one multi-range GET, none when nothing
	// is fetched.
	Ranges []Range
	// WholeBlob: the ranges left to ask are none although some part was
	// missing, so the GET goes out with an empty Range and the registry
	// answers with the whole blob.
	WholeBlob bool
	// ResponseBytes is what the registry sends for that GET.
	ResponseBytes int64
	// FetchedBytes is the uncompressed size of the chunks fetched;
	// FetchedFiles the files with at least one chunk fetched.
	FetchedBytes int64
	FetchedFiles int
	// CopiedBytes is what is copied from layers the store holds (whole
	// files and chunks); CopiedFiles the whole files copied.
	CopiedBytes int64
	CopiedFiles int
}

// part is one missingPart: a compressed range, copied from elsewhere
// (origin) or a hole, or fetched, with the chunks it holds.
type part struct {
	r      Range
	origin bool
	hole   bool
	chunks []partChunk
}

type partChunk struct {
	file int // index in Layer.files, -1 for a gap
	size int64
}

// Plan returns what pulling l partially into s fetches.
func (l *Layer) Plan(s *Store) Plan {
	var p Plan
	var parts []part
	for fi, f := range l.files {
		if off, ok := s.find(f.digest); ok && off == 0 {
			p.CopiedBytes += f.size
			p.CopiedFiles++
			continue
		}
		for _, c := range f.chunks {
			pt := part{r: c.r, chunks: []partChunk{{file: fi, size: c.size}}}
			switch {
			case c.zeros:
				pt.hole = true
			default:
				if _, ok := s.find(c.digest); ok {
					pt.origin = true
				}
			}
			parts = append(parts, pt)
		}
	}
	if len(parts) == 0 {
		return p
	}
	parts = mergeParts(parts, MaxRanges)
	fetched := map[int]bool{}
	for _, pt := range parts {
		if pt.hole {
			continue
		}
		if pt.origin {
			p.CopiedBytes += pt.chunks[0].size
			continue
		}
		p.Ranges = append(p.Ranges, pt.r)
		for _, c := range pt.chunks {
			if c.file >= 0 {
				p.FetchedBytes += c.size
				fetched[c.file] = true
			}
		}
	}
	p.FetchedFiles = len(fetched)
	if len(p.Ranges) == 0 {
		p.WholeBlob = true
		p.ResponseBytes = l.Size
		return p
	}
	p.ResponseBytes = ResponseBytes(p.Ranges, l.Size)
	return p
}

// mergeParts is mergeMissingChunks: adjacent chunks of one file are
// merged; then, while there are more than target parts, every gap whose
// cost (its bytes, plus the bytes of the copied parts on either side that
// merging makes fetched) is at most the cost of the one that leaves
// target parts is merged.
func mergeParts(ps []part, target int) []part {
	out := []part{ps[0]}
	for i := 1; i < len(ps); i++ {
		prev := &out[len(out)-1]
		gap := ps[i].r.Offset - ps[i-1].r.End()
		if gap == 0 && !prev.origin && !ps[i].origin && !prev.hole && !ps[i].hole &&
			len(prev.chunks) == 1 && len(ps[i].chunks) == 1 && prev.chunks[0].file == ps[i].chunks[0].file {
			prev.r.Length += ps[i].r.Length
			prev.chunks[0].size += ps[i].chunks[0].size
			continue
		}
		out = append(out, ps[i])
	}
	ps = out
	if len(ps) <= target {
		return ps
	}
	cost := make([]int64, len(ps))
	for i := 1; i < len(ps); i++ {
		c := ps[i].r.Offset - ps[i-1].r.End()
		if ps[i-1].origin {
			c += ps[i-1].r.Length
		}
		if ps[i].origin {
			c += ps[i].r.Length
		}
		cost[i] = c
	}
	sorted := append([]int64(nil), cost[1:]...)
	sort.Slice(sorted, func(a, b int) bool { return sorted[a] < sorted[b] })
	shrink := min(len(ps)-target, len(sorted)-1)
	limit := sorted[shrink]
	out = []part{ps[0]}
	for i := 1; i < len(ps); i++ {
		if cost[i] > limit {
			out = append(out, ps[i])
			continue
		}
		prev := &out[len(out)-1]
		gap := ps[i].r.Offset - ps[i-1].r.End()
		prev.r.Length += gap + ps[i].r.Length
		prev.hole, prev.origin = false, false
		if gap > 0 {
			prev.chunks = append(prev.chunks, partChunk{file: -1})
		}
		prev.chunks = append(prev.chunks, ps[i].chunks...)
	}
	return out
}

// multipartBoundary is the length of the boundary Go's mime/multipart
// writer makes (30 random bytes in hex).
const multipartBoundary = 60

// ResponseBytes is the size of the body Go's net/http ServeContent sends
// for a GET of ranges of a blob of the given size with Content-Type
// application/octet-stream: the range itself for one range; for several, a
// multipart/byteranges body; the whole blob when the ranges add up to more
// than the blob.
func ResponseBytes(ranges []Range, size int64) int64 {
	var sum int64
	for _, r := range ranges {
		sum += r.Length
	}
	switch {
	case len(ranges) == 0 || sum > size:
		return size
	case len(ranges) == 1:
		return sum
	}
	const contentType = "Content-Type: application/octet-stream\r\n"
	sizeDigits := int64(len(strconv.FormatInt(size, 10)))
	n := sum
	for i, r := range ranges {
		if i > 0 {
			n += 2 // the CRLF that ends the previous part
		}
		n += 2 + multipartBoundary + 2 // --BOUNDARY CRLF
		// Content-Range: bytes FIRST-LAST/SIZE CRLF
		n += int64(len("Content-Range: bytes ")) + int64(len(strconv.FormatInt(r.Offset, 10))) + 1 +
			int64(len(strconv.FormatInt(r.End()-1, 10))) + 1 + sizeDigits + 2
		n += int64(len(contentType)) + 2 // and the blank line
	}
	return n + 2 + 2 + multipartBoundary + 2 + 2 // CRLF --BOUNDARY-- CRLF
}
