package oracle

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// TOCOption changes how [ReadTOC] reads a layer.
type TOCOption func(*tocOptions)

type tocOptions struct {
	tocDigest   digest.Digest
	parallelism int
}

// WithTOCDigest verifies the TOC JSON against d (the layer annotation
// "containerd.io/snapshot/stargz/toc.digest") with estargz's VerifyTOC.
// By default the TOC is not checked against a digest; the chunks always
// are, against the TOC.
func WithTOCDigest(d digest.Digest) TOCOption {
	return func(o *tocOptions) { o.tocDigest = d }
}

// TOCParallelism reads and verifies up to n files at a time; ra must then
// allow concurrent ReadAt calls, as io.ReaderAt promises and *os.File
// does. The default is 1.
func TOCParallelism(n int) TOCOption {
	return func(o *tocOptions) { o.parallelism = n }
}

// Names a lazy puller treats specially.
const (
	// TOCName is the tar entry eStargz stores its TOC in. It is not a
	// TOC entry, so the lazy view never has it; a full pull (tar
	// extraction of the blob) writes it as a file at the root.
	TOCName = estargz.TOCTarName
	// PrefetchLandmark and NoPrefetchLandmark are TOC entries at the
	// root that mark the end of the prioritized files; stargz-snapshotter
	// hides them (fs/layer/node.go Readdir and Lookup), a full pull
	// extracts them.
	PrefetchLandmark   = estargz.PrefetchLandmark
	NoPrefetchLandmark = estargz.NoPrefetchLandmark
)

// LazyOnlyNames are the root entries a full pull of an eStargz layer
// extracts and a lazy pull does not show; pass them to [IgnoreRootNames]
// to compare the two views.
var LazyOnlyNames = []string{TOCName, PrefetchLandmark, NoPrefetchLandmark}

// ReadTOC returns one eStargz or zstd:chunked layer as a lazy puller
// (stargz-snapshotter) presents it, read with the real estargz reader
// (estargz.Open, with the zstd:chunked decompressor too):
//
//   - the entries reachable from the root of the reader's tree, in tree
//     order: directories (implicit ones too, as the 0755 root:root
//     directories the reader makes them), files, symlinks and devices.
//     The reader resolves duplicate names (the last TOC entry of a name
//     wins, and a directory gathers the children of every entry of its
//     name) and hard links (to the last entry of the target name) its
//     own way: that is the point of reading it with the reader;
//   - a path that shares a TOC entry with an earlier path becomes a
//     [TypeHardlink] entry to it, with the same metadata;
//   - ".wh.NAME" children become [TypeWhiteout] markers and
//     ".wh..wh..opq" children [TypeOpaque] markers, as the snapshotter
//     turns them into overlayfs whiteouts and opaque directories; a
//     whiteout whose NAME is also a child of the directory is not shown
//     (the snapshotter shows the child), and neither are ".wh..wh."
//     names: both are listed in Layer.Hidden;
//   - the prefetch landmarks at the root are left out and listed in
//     Layer.Hidden; [TOCName] is not a TOC entry. The snapshotter's own
//     ".stargz-snapshotter" directory at the root is not included.
//   - times are whole seconds (the TOC rounds them); a TOC entry with no
//     time (the writer leaves it out for the Unix epoch) has the epoch.
//
// Every file's content is read through the reader and hashed, each chunk
// is verified against its TOC chunk digest and each file against its TOC
// digest. Errors (a bad footer or TOC, the reader panicking on a hostile
// one, a digest mismatch, a hard link to a directory) wrap [ErrTOC].
func ReadTOC(ra io.ReaderAt, size int64, opts ...TOCOption) (*Layer, error) {
	o := &tocOptions{parallelism: 1}
	for _, opt := range opts {
		opt(o)
	}
	r, v, err := openTOC(ra, size, o.tocDigest)
	if err != nil {
		return nil, err
	}
	root, ok := r.Lookup("")
	if !ok {
		return nil, fmt.Errorf("%w: no root directory", ErrTOC)
	}
	t := &tocWalk{r: r, l: &Layer{TOCDigest: r.TOCDigest().String()}, seen: map[*estargz.TOCEntry]string{}}
	if err := t.dir(".", root); err != nil {
		return nil, err
	}
	if err := t.contents(v, o.parallelism); err != nil {
		return nil, err
	}
	return t.l, nil
}

// openTOC opens the layer and its verifier. estargz v0.19.1 trusts the
// footer: a TOC offset past the end of an eStargz blob makes it slice
// with a negative length (a panic, an error here), and the TOC length of
// a zstd:chunked footer is allocated as given (terabytes, or a fatal out
// of memory that no recover catches), so that footer is checked first.
func openTOC(ra io.ReaderAt, size int64, tocDigest digest.Digest) (r *estargz.Reader, v estargz.TOCEntryVerifier, err error) {
	if err := checkZstdChunkedFooter(ra, size); err != nil {
		return nil, nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			r, v, err = nil, nil, fmt.Errorf("%w: the estargz reader panicked: %v", ErrTOC, p)
		}
	}()
	r, err = estargz.Open(io.NewSectionReader(ra, 0, size), estargz.WithDecompressors(new(zstdchunked.Decompressor)))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: opening: %w", ErrTOC, err)
	}
	if tocDigest != "" {
		v, err = r.VerifyTOC(tocDigest)
	} else {
		v, err = r.Verifiers()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrTOC, err)
	}
	return r, v, nil
}

// zstdChunkedMagic ends the footer of a zstd:chunked blob (the 8 bytes at
// offset 32 of its 40-byte footer, after the TOC offset and lengths).
var zstdChunkedMagic = []byte{0x47, 0x6e, 0x55, 0x6c, 0x49, 0x6e, 0x55, 0x78}

func checkZstdChunkedFooter(ra io.ReaderAt, size int64) error {
	const footerSize = zstdchunked.FooterSize
	if size < footerSize {
		return nil
	}
	f := make([]byte, footerSize)
	if _, err := ra.ReadAt(f, size-footerSize); err != nil {
		return fmt.Errorf("%w: reading the footer: %w", ErrTOC, err)
	}
	if !bytes.Equal(f[32:40], zstdChunkedMagic) {
		return nil
	}
	off, length := binary.LittleEndian.Uint64(f[0:8]), binary.LittleEndian.Uint64(f[8:16])
	if off < 8 || off > uint64(size) || length > uint64(size)-off {
		return fmt.Errorf("%w: the zstd:chunked footer puts the TOC at [%d, +%d) in a %d-byte blob", ErrTOC, off, length, size)
	}
	return nil
}

type tocWalk struct {
	r     *estargz.Reader
	l     *Layer
	seen  map[*estargz.TOCEntry]string
	files []tocFile // file entries whose content is to be read
}

type tocFile struct {
	index int
	ent   *estargz.TOCEntry
}

func (t *tocWalk) dir(p string, d *estargz.TOCEntry) error {
	children := map[string]*estargz.TOCEntry{}
	d.ForeachChild(func(name string, e *estargz.TOCEntry) bool {
		children[name] = e
		return true
	})
	for _, name := range slices.Sorted(maps.Keys(children)) {
		e := children[name]
		cp := joinPath(p, name)
		switch {
		case name == "" || name == "." || name == ".." || strings.Contains(name, "/"):
			return fmt.Errorf("%w: directory /%s has a child named %q", ErrTOC, p, name)
		case p == "." && (name == PrefetchLandmark || name == NoPrefetchLandmark):
			t.l.Hidden = append(t.l.Hidden, Hidden{cp, "prefetch landmark, hidden at the root"})
			continue
		case name == opaqueName:
			t.l.Entries = append(t.l.Entries, Entry{Index: len(t.l.Entries), Name: cp, Path: p, Type: TypeOpaque})
			continue
		case strings.HasPrefix(name, reservedPrefix):
			t.l.Hidden = append(t.l.Hidden, Hidden{cp, "reserved whiteout name"})
			continue
		case strings.HasPrefix(name, whiteoutPrefix):
			victim := name[len(whiteoutPrefix):]
			if _, ok := children[victim]; ok {
				t.l.Hidden = append(t.l.Hidden, Hidden{cp, "whiteout of a name the same directory has"})
				continue
			}
			t.l.Entries = append(t.l.Entries, Entry{Index: len(t.l.Entries), Name: cp, Path: joinPath(p, victim), Type: TypeWhiteout})
			continue
		}
		if err := t.entry(cp, e); err != nil {
			return err
		}
	}
	return nil
}

func (t *tocWalk) entry(p string, e *estargz.TOCEntry) error {
	en := Entry{
		Index:    len(t.l.Entries),
		Name:     p,
		Path:     p,
		Mode:     e.Mode & 0o7777,
		UID:      e.UID,
		GID:      e.GID,
		ModTime:  e.ModTime(),
		Devmajor: int64(e.DevMajor),
		Devminor: int64(e.DevMinor),
	}
	if en.ModTime.IsZero() {
		en.ModTime = time.Unix(0, 0)
	}
	for k, v := range e.Xattrs {
		if en.Xattrs == nil {
			en.Xattrs = map[string]string{}
		}
		en.Xattrs[k] = string(v)
	}
	if first, ok := t.seen[e]; ok {
		if e.Type == "dir" {
			return fmt.Errorf("%w: /%s and /%s are one directory (a hard link to a directory)", ErrTOC, first, p)
		}
		en.Type, en.Typeflag, en.Linkname = TypeHardlink, '1', first
		en.Devmajor, en.Devminor = 0, 0
		t.l.Entries = append(t.l.Entries, en)
		return nil
	}
	t.seen[e] = p
	switch e.Type {
	case "dir":
		en.Type, en.Typeflag = TypeDir, '5'
		t.l.Entries = append(t.l.Entries, en)
		return t.dir(p, e)
	case "reg":
		if e.Size < 0 {
			return fmt.Errorf("%w: /%s has size %d", ErrTOC, p, e.Size)
		}
		en.Type, en.Typeflag, en.Size = TypeFile, '0', e.Size
		t.files = append(t.files, tocFile{len(t.l.Entries), e})
	case "symlink":
		en.Type, en.Typeflag, en.Linkname = TypeSymlink, '2', e.LinkName
	case "char":
		en.Type, en.Typeflag = TypeChar, '3'
	case "block":
		en.Type, en.Typeflag = TypeBlock, '4'
	case "fifo":
		en.Type, en.Typeflag = TypeFIFO, '6'
	default:
		return fmt.Errorf("%w: /%s has TOC type %q", ErrTOC, p, e.Type)
	}
	if en.Type != TypeChar && en.Type != TypeBlock {
		en.Devmajor, en.Devminor = 0, 0
	}
	t.l.Entries = append(t.l.Entries, en)
	return nil
}

// contents reads, verifies and hashes every file.
func (t *tocWalk) contents(v estargz.TOCEntryVerifier, parallelism int) error {
	var g errgroup.Group
	g.SetLimit(max(parallelism, 1))
	for _, f := range t.files {
		en := &t.l.Entries[f.index]
		g.Go(func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("%w: /%s: the estargz reader panicked: %v", ErrTOC, en.Path, p)
				}
			}()
			d, err := readTOCFile(t.r, v, f.ent)
			if err != nil {
				return fmt.Errorf("%w: /%s: %w", ErrTOC, en.Path, err)
			}
			en.Digest = d
			return nil
		})
	}
	return g.Wait()
}

// maxPiece bounds the bytes read by one ReadAt. The reader decompresses
// from the start of the chunk on every ReadAt, so a chunk is read whole
// when it is not larger than this (estargz's default chunk is 4 MiB).
const maxPiece = 16 << 20

// readTOCFile reads a file chunk by chunk through the reader, verifying
// each chunk against its TOC chunk digest and the whole against the TOC
// file digest.
func readTOCFile(r *estargz.Reader, v estargz.TOCEntryVerifier, ent *estargz.TOCEntry) (Digest, error) {
	var d Digest
	sr, err := r.OpenFile(ent.Name)
	if err != nil {
		return d, err
	}
	h := sha256.New()
	var buf []byte
	for off := int64(0); off < ent.Size; {
		ce, ok := r.ChunkEntryForOffset(ent.Name, off)
		if !ok {
			return d, fmt.Errorf("no chunk at offset %d of %d", off, ent.Size)
		}
		if ce.ChunkOffset != off || ce.ChunkSize <= 0 || ce.ChunkSize > ent.Size-off {
			return d, fmt.Errorf("chunk at offset %d is [%d, +%d)", off, ce.ChunkOffset, ce.ChunkSize)
		}
		cv, err := v.Verifier(ce)
		if err != nil {
			return d, fmt.Errorf("chunk at offset %d: %w", off, err)
		}
		for done := int64(0); done < ce.ChunkSize; {
			n := min(ce.ChunkSize-done, maxPiece)
			if int64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			b := buf[:n]
			if got, err := sr.ReadAt(b, off+done); int64(got) != n {
				return d, fmt.Errorf("reading %d bytes at offset %d: got %d: %v", n, off+done, got, err)
			}
			cv.Write(b)
			h.Write(b)
			done += n
		}
		if !cv.Verified() {
			return d, fmt.Errorf("chunk at offset %d (%d bytes) does not match its TOC digest", off, ce.ChunkSize)
		}
		off += ce.ChunkSize
	}
	h.Sum(d[:0])
	if ent.Digest != "" && ent.Digest != d.String() {
		return d, fmt.Errorf("content %s does not match the TOC digest %s", d, ent.Digest)
	}
	return d, nil
}
