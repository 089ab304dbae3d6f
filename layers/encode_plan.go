package layers

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"

	"github.com/coldstart-dev/coldstart/layers/lazy"
)

// Planning a lazy layer: index the input tar (headers and offsets only),
// order its entries (prioritized first, then a landmark if the format has
// one, then the rest), and cut the uncompressed output stream into
// segments. Every segment becomes one gzip member or zstd frame; a segment
// starts wherever a regular file's data chunk must be addressable on its
// own. Segments are independent, so they can be compressed in any order by
// any worker, always to the same bytes.

const (
	encBlock = 512
	// encMaxHeaderRun closes a segment that grew this large from headers
	// alone (long runs of directories or links), bounding a segment's size.
	encMaxHeaderRun = 1 << 20
	// encLandmarkContents is the single byte of a landmark file (estargz's).
	encLandmarkContents = 0xf
)

// encPad is the padding after n bytes of tar data.
func encPad(n int64) int64 { return (encBlock - n%encBlock) % encBlock }

// encCleanName normalises an entry name the way estargz matches names:
// "a/b", "/a/b", "./a/b" and "a/b/" are all "a/b"; the root is "".
func encCleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// encEntry is one tar entry of the output stream: its header blocks, its
// data and the padding after it, either as ranges of the input or literal.
type encEntry struct {
	hdr     *tar.Header
	name    string // cleaned
	hdrOff  int64  // header blocks (with any PAX / GNU long-name records) are src[hdrOff:dataOff]
	dataOff int64
	size    int64  // data bytes that follow the header in the archive
	lit     []byte // literal header blocks, instead of src[hdrOff:dataOff]
	litData []byte // literal data, instead of src[dataOff:dataOff+size]
	// landmark marks the prefetch landmark encOrder adds.
	landmark bool
}

func (e *encEntry) pad() int64 { return encPad(e.size) }

// encIndexTar reads the headers of src and returns its entries in archive
// order, after dropping eStargz metadata entries and all but the last of
// entries whose cleaned names repeat.
func encIndexTar(ctx context.Context, src *io.SectionReader) ([]*encEntry, error) {
	sr := io.NewSectionReader(src, 0, src.Size())
	tr := tar.NewReader(sr)
	var all []*encEntry
	var pos int64 // where the next header starts
	for i := 0; ; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(err == tar.ErrInsecurePath && h != nil) {
			return nil, fmt.Errorf("%w: reading the tar header at offset %d: %v", ErrNotTar, pos, err)
		}
		dataOff, err := sr.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			// Archive metadata, not a file (containerd skips it, and Go's
			// reader applies none of its records to later entries): it
			// cannot stay in place once entries are reordered, and goes.
			// The reader has consumed its records but not their padding:
			// the next header starts at the next block.
			pos = dataOff + encPad(dataOff)
			continue
		}
		if dataOff-pos < encBlock || (dataOff-pos)%encBlock != 0 {
			return nil, fmt.Errorf("%w: entry %q: unexpected header layout at offset %d", ErrNotTar, h.Name, pos)
		}
		e := &encEntry{hdr: h, name: encCleanName(h.Name), hdrOff: pos, dataOff: dataOff}
		switch h.Typeflag {
		case tar.TypeReg:
			for k := range h.PAXRecords {
				if strings.HasPrefix(k, "GNU.sparse.") {
					return nil, fmt.Errorf("%w: entry %q is a sparse file, which layers must not use", ErrNotTar, h.Name)
				}
			}
			e.size = h.Size
		case tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		case tar.TypeGNUSparse:
			return nil, fmt.Errorf("%w: entry %q is a sparse file, which layers must not use", ErrNotTar, h.Name)
		default:
			return nil, fmt.Errorf("%w: entry %q has unsupported type %q", ErrNotTar, h.Name, h.Typeflag)
		}
		end := dataOff + e.size + e.pad()
		if dataOff+e.size > src.Size() {
			return nil, fmt.Errorf("%w: entry %q: %v", ErrNotTar, h.Name, io.ErrUnexpectedEOF)
		}
		pos = end
		switch e.name {
		case estargz.TOCTarName, estargz.PrefetchLandmark, estargz.NoPrefetchLandmark:
			continue // rebuilt by Encode
		}
		all = append(all, e)
	}
	return encLastOfEachName(all)
}

// encLastOfEachName keeps the last of entries with the same name, at its
// place, as a lazy puller's TOC can hold one entry per name. Hard links keep
// the content they had when applied: a link to an earlier copy of a name
// that a later entry replaces is redirected to another surviving name of
// the same file, or, when there is none yet, becomes the file itself (its
// own header with the type and content of the file it linked to).
func encLastOfEachName(all []*encEntry) ([]*encEntry, error) {
	last := make(map[string]int, len(all))
	for i, e := range all {
		last[e.name] = i
	}
	if len(last) == len(all) {
		return all, nil
	}
	// file[i] is the entry that created the file entry i names (itself for
	// anything but a hard link; -1 for directories and for links whose
	// target is not in this layer), target[i] the entry a link's name
	// pointed at when it applied.
	file := make([]int, len(all))
	target := make([]int, len(all))
	cur := make(map[string]int, len(all))
	for i, e := range all {
		file[i], target[i] = -1, -1
		switch e.hdr.Typeflag {
		case tar.TypeDir:
		case tar.TypeLink:
			if j, ok := cur[encCleanName(e.hdr.Linkname)]; ok {
				target[i], file[i] = j, file[j]
			}
		default:
			file[i] = i
		}
		cur[e.name] = i
	}
	holder := map[int]int{} // file -> the first surviving entry that names it
	kept := make([]*encEntry, 0, len(last))
	for i, e := range all {
		if last[e.name] != i {
			continue
		}
		f := file[i]
		if f < 0 {
			kept = append(kept, e)
			continue
		}
		h, held := holder[f]
		switch {
		case e.hdr.Typeflag != tar.TypeLink:
		case last[all[target[i]].name] == target[i]:
			// The name it links to survives and still names the file.
		case held:
			ne, err := encRelink(e, all[h].hdr.Name)
			if err != nil {
				return nil, err
			}
			e = ne
		default:
			ne, err := encMaterialize(e, all[f])
			if err != nil {
				return nil, err
			}
			e = ne
		}
		if !held {
			holder[f] = i
		}
		kept = append(kept, e)
	}
	return kept, nil
}

// encRelink returns link e pointing at name instead.
func encRelink(e *encEntry, name string) (*encEntry, error) {
	h := *e.hdr
	h.Linkname = name
	return encLiteral(e, &h, e.dataOff, 0)
}

// encMaterialize returns link e as the file it links to: the link's own
// header (name, owner, mode, times, extended attributes over the file's)
// with the file's type and content.
func encMaterialize(e, file *encEntry) (*encEntry, error) {
	h := *e.hdr
	fh := file.hdr
	h.Typeflag, h.Size, h.Linkname = fh.Typeflag, fh.Size, fh.Linkname
	h.Devmajor, h.Devminor = fh.Devmajor, fh.Devminor
	h.PAXRecords = maps.Clone(e.hdr.PAXRecords)
	for k, v := range fh.PAXRecords {
		if _, own := h.PAXRecords[k]; strings.HasPrefix(k, "SCHILY.xattr.") && !own {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords[k] = v
		}
	}
	return encLiteral(e, &h, file.dataOff, file.size)
}

// encLiteral is entry e with the header h written anew, and its data taken
// from src[dataOff:dataOff+size].
func encLiteral(e *encEntry, h *tar.Header, dataOff, size int64) (*encEntry, error) {
	// The reader leaves the records of the old name, link name and size
	// in PAXRecords; the writer makes them anew from the fields.
	if h.PAXRecords != nil {
		h.PAXRecords = maps.Clone(h.PAXRecords)
		for _, k := range []string{"path", "linkpath", "size"} {
			delete(h.PAXRecords, k)
		}
	}
	if len(h.PAXRecords) > 0 {
		h.Format = tar.FormatPAX
	}
	var b bytes.Buffer
	if err := tar.NewWriter(&b).WriteHeader(h); err != nil && h.Format != tar.FormatPAX {
		// The fields do not fit the header's format (a longer link name).
		b.Reset()
		h.Format = tar.FormatPAX
		err = tar.NewWriter(&b).WriteHeader(h)
		if err != nil {
			return nil, fmt.Errorf("%w: rewriting the header of %q: %v", ErrNotTar, h.Name, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("%w: rewriting the header of %q: %v", ErrNotTar, h.Name, err)
	}
	// WriteHeader wrote the header blocks only; the data follows from src.
	return &encEntry{hdr: h, name: e.name, lit: b.Bytes(), dataOff: dataOff, size: size}, nil
}

// encOrder puts the prioritized entries first (each after its parent
// directories and its hard link target), then a landmark, then the others in
// archive order. It returns the prioritized names that are missing.
func encOrder(entries []*encEntry, prioritized []string) ([]*encEntry, []string) {
	byName := make(map[string]int, len(entries))
	for i, e := range entries {
		byName[e.name] = i
	}
	moved := make([]bool, len(entries))
	visiting := make(map[int]bool)
	out := make([]*encEntry, 0, len(entries)+1)
	var move func(i int)
	move = func(i int) {
		if moved[i] || visiting[i] {
			return
		}
		visiting[i] = true
		e := entries[i]
		// Parent directories first, from the root down.
		if e.name != "" {
			parts := strings.Split(e.name, "/")
			for k := 0; k < len(parts); k++ {
				if j, ok := byName[strings.Join(parts[:k], "/")]; ok {
					move(j)
				}
			}
		}
		if e.hdr.Typeflag == tar.TypeLink {
			if j, ok := byName[encCleanName(e.hdr.Linkname)]; ok {
				move(j)
			}
		}
		delete(visiting, i)
		moved[i] = true
		out = append(out, e)
	}
	var missing []string
	for _, p := range prioritized {
		i, ok := byName[encCleanName(p)]
		if !ok {
			missing = append(missing, p)
			continue
		}
		move(i)
	}
	name := estargz.NoPrefetchLandmark
	if len(out) > 0 {
		name = estargz.PrefetchLandmark
	}
	out = append(out, encLandmark(name))
	for i, e := range entries {
		if !moved[i] {
			out = append(out, e)
		}
	}
	return out, missing
}

// encLandmark makes a landmark entry: a one-byte regular file with the
// header estargz gives it (mode 0, owned by root).
func encLandmark(name string) *encEntry {
	h := &tar.Header{
		Name:     name,
		Typeflag: tar.TypeReg,
		Size:     1,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatUSTAR,
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(h); err != nil {
		panic(fmt.Sprintf("layers: writing the %s header: %v", name, err)) // constant input
	}
	return &encEntry{hdr: h, name: name, size: 1, lit: b.Bytes(), litData: []byte{encLandmarkContents}, landmark: true}
}

// encSpan is a piece of a segment: src[off:off+n] or lit. A span with toc >= 0
// is the data of chunk toc, whose digest the worker records.
type encSpan struct {
	off, n int64
	lit    []byte
	toc    int
}

// encSeg is a segment: spans[first:end] of the plan, size bytes uncompressed.
type encSeg struct {
	first, end int
	size       int64
	input      int64 // bytes read from src, for progress
	// startup marks a segment that opens with a chunk of a start-up file:
	// it is compressed at EncodeOptions.StartupLevel.
	startup bool
}

// encPlan is the complete layout of a lazy layer.
type encPlan struct {
	entries []*encEntry // output order
	spans   []encSpan
	segs    []encSeg
	toc     []*lazy.TOCEntry
	tocSeg  []int // segment where each TOC entry's data starts, -1 if none
	// lastSeg is the segment holding the last chunk of each regular file,
	// by the index of its first TOC entry (for its EndOffset).
	lastSeg map[int]int
	// multi lists the regular files of more than one chunk: their whole-file
	// digest is taken by the sequential hasher.
	multi map[*encEntry]int // entry -> TOC index of its "reg" entry
	// chunkDigest receives the digest of each chunk, by TOC index.
	chunkDigest []string
	// trailer is the end-of-archive bytes inside the last segment, if the
	// format's layout puts them there (else its Closer ends the archive).
	trailer []byte
	missing []string
	// prioritized says whether prioritized entries lead the layer, and
	// restSeg is the segment where the data of the others (the landmark's
	// included) starts, -1 if none has data.
	prioritized bool
	restSeg     int
	// landmark is the TOC index of the landmark entry that only the TOC
	// has (lazy.Layout.TOCLandmark), -1 if none.
	landmark int
	// copySegs is the number of leading segments that hold, under
	// EncodeOptions.KeepOrder, copies of the prioritized files' data
	// outside the tar stream (restSeg is then copySegs); 0 if none.
	copySegs int
}

// encTypeName maps a tar type to the TOC's type names.
func encTypeName(t byte) string {
	switch t {
	case tar.TypeReg:
		return "reg"
	case tar.TypeDir:
		return "dir"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hardlink"
	case tar.TypeChar:
		return "char"
	case tar.TypeBlock:
		return "block"
	case tar.TypeFifo:
		return "fifo"
	}
	return ""
}

// encTime formats a time for the TOC: empty for the zero time and the epoch
// (as estargz does), else RFC 3339 in UTC with the full precision of the tar
// header, which estargz and containers/storage both parse.
func encTime(t time.Time) string {
	if t.IsZero() || t.Unix() == 0 && t.Nanosecond() == 0 {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// encMakePlan orders the entries and cuts the output stream into segments
// as the format's layout says.
func encMakePlan(entries []*encEntry, opt EncodeOptions, layout lazy.Layout) *encPlan {
	p := &encPlan{lastSeg: map[int]int{}, multi: map[*encEntry]int{}, landmark: -1}
	var copies []*encEntry
	if opt.KeepOrder {
		copies, p.missing = encCopies(entries, opt.Prioritized)
	}
	rest := -1
	if len(copies) > 0 {
		p.entries = entries
		p.prioritized = true
	} else {
		prio := opt.Prioritized
		if opt.KeepOrder {
			prio = nil // nothing to copy: the layer as it is, not prefetched
		}
		var missing []string
		p.entries, missing = encOrder(entries, prio)
		if !opt.KeepOrder {
			p.missing = missing
		}
		// The prioritized entries end where the landmark is.
		rest = slices.IndexFunc(p.entries, func(e *encEntry) bool { return e.landmark })
		p.prioritized = rest > 0
	}
	p.restSeg = -1
	var tocLandmark *lazy.TOCEntry
	if layout.TOCLandmark {
		name := estargz.PrefetchLandmark
		mtime := ""
		if rest >= 0 {
			h := p.entries[rest].hdr
			name, mtime = h.Name, encTime(h.ModTime)
		}
		// No data; at the prefetch landmark's offset the first file after
		// the prioritized ones starts, and estargz's reader takes entries
		// at one offset for files in one compressed segment, verifying
		// each by its chunk digest: the landmark's is that of no bytes.
		tocLandmark = &lazy.TOCEntry{TOCEntry: estargz.TOCEntry{
			Name: name, Type: "reg", ModTime3339: mtime, Digest: encEmptyDigest, ChunkDigest: encEmptyDigest,
		}}
	}
	if !layout.Landmark && rest >= 0 {
		// A format without landmarks (in zstd:chunked one would be a file in
		// every container: containers/storage leaves them out of eStargz
		// layers only): the prioritized entries simply lead.
		p.entries = slices.Delete(p.entries, rest, rest+1)
	}
	chunk := int64(opt.ChunkSize)

	var cur encSeg
	cut := func() {
		if cur.end > cur.first {
			p.segs = append(p.segs, cur)
		}
		cur = encSeg{first: len(p.spans), end: len(p.spans)}
	}
	add := func(s encSpan) {
		if s.n == 0 {
			return
		}
		if n := len(p.spans); cur.end > cur.first && s.lit == nil && s.toc < 0 {
			if l := &p.spans[n-1]; l.lit == nil && l.toc < 0 && l.off+l.n == s.off {
				l.n += s.n
				cur.size += s.n
				cur.input += s.n
				return
			}
		}
		p.spans = append(p.spans, s)
		cur.end = len(p.spans)
		cur.size += s.n
		if s.lit == nil {
			cur.input += s.n
		}
	}
	newTOC := func(te *lazy.TOCEntry, seg int) int {
		p.toc = append(p.toc, te)
		p.tocSeg = append(p.tocSeg, seg)
		return len(p.toc) - 1
	}

	unames, gnames := map[int]string{}, map[int]string{}
	ifChanged := func(m map[int]string, id int, name string) string {
		if name == "" || m[id] == name {
			return ""
		}
		m[id] = name
		return name
	}
	tocEntry := func(h *tar.Header) *lazy.TOCEntry {
		te := &lazy.TOCEntry{
			TOCEntry: estargz.TOCEntry{
				Name:        h.Name,
				Type:        encTypeName(h.Typeflag),
				Size:        h.Size,
				ModTime3339: encTime(h.ModTime),
				Mode:        h.Mode,
				UID:         h.Uid,
				GID:         h.Gid,
				Uname:       ifChanged(unames, h.Uid, h.Uname),
				Gname:       ifChanged(gnames, h.Gid, h.Gname),
			},
			AccessTime: encTime(h.AccessTime),
			ChangeTime: encTime(h.ChangeTime),
		}
		switch h.Typeflag {
		case tar.TypeLink, tar.TypeSymlink:
			te.LinkName = h.Linkname
		case tar.TypeChar, tar.TypeBlock:
			te.DevMajor, te.DevMinor = int(h.Devmajor), int(h.Devminor)
		}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if te.Xattrs == nil {
					te.Xattrs = map[string][]byte{}
				}
				te.Xattrs[x] = []byte(v)
			}
		}
		return te
	}
	// chunks adds the TOC entries of regular file e's data, each chunk in a
	// segment of its own from src, and returns the index of its "reg" entry.
	onDemand := make(map[string]bool, len(opt.OnDemand))
	for _, n := range opt.OnDemand {
		onDemand[encCleanName(n)] = true
	}
	chunks := func(e *encEntry, te *lazy.TOCEntry, restAt int, startup bool) int {
		startup = startup || onDemand[e.name]
		regIdx := -1
		for off := int64(0); off < e.size; off += chunk {
			n := min(chunk, e.size-off)
			cut()
			cur.startup = startup
			if restAt >= 0 && p.restSeg < 0 {
				p.restSeg = len(p.segs)
			}
			ce := te
			if off > 0 {
				ce = &lazy.TOCEntry{TOCEntry: estargz.TOCEntry{Name: te.Name, Type: "chunk"}}
			}
			ce.ChunkOffset = off
			if e.size > chunk {
				ce.ChunkSize = n
			}
			ce.InnerOffset = cur.size
			idx := newTOC(ce, len(p.segs))
			if off == 0 {
				regIdx = idx
			}
			if e.litData != nil {
				add(encSpan{n: n, lit: e.litData[off : off+n], toc: idx})
			} else {
				add(encSpan{off: e.dataOff + off, n: n, toc: idx})
			}
		}
		p.lastSeg[regIdx] = len(p.segs)
		if e.size > chunk {
			p.multi[e] = regIdx
		}
		return regIdx
	}

	// Under KeepOrder, the copies come first, outside the tar stream: their
	// TOC entries, then the landmark where they end; the stream's bytes
	// of the same files are then plain data that no TOC entry points at.
	copied := make(map[*encEntry]bool, len(copies))
	for _, e := range copies {
		copied[e] = true
		chunks(e, tocEntry(e.hdr), -1, true)
	}
	if len(copies) > 0 {
		cut()
		p.copySegs = len(p.segs)
		p.restSeg = p.copySegs
		for s := range p.segs {
			p.segs[s].input = 0 // read twice; progress counts the stream
		}
		if tocLandmark != nil {
			p.landmark = newTOC(tocLandmark, -1)
		}
	}

	for i, e := range p.entries {
		if i == rest && tocLandmark != nil {
			p.landmark = newTOC(tocLandmark, -1)
		}
		h := e.hdr
		if cur.size >= encMaxHeaderRun {
			cut()
		}
		if e.lit != nil {
			add(encSpan{n: int64(len(e.lit)), lit: e.lit, toc: -1})
		} else {
			add(encSpan{off: e.hdrOff, n: e.dataOff - e.hdrOff, toc: -1})
		}
		if copied[e] {
			// Its TOC entries point at its copy.
			if e.litData != nil {
				add(encSpan{n: e.size, lit: e.litData, toc: -1})
				add(encSpan{n: e.pad(), lit: make([]byte, e.pad()), toc: -1})
			} else {
				add(encSpan{off: e.dataOff, n: e.size + e.pad(), toc: -1})
			}
			continue
		}
		te := tocEntry(h)
		if h.Typeflag != tar.TypeReg || e.size == 0 {
			if h.Typeflag == tar.TypeReg {
				te.Digest = encEmptyDigest // as estargz; containers/storage assumes it when absent
			}
			newTOC(te, -1)
			continue
		}
		restAt := -1
		if rest >= 0 && i >= rest {
			restAt = i
		}
		chunks(e, te, restAt, i < rest)
		if e.litData != nil {
			add(encSpan{n: e.pad(), lit: make([]byte, e.pad()), toc: -1})
		} else {
			add(encSpan{off: e.dataOff + e.size, n: e.pad(), toc: -1})
		}
	}
	if tocLandmark != nil && p.landmark < 0 {
		p.landmark = newTOC(tocLandmark, -1) // every entry is prioritized
	}
	if layout.EndArchive {
		p.trailer = make([]byte, 2*encBlock)
		add(encSpan{n: int64(len(p.trailer)), lit: p.trailer, toc: -1})
	}
	cut()
	p.chunkDigest = make([]string, len(p.toc))
	return p
}

// encCopies returns the entries whose data the prioritized names reach,
// under EncodeOptions.KeepOrder: regular files with data, a hard link's
// target for a link, each once, in the order given; and the names the layer
// does not have.
func encCopies(entries []*encEntry, prioritized []string) (copies []*encEntry, missing []string) {
	byName := make(map[string]*encEntry, len(entries))
	for _, e := range entries {
		byName[e.name] = e
	}
	seen := map[*encEntry]bool{}
	for _, want := range prioritized {
		e, ok := byName[encCleanName(want)]
		if !ok {
			missing = append(missing, want)
			continue
		}
		for hops := 0; e != nil && e.hdr.Typeflag == tar.TypeLink && hops < 256; hops++ {
			e = byName[encCleanName(e.hdr.Linkname)]
		}
		if e == nil || e.hdr.Typeflag != tar.TypeReg || e.size == 0 || seen[e] {
			continue
		}
		seen[e] = true
		copies = append(copies, e)
	}
	return copies, missing
}

// encEmptyDigest is the digest of no bytes.
const encEmptyDigest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
