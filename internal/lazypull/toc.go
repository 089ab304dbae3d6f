package lazypull

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Range is the byte range [Offset, Offset+Length) of a blob.
type Range struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// End is the offset just past the range.
func (r Range) End() int64 { return r.Offset + r.Length }

// TOC is the table of contents of a lazy layer (eStargz or zstd:chunked) as
// a lazy snapshotter reads it: from the blob's footer and TOC only.
type TOC struct {
	// Format is layers.EStargz or layers.ZstdChunked.
	Format layers.LazyFormat
	// Size is the size of the blob.
	Size int64
	// PayloadEnd is where the file data ends and the TOC begins.
	PayloadEnd int64
	// Reads are the ranges read to open the TOC, in order: the footer, then
	// the TOC.
	Reads []Range
	// Prefetch is the range a snapshotter fetches when it mounts the layer:
	// from the start of the blob to the .prefetch.landmark entry. Its Length
	// is 0 when the layer has no prefetch landmark.
	Prefetch Range
	// Digest is the digest of the TOC JSON.
	Digest v1.Hash
	// Landmarks counts the prefetch landmark entries at the root, which
	// Index leaves out.
	Landmarks int

	r       *estargz.Reader
	dec     estargz.Decompressor
	members []member // data members, by offset
	index   *layers.Index
}

// member is one compressed range that starts with file data: the chunks
// whose data starts at its offset.
type member struct {
	off, end int64
	chunks   []*estargz.TOCEntry // by InnerOffset
}

// recordingReaderAt records the ranges read through it, and answers a
// second read of the footer from the first.
type recordingReaderAt struct {
	ra     io.ReaderAt
	mu     sync.Mutex
	reads  []Range
	footer []byte
	fOff   int64
}

func (r *recordingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	if r.footer != nil && off == r.fOff && len(p) == len(r.footer) {
		n := copy(p, r.footer)
		r.mu.Unlock()
		return n, nil
	}
	r.mu.Unlock()
	n, err := r.ra.ReadAt(p, off)
	r.mu.Lock()
	r.reads = append(r.reads, Range{Offset: off, Length: int64(len(p))})
	r.mu.Unlock()
	return n, err
}

// MaxTOCBytes bounds the compressed TOC a footer may announce: a TOC that
// large describes millions of files; a larger claim is a broken or hostile
// blob, and OpenTOC refuses it before reading or allocating anything.
const MaxTOCBytes = 64 << 20

// footerDecompressors are the footers OpenTOC recognizes, largest first.
var footerDecompressors = []estargz.Decompressor{new(estargz.GzipDecompressor), new(estargz.LegacyGzipDecompressor), new(zstdchunked.Decompressor)}

// OpenTOC reads the footer and the TOC of a lazy layer blob of the given
// size through ra, as stargz-snapshotter does (estargz.Open): one read of
// the last 51 bytes, one read of the TOC. It checks what the footer
// announces (a TOC inside the blob, at most MaxTOCBytes) before reading
// the TOC, and fails, without panicking, for a blob that is neither
// eStargz nor zstd:chunked, whatever its bytes.
func OpenTOC(ra io.ReaderAt, size int64) (*TOC, error) {
	rec := &recordingReaderAt{ra: ra}
	fs := min(size, estargz.FooterSize)
	if fs <= 0 {
		return nil, errors.New("opening the TOC: empty blob")
	}
	footer := make([]byte, fs)
	if n, err := rec.ReadAt(footer, size-fs); n < len(footer) {
		return nil, fmt.Errorf("opening the TOC: reading the footer: %w", errors.Join(err, io.ErrUnexpectedEOF))
	}
	rec.footer, rec.fOff = footer, size-fs
	t := &TOC{Size: size}
	var ok bool
	for _, d := range footerDecompressors {
		n := int(d.FooterSize())
		if len(footer) < n {
			continue
		}
		payload, tocOff, tocSize, err := layers.ParseFooter(d, footer[len(footer)-n:])
		if err != nil {
			continue
		}
		if tocSize <= 0 {
			tocSize = size - tocOff - int64(n)
		}
		if tocOff <= 0 || tocOff >= size || tocSize <= 0 || tocSize > MaxTOCBytes || tocSize > size-tocOff || payload <= 0 || payload > tocOff {
			continue
		}
		t.PayloadEnd, t.dec, ok = payload, d, true
		t.Format = layers.EStargz
		if _, z := d.(*zstdchunked.Decompressor); z {
			t.Format = layers.ZstdChunked
		}
		break
	}
	if !ok {
		return nil, errors.New("opening the TOC: no eStargz or zstd:chunked footer, or one that points outside the blob")
	}
	// layers.OpenLazy is estargz.Open with both decompressors, minus the
	// panics hostile footers cause.
	r, err := layers.OpenLazy(io.NewSectionReader(rec, 0, size))
	if err != nil {
		return nil, fmt.Errorf("opening the TOC: %w", err)
	}
	t.r, t.Reads = r, rec.reads
	if d, err := v1.NewHash(r.TOCDigest().String()); err == nil {
		t.Digest = d
	}
	if e, ok := r.Lookup(layers.PrefetchLandmark); ok && e.Offset > 0 && e.Offset <= t.PayloadEnd {
		t.Prefetch = Range{Offset: 0, Length: e.Offset}
	}
	if err := t.walk(); err != nil {
		return nil, err
	}
	return t, nil
}

// walk builds the layer index and the member list from the TOC tree.
func (t *TOC) walk() error {
	idx := &layers.Index{Lazy: t.Format}
	byOff := map[int64]*member{}
	seen := map[*estargz.TOCEntry]bool{}
	var visit func(dir string, e *estargz.TOCEntry, depth int) error
	visit = func(dir string, e *estargz.TOCEntry, depth int) error {
		if depth > 4096 {
			return errors.New("opening the TOC: directories nest too deeply")
		}
		var names []string
		kids := map[string]*estargz.TOCEntry{}
		e.ForeachChild(func(base string, c *estargz.TOCEntry) bool {
			names = append(names, base)
			kids[base] = c
			return true
		})
		sort.Strings(names)
		for _, base := range names {
			c := kids[base]
			p := path.Join(dir, base)
			if dir == "" {
				p = base
				if base == layers.PrefetchLandmark || base == layers.NoPrefetchLandmark {
					t.Landmarks++
					continue
				}
			}
			ent, err := tocEntry(p, c)
			if err != nil {
				return err
			}
			idx.Entries = append(idx.Entries, ent)
			if c.Type == "reg" && c.Size > 0 && !seen[c] {
				seen[c] = true
				if err := t.addChunks(c, byOff); err != nil {
					return err
				}
			}
			if c.Type == "dir" {
				if err := visit(p, c, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	root, ok := t.r.Lookup("")
	if !ok {
		return errors.New("opening the TOC: no root directory")
	}
	if err := visit("", root, 0); err != nil {
		return err
	}
	for _, m := range byOff {
		sort.Slice(m.chunks, func(i, j int) bool { return m.chunks[i].InnerOffset < m.chunks[j].InnerOffset })
		t.members = append(t.members, *m)
	}
	sort.Slice(t.members, func(i, j int) bool { return t.members[i].off < t.members[j].off })
	for i := range idx.Entries {
		idx.Entries[i].LinkIndex = -1
	}
	t.index = idx
	return nil
}

// addChunks records the chunks of the regular file e by member.
func (t *TOC) addChunks(e *estargz.TOCEntry, byOff map[int64]*member) error {
	for off := int64(0); off < e.Size; {
		ce, ok := t.r.ChunkEntryForOffset(e.Name, off)
		if !ok || ce.ChunkSize <= 0 {
			return fmt.Errorf("opening the TOC: %q has no chunk at offset %d", e.Name, off)
		}
		m := byOff[ce.Offset]
		if m == nil {
			end := min(ce.NextOffset(), t.PayloadEnd)
			if end <= ce.Offset {
				return fmt.Errorf("opening the TOC: chunk of %q at offset %d is empty", e.Name, ce.Offset)
			}
			m = &member{off: ce.Offset, end: end}
			byOff[ce.Offset] = m
		}
		m.chunks = append(m.chunks, ce)
		off = ce.ChunkOffset + ce.ChunkSize
	}
	return nil
}

// tocEntry converts a TOC entry at path p to a layers.Entry.
func tocEntry(p string, c *estargz.TOCEntry) (layers.Entry, error) {
	clean, err := layers.CleanPath(p)
	if err != nil {
		return layers.Entry{}, fmt.Errorf("opening the TOC: %w", err)
	}
	e := layers.Entry{Path: clean, Name: p, Mode: c.Mode & 0o7777, UID: c.UID, GID: c.GID, LinkIndex: -1}
	switch c.Type {
	case "dir":
		e.Type = layers.TypeDir
	case "reg":
		e.Type = layers.TypeReg
		e.Size = c.Size
		if h, ok := strings.CutPrefix(c.Digest, "sha256:"); ok {
			if b, err := hex.DecodeString(h); err == nil && len(b) == sha256.Size {
				copy(e.Digest[:], b)
			}
		}
	case "symlink":
		e.Type = layers.TypeSymlink
		e.Linkname = c.LinkName
	case "char":
		e.Type = layers.TypeChar
	case "block":
		e.Type = layers.TypeBlock
	case "fifo":
		e.Type = layers.TypeFIFO
	default:
		return e, fmt.Errorf("opening the TOC: entry %q has unknown type %q", p, c.Type)
	}
	base := path.Base(clean)
	if strings.HasPrefix(base, ".wh.") {
		dir := path.Dir(clean)
		switch {
		case base == ".wh..wh..opq":
			e.Type, e.Path = layers.TypeOpaque, dir
		case strings.HasPrefix(base, ".wh..wh."):
		default:
			e.Type, e.Path, e.Size = layers.TypeWhiteout, path.Join(dir, strings.TrimPrefix(base, ".wh.")), 0
		}
	}
	return e, nil
}

// Index returns the layer's entries as the TOC lists them: every path in
// sorted order, hard links resolved to regular files, without the prefetch
// landmarks. Only the entries are set.
func (t *TOC) Index() *layers.Index { return t.index }

// FileRanges returns the compressed ranges (one per member: a range that
// starts with chunk data and ends where the next one starts) that hold the
// content of the regular file at p, a cleaned relative path, in offset
// order. It is nil for a missing, empty or non-regular file.
func (t *TOC) FileRanges(p string) []Range {
	e, ok := t.r.Lookup(p)
	if !ok || e.Type != "reg" || e.Size == 0 {
		return nil
	}
	var out []Range
	var lastOff int64 = -1
	for off := int64(0); off < e.Size; {
		ce, ok := t.r.ChunkEntryForOffset(e.Name, off)
		if !ok || ce.ChunkSize <= 0 {
			break
		}
		off = ce.ChunkOffset + ce.ChunkSize
		if ce.Offset == lastOff {
			continue
		}
		lastOff = ce.Offset
		out = append(out, Range{Offset: ce.Offset, Length: min(ce.NextOffset(), t.PayloadEnd) - ce.Offset})
	}
	return out
}

// Fetched remembers which members of a layer were fetched, by offset.
type Fetched map[int64]bool

// PlanFile says what reading the file at p costs, given what was fetched
// before (which it updates): whether it waits for the prefetch, and the
// requests it sends, adjacent members merged into one request.
func (t *TOC) PlanFile(p string, fetched Fetched) (waitPrefetch bool, requests []Range) {
	return t.PlanFilePart(p, fetched, 1)
}

// PlanFilePart is PlanFile for a program that reads only part of the file
// (through mmap, the pages it touches): the first fraction of its chunks.
func (t *TOC) PlanFilePart(p string, fetched Fetched, fraction float64) (waitPrefetch bool, requests []Range) {
	return t.planFile(p, fetched, fraction, true)
}

// PlanFileChunks is PlanFilePart for a reader that fetches each chunk as
// the program first touches it (a FUSE read, a page fault): one request a
// member, none merged.
func (t *TOC) PlanFileChunks(p string, fetched Fetched, fraction float64) (waitPrefetch bool, requests []Range) {
	return t.planFile(p, fetched, fraction, false)
}

func (t *TOC) planFile(p string, fetched Fetched, fraction float64, merge bool) (waitPrefetch bool, requests []Range) {
	ranges := t.FileRanges(p)
	if fraction < 1 {
		ranges = ranges[:int(math.Ceil(fraction*float64(len(ranges))))]
	}
	for _, r := range ranges {
		if t.InPrefetch(r) {
			waitPrefetch = true
			continue
		}
		if fetched[r.Offset] {
			continue
		}
		fetched[r.Offset] = true
		if n := len(requests); merge && n > 0 && requests[n-1].End() == r.Offset {
			requests[n-1].Length += r.Length
			continue
		}
		requests = append(requests, r)
	}
	return waitPrefetch, requests
}

// InPrefetch reports whether r lies inside the prefetch range.
func (t *TOC) InPrefetch(r Range) bool {
	return t.Prefetch.Length > 0 && r.End() <= t.Prefetch.End()
}

// Chunks returns the number of chunks whose data starts inside r.
func (t *TOC) Chunks(r Range) int {
	n := 0
	i := sort.Search(len(t.members), func(i int) bool { return t.members[i].off >= r.Offset })
	for ; i < len(t.members) && t.members[i].off < r.End(); i++ {
		n += len(t.members[i].chunks)
	}
	return n
}

// ChunkBytes returns the uncompressed size of the chunks whose data starts
// inside r: what verifying r decompresses.
func (t *TOC) ChunkBytes(r Range) int64 {
	var n int64
	i := sort.Search(len(t.members), func(i int) bool { return t.members[i].off >= r.Offset })
	for ; i < len(t.members) && t.members[i].off < r.End(); i++ {
		m := &t.members[i]
		last := m.chunks[len(m.chunks)-1]
		n += last.InnerOffset + last.ChunkSize
	}
	return n
}

// Verify reads the compressed range r of the blob from body (body starts at
// r.Offset and holds r.Length bytes), decompresses every chunk whose data
// starts inside r and checks it against its digest in the TOC. It reads
// body to the end of r.
func (t *TOC) Verify(body io.Reader, r Range, dc *Decompressors) error {
	pos := r.Offset
	i := sort.Search(len(t.members), func(i int) bool { return t.members[i].off >= r.Offset })
	for ; i < len(t.members) && t.members[i].off < r.End(); i++ {
		m := &t.members[i]
		if m.off > pos {
			if _, err := io.CopyN(io.Discard, body, m.off-pos); err != nil {
				return fmt.Errorf("reading bytes %d-%d: %w", pos, m.off, err)
			}
		}
		end := min(m.end, r.End())
		lr := &io.LimitedReader{R: body, N: end - m.off}
		if err := t.verifyMember(lr, m, dc); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, lr); err != nil {
			return fmt.Errorf("reading member at %d: %w", m.off, err)
		}
		pos = end
	}
	if pos < r.End() {
		if _, err := io.CopyN(io.Discard, body, r.End()-pos); err != nil {
			return fmt.Errorf("reading bytes %d-%d: %w", pos, r.End(), err)
		}
	}
	return nil
}

// ErrChunkDigest reports a chunk whose content does not match the TOC.
var ErrChunkDigest = errors.New("chunk digest mismatch")

func (t *TOC) verifyMember(r io.Reader, m *member, dc *Decompressors) error {
	zr, err := dc.reader(t.Format, r)
	if err != nil {
		return fmt.Errorf("member at %d: %w", m.off, err)
	}
	if dc.h == nil {
		dc.h, dc.buf = sha256.New(), make([]byte, 64<<10)
	}
	var pos int64
	h := dc.h
	var sum [sha256.Size]byte
	for _, c := range m.chunks {
		if c.InnerOffset > pos {
			if _, err := io.CopyBuffer(io.Discard, io.LimitReader(zr, c.InnerOffset-pos), dc.buf); err != nil {
				return fmt.Errorf("member at %d: %w", m.off, err)
			}
			pos = c.InnerOffset
		}
		h.Reset()
		n, err := io.CopyBuffer(h, io.LimitReader(zr, c.ChunkSize), dc.buf)
		if err == nil && n < c.ChunkSize {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("chunk of %q at %d: %w", c.Name, c.ChunkOffset, err)
		}
		pos += c.ChunkSize
		want := c.ChunkDigest
		if want == "" && c.ChunkOffset == 0 && c.ChunkSize == c.Size {
			want = c.Digest
		}
		if want == "" {
			continue
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(sum[:0])); got != want {
			return fmt.Errorf("%w: %q at %d: TOC says %s, content hashes to %s", ErrChunkDigest, c.Name, c.ChunkOffset, want, got)
		}
	}
	return nil
}

// Decompressors holds reusable gzip and zstd decoders, a hash and a
// buffer. The zero value is ready to use; it is not safe for concurrent
// use.
type Decompressors struct {
	gz  *gzip.Reader
	zd  *zstd.Decoder
	h   hash.Hash
	buf []byte
}

func (d *Decompressors) reader(f layers.LazyFormat, r io.Reader) (io.Reader, error) {
	if f == layers.ZstdChunked {
		if d.zd == nil {
			zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return nil, err
			}
			d.zd = zd
		}
		if err := d.zd.Reset(r); err != nil {
			return nil, err
		}
		return d.zd, nil
	}
	if d.gz == nil {
		d.gz = new(gzip.Reader)
	}
	if err := d.gz.Reset(r); err != nil {
		return nil, err
	}
	d.gz.Multistream(false)
	return d.gz, nil
}

// Close releases the decoders.
func (d *Decompressors) Close() {
	if d.zd != nil {
		d.zd.Close()
		d.zd = nil
	}
}
