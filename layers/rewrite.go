package layers

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"path"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Decompress returns the uncompressed tar stream of a layer blob, sniffing
// gzip, zstd or no compression from its first bytes. Close the returned
// reader to release the decompressor; it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, _ := br.Peek(sniffLen)
	switch c := sniff(magic); c {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("%w: gzip header: %v", ErrCorrupt, err)
		}
		return zr, c, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, c, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		return zr.IOReadCloser(), c, nil
	default:
		return io.NopCloser(br), c, nil
	}
}

// RewritePlan says what Rewrite keeps and changes.
type RewritePlan struct {
	// Keep says whether entry i of the index stays; nil keeps every entry.
	Keep func(i int) bool
	// Links replaces hard link entries whose target is not in the layer,
	// by the index of the entry.
	Links map[int]LinkSource
	// Dirs adds directory entries right before entry i, as the given
	// entries of lower layers describe them (path, mode, owner, time,
	// extended attributes): a lazy puller presents a directory the layer
	// has no entry for as 0755, root-owned, from 1970, where a full pull
	// keeps the lower directory's.
	Dirs map[int][]*Entry
	// Moved renames entries, by index, to where containerd's applier
	// lands them through a symlinked directory (SymlinkParents): a
	// moved hard link also gets its resolved target.
	Moved map[int]Moved
}

// LinkSource is what a hard link entry becomes when the file it links to is
// in a lower layer: a lazy puller resolves hard links inside one layer only,
// and a later layer may delete the lower name. Either Relink names an
// earlier entry of the same layer that already holds the file, and the
// entry links there; or the entry becomes the file itself: its own header
// (name, owner, mode, times, extended attributes) with File's type, size,
// symlink target, device numbers and the extended attributes the link does
// not set, and, for a regular file, the content Open returns.
type LinkSource struct {
	Relink string
	File   *Entry
	// Open returns File's content: exactly File.Size bytes.
	Open func() (io.ReadCloser, error)
}

// Rewrite copies the layer blob r, which idx indexes, to w as an
// uncompressed tar that holds only the entries plan keeps, with the hard
// links plan replaces. eStargz metadata entries (TOC, landmarks) and PAX
// global headers are always left out. Other headers and contents are copied
// as they are; the output depends only on the input and the plan. It
// returns the number of bytes written.
func Rewrite(ctx context.Context, r io.Reader, idx *Index, plan RewritePlan, w io.Writer) (int64, error) {
	dec, _, err := Decompress(r)
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	cw := &countWriter{w: w}
	tr := tar.NewReader(dec)
	tw := tar.NewWriter(cw)
	buf := make([]byte, 256<<10)
	i := 0
	for {
		if err := ctx.Err(); err != nil {
			return cw.n, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return cw.n, fmt.Errorf("rewriting: reading entry %d: %w", i, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // not an entry (see Index.GlobalHeaders)
		}
		switch hdr.Name {
		case TOCName, PrefetchLandmark, NoPrefetchLandmark:
			if hdr.Typeflag == tar.TypeReg {
				continue
			}
		}
		if i >= len(idx.Entries) || idx.Entries[i].Name != hdr.Name {
			return cw.n, fmt.Errorf("rewriting: entry %d (%q) does not match the layer index", i, hdr.Name)
		}
		k := plan.Keep == nil || plan.Keep(i)
		ls, relinked := plan.Links[i]
		dirs := plan.Dirs[i]
		if m, ok := plan.Moved[i]; ok {
			move(hdr, &idx.Entries[i], m)
		}
		i++
		if !k {
			continue
		}
		for _, d := range dirs {
			if err := writeHeader(tw, dirHeader(d)); err != nil {
				return cw.n, fmt.Errorf("rewriting: %w", err)
			}
		}
		if relinked && hdr.Typeflag == tar.TypeLink {
			if err := writeLinkSource(tw, hdr, ls, buf); err != nil {
				return cw.n, fmt.Errorf("rewriting: %w", err)
			}
			continue
		}
		if len(hdr.PAXRecords) > 0 {
			hdr.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return cw.n, fmt.Errorf("rewriting: writing header of %q: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.CopyBuffer(tw, tr, buf); err != nil {
				return cw.n, fmt.Errorf("rewriting: copying %q: %w", hdr.Name, err)
			}
		}
	}
	if i != len(idx.Entries) {
		return cw.n, fmt.Errorf("rewriting: layer has %d entries, its index %d", i, len(idx.Entries))
	}
	if err := tw.Close(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// move renames hdr, the header of entry e, to where m says it lands.
func move(hdr *tar.Header, e *Entry, m Moved) {
	switch e.Type {
	case TypeWhiteout:
		hdr.Name = joinRel(parent(m.Path), whiteoutPrefix+path.Base(m.Path))
	case TypeOpaque:
		hdr.Name = joinRel(m.Path, whiteoutOpaqueDirName)
	case TypeDir:
		hdr.Name = m.Path + "/"
	default:
		hdr.Name = m.Path
	}
	if m.Linkname != "" && hdr.Typeflag == tar.TypeLink {
		hdr.Linkname = m.Linkname
	}
	// The new names may not fit the header's format: the writer picks
	// the first one they fit.
	hdr.Format = tar.FormatUnknown
	if hdr.PAXRecords != nil {
		// The writer makes the records of long names anew.
		hdr.PAXRecords = maps.Clone(hdr.PAXRecords)
		delete(hdr.PAXRecords, "path")
		delete(hdr.PAXRecords, "linkpath")
	}
}

// writeLinkSource writes hard link hdr as ls says.
func writeLinkSource(tw *tar.Writer, hdr *tar.Header, ls LinkSource, buf []byte) error {
	h := *hdr
	// The reader leaves the records of the old link name and size in
	// PAXRecords; the writer makes them anew from the fields.
	h.PAXRecords = maps.Clone(hdr.PAXRecords)
	delete(h.PAXRecords, "linkpath")
	delete(h.PAXRecords, "size")
	if ls.Relink != "" {
		h.Linkname = ls.Relink
		return writeHeader(tw, &h)
	}
	f := ls.File
	if f == nil {
		return fmt.Errorf("hard link %q: no file to replace it with", hdr.Name)
	}
	h.Linkname, h.Size = "", 0
	switch f.Type {
	case TypeReg:
		h.Typeflag, h.Size = tar.TypeReg, f.Size
	case TypeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, f.Linkname
	case TypeChar:
		h.Typeflag = tar.TypeChar
	case TypeBlock:
		h.Typeflag = tar.TypeBlock
	case TypeFIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return fmt.Errorf("hard link %q: cannot link to a %s", hdr.Name, f.Type)
	}
	if f.Type == TypeChar || f.Type == TypeBlock {
		h.Devmajor, h.Devminor = f.Devmajor, f.Devminor
	}
	for k, v := range f.Xattrs {
		key := "SCHILY.xattr." + k
		if _, own := h.PAXRecords[key]; !own {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords[key] = v
		}
	}
	if err := writeHeader(tw, &h); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeReg || h.Size == 0 {
		return nil
	}
	if ls.Open == nil {
		return fmt.Errorf("hard link %q: no content for the file it links to", hdr.Name)
	}
	rc, err := ls.Open()
	if err != nil {
		return fmt.Errorf("hard link %q: reading the file it links to: %w", hdr.Name, err)
	}
	defer rc.Close()
	n, err := io.CopyBuffer(tw, io.LimitReader(rc, h.Size), buf)
	if err == nil && n != h.Size {
		err = fmt.Errorf("%w: %d of %d bytes", io.ErrUnexpectedEOF, n, h.Size)
	}
	if err != nil {
		return fmt.Errorf("hard link %q: copying the file it links to: %w", hdr.Name, err)
	}
	return nil
}

// dirHeader is the header of directory entry d.
func dirHeader(d *Entry) *tar.Header {
	h := &tar.Header{Typeflag: tar.TypeDir, Name: d.Path + "/", Mode: d.Mode, Uid: d.UID, Gid: d.GID, ModTime: d.ModTime}
	for k, v := range d.Xattrs {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+k] = v
	}
	if d.ModTime.Nanosecond() != 0 {
		h.Format = tar.FormatPAX
	}
	return h
}

// writeHeader writes a header made anew, in its format when the fields fit
// it and as PAX when they do not (a longer link name, say).
func writeHeader(tw *tar.Writer, h *tar.Header) error {
	if len(h.PAXRecords) > 0 {
		h.Format = tar.FormatPAX
	}
	err := tw.WriteHeader(h)
	if err != nil && h.Format != tar.FormatPAX {
		// A header that does not fit its format is a non-fatal error of
		// the writer; a fatal one fails again.
		h.Format = tar.FormatPAX
		err = tw.WriteHeader(h)
	}
	if err != nil {
		return fmt.Errorf("writing header of %q: %w", h.Name, err)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
