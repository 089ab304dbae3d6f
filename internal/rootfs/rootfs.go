package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/coldstart-dev/coldstart/internal/ctxio"
	"github.com/coldstart-dev/coldstart/internal/funcopt"
	"github.com/coldstart-dev/coldstart/layers"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Errors returned by Extract; test with errors.Is.
var (
	// ErrUnsafePath is layers.ErrUnsafePath: an entry whose name is absolute,
	// climbs out with "..", or goes through a symbolic link written by an
	// earlier entry or layer.
	ErrUnsafePath = layers.ErrUnsafePath
	// ErrLayerMismatch reports a layer whose tar stream does not match the
	// index it was merged from.
	ErrLayerMismatch = errors.New("layer does not match its index")
	// ErrNotEmpty reports a destination directory that already holds files.
	ErrNotEmpty = errors.New("destination directory is not empty")
)

// maxNotes bounds Result.Notes.
const maxNotes = 100

// Option configures Extract.
type Option func(*options) error

type options struct {
	logger *slog.Logger
	owners bool
}

// WithLogger sets the logger that receives a debug record per layer.
// Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("rootfs: WithLogger(nil): logger must not be nil")
		}
		o.logger = l
		return nil
	}
}

// WithOwners sets whether entries get the owners the layers record.
// Default: true when the process runs as root (only root can give files
// away), false otherwise.
func WithOwners(on bool) Option {
	return func(o *options) error {
		o.owners = on
		return nil
	}
}

// Result describes what Extract wrote.
type Result struct {
	// Entries counts the filesystem objects written, directories included.
	Entries int
	// Bytes counts the file content written.
	Bytes int64
	// Notes say what was skipped or applied only in part (device nodes,
	// extended attributes the filesystem refused, hard links whose target
	// is gone). At most 100 are kept.
	Notes []string
}

// Extract writes the merged root filesystem that ov describes into the
// empty directory dir. ls are the layers ov was merged from, bottom first:
// ov.Layers()[i] must be the index of ls[i]. Each layer that holds a visible
// entry is decompressed and read once, in order; the others are not read.
//
// Nothing is written outside dir (see the package documentation). On error,
// dir holds a partial tree that the caller removes. Extract honours ctx
// between entries and while copying content.
func Extract(ctx context.Context, dir string, ls []v1.Layer, ov *layers.Overlay, opts ...Option) (*Result, error) {
	o := &options{logger: slog.New(slog.DiscardHandler), owners: os.Geteuid() == 0}
	if _, err := funcopt.Apply(o, opts); err != nil {
		return nil, err
	}
	if ov == nil {
		return nil, errors.New("rootfs: Extract: nil overlay")
	}
	idxs := ov.Layers()
	if len(idxs) != len(ls) {
		return nil, fmt.Errorf("rootfs: Extract: %d layers for an overlay of %d", len(ls), len(idxs))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	defer root.Close()
	if err := checkEmpty(root, dir); err != nil {
		return nil, err
	}
	x := &extractor{
		ctx:     ctx,
		root:    root,
		o:       o,
		res:     &Result{},
		dirs:    map[string]bool{".": true},
		dirMeta: map[string]*layers.Entry{},
		xattrs:  map[string]*xattrFailure{},
	}
	defer x.closeParent()
	for li, l := range ls {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		plan := planLayer(ov, li)
		if len(plan.want) == 0 {
			continue
		}
		if idxs[li].Foreign {
			x.notef("layer %d is a foreign layer: its content is not available", li)
			continue
		}
		o.logger.Debug("rootfs: extracting layer", "layer", li, "digest", idxs[li].Digest, "entries", len(plan.want))
		if err := x.layer(li, l, idxs[li], plan); err != nil {
			return nil, fmt.Errorf("extracting layer %d %s: %w", li, idxs[li].Digest, err)
		}
	}
	if err := x.finish(); err != nil {
		return nil, err
	}
	x.flushXattrNotes()
	return x.res, nil
}

func checkEmpty(root *os.Root, dir string) error {
	f, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("extracting into %s: %w", dir, ErrNotEmpty)
	}
	return nil
}

// layerPlan says which entries of one layer are written, and where.
type layerPlan struct {
	// want holds the entries to read: visible ones, and the hidden regular
	// files whose content visible hard links need.
	want map[int]bool
	// materialize maps a hidden regular file to the visible hard links that
	// carry its content: the first gets the content, the others link to it.
	materialize map[int][]int
	// done marks hard links already written through materialize.
	done map[int]bool
	// last is the highest entry index in want: reading stops after it.
	last int
}

func planLayer(ov *layers.Overlay, li int) layerPlan {
	entries := ov.Layers()[li].Entries
	p := layerPlan{want: map[int]bool{}, materialize: map[int][]int{}, done: map[int]bool{}, last: -1}
	visible := func(ei int) bool { return ov.Visible(layers.Ref{Layer: li, Entry: ei}) }
	add := func(ei int) {
		p.want[ei] = true
		if ei > p.last {
			p.last = ei
		}
	}
	for ei := range entries {
		e := &entries[ei]
		if e.Type.IsMarker() || !visible(ei) {
			continue
		}
		add(ei)
		if e.Type != layers.TypeHardlink {
			continue
		}
		// A visible hard link whose target this layer hides again: the
		// content comes from the hidden regular file.
		t := e.LinkIndex
		for t >= 0 && !visible(t) && entries[t].Type == layers.TypeHardlink {
			t = entries[t].LinkIndex
		}
		if t >= 0 && !visible(t) && entries[t].Type == layers.TypeReg {
			p.materialize[t] = append(p.materialize[t], ei)
			add(t)
		}
	}
	return p
}

// isSpecial reports the eStargz metadata entries that layers.Index leaves
// out of Entries.
func isSpecial(h *tar.Header) bool {
	switch h.Name {
	case layers.TOCName, layers.PrefetchLandmark, layers.NoPrefetchLandmark:
		return h.Typeflag == tar.TypeReg
	}
	return false
}

type extractor struct {
	ctx     context.Context
	root    *os.Root
	o       *options
	res     *Result
	dirs    map[string]bool          // directories known to exist (no links)
	dirMeta map[string]*layers.Entry // metadata applied by finish
	xattrs  map[string]*xattrFailure // by attribute name
	dropped int                      // notes over maxNotes

	parentPath string
	parentFile *os.File
}

type xattrFailure struct {
	n     int
	first string
	err   error
}

func (x *extractor) notef(format string, args ...any) {
	if len(x.res.Notes) >= maxNotes {
		x.dropped++
		return
	}
	x.res.Notes = append(x.res.Notes, fmt.Sprintf(format, args...))
}

func (x *extractor) layer(li int, l v1.Layer, idx *layers.Index, plan layerPlan) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	dec, _, err := layers.Decompress(rc)
	if err != nil {
		return err
	}
	defer dec.Close()
	tr := tar.NewReader(ctxio.Reader(x.ctx, dec))
	for ei := 0; ei <= plan.last; {
		hdr, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%w: the tar stream ends after %d of %d entries", ErrLayerMismatch, ei, len(idx.Entries))
		}
		if err != nil {
			if ctxErr := x.ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return fmt.Errorf("reading tar entry %d: %w", ei, err)
		}
		if isSpecial(hdr) {
			continue
		}
		e := &idx.Entries[ei]
		if e.Name != hdr.Name {
			return fmt.Errorf("%w: entry %d is %q in the index, %q in the stream", ErrLayerMismatch, ei, e.Name, hdr.Name)
		}
		cur := ei
		ei++
		if !plan.want[cur] {
			continue
		}
		if err := x.ctx.Err(); err != nil {
			return err
		}
		if links, ok := plan.materialize[cur]; ok {
			if err := x.materialize(e, entriesAt(idx, links), tr); err != nil {
				return err
			}
			for _, l := range links {
				plan.done[l] = true
			}
			// The hidden file itself is not written.
			continue
		}
		if plan.done[cur] {
			continue
		}
		if err := x.apply(e, tr); err != nil {
			return fmt.Errorf("entry %q: %w", e.Name, err)
		}
	}
	return nil
}

func entriesAt(idx *layers.Index, is []int) []*layers.Entry {
	out := make([]*layers.Entry, len(is))
	for i, ei := range is {
		out[i] = &idx.Entries[ei]
	}
	return out
}

// materialize writes the content of the hidden regular file src to the
// first of links and links the others to it.
func (x *extractor) materialize(src *layers.Entry, links []*layers.Entry, r io.Reader) error {
	first := *src
	first.Path, first.Name = links[0].Path, links[0].Name
	if err := x.apply(&first, r); err != nil {
		return fmt.Errorf("entry %q: %w", links[0].Name, err)
	}
	for _, l := range links[1:] {
		le := *l
		le.Linkname = first.Path
		le.LinkIndex = -1
		if err := x.apply(&le, nil); err != nil {
			return fmt.Errorf("entry %q: %w", l.Name, err)
		}
	}
	return nil
}

// apply writes one visible entry.
func (x *extractor) apply(e *layers.Entry, r io.Reader) error {
	p := e.Path
	if p == "." {
		if e.Type == layers.TypeDir {
			x.dirMeta["."] = e
		} else {
			x.notef("%q: a %s at the root is ignored", e.Name, e.Type)
		}
		return nil
	}
	if !safeRel(p) {
		return fmt.Errorf("%w: %q", ErrUnsafePath, e.Name)
	}
	if err := x.parents(p); err != nil {
		return err
	}
	fi, err := x.root.Lstat(p)
	switch {
	case err == nil && e.Type == layers.TypeDir && fi.IsDir():
		x.dirs[p] = true
		x.dirMeta[p] = e
		return nil
	case err == nil:
		if err := x.remove(p); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	switch e.Type {
	case layers.TypeDir:
		if err := x.root.Mkdir(p, 0o755); err != nil {
			return err
		}
		x.dirs[p] = true
		x.dirMeta[p] = e
	case layers.TypeReg:
		if err := x.writeFile(p, e, r); err != nil {
			return err
		}
	case layers.TypeSymlink:
		if err := x.root.Symlink(e.Linkname, p); err != nil {
			return err
		}
		if err := x.chown(p, e); err != nil {
			return err
		}
		if len(e.Xattrs) > 0 {
			x.notef("%q: extended attributes of a symbolic link are not set", e.Name)
		}
		if err := x.setTimes(p, e); err != nil {
			return err
		}
	case layers.TypeHardlink:
		if err := x.checkTarget(e); err != nil {
			return err
		}
		if _, err := x.root.Lstat(e.Linkname); err != nil {
			x.notef("%q: hard link to %q, which is not in the filesystem: skipped", e.Name, e.Linkname)
			return nil
		}
		if err := x.root.Link(e.Linkname, p); err != nil {
			return err
		}
	case layers.TypeChar, layers.TypeBlock:
		x.notef("%q: device node (%s %d:%d) not created", e.Name, e.Type, e.Devmajor, e.Devminor)
		return nil
	case layers.TypeFIFO:
		ok, err := x.mkfifo(p, e)
		if err != nil || !ok {
			return err
		}
		if err := x.chown(p, e); err != nil {
			return err
		}
		if err := x.root.Chmod(p, perm(e.Mode)); err != nil {
			return err
		}
		if err := x.setTimes(p, e); err != nil {
			return err
		}
	default:
		x.notef("%q: entry of type %s skipped", e.Name, e.Type)
		return nil
	}
	x.res.Entries++
	return nil
}

// parents makes sure every ancestor of p is a real directory, creating the
// missing ones (mode 0755, as containerd does) and refusing symbolic links.
func (x *extractor) parents(p string) error {
	dir := path.Dir(p)
	if x.dirs[dir] {
		return nil
	}
	if err := x.parents(dir); err != nil {
		return err
	}
	fi, err := x.root.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(dir, 0o755); err != nil {
			return err
		}
		x.res.Entries++
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %q goes through the symbolic link %q", ErrUnsafePath, p, dir)
	case !fi.IsDir():
		return fmt.Errorf("%w: the parent %q of %q is not a directory", ErrUnsafePath, dir, p)
	}
	x.dirs[dir] = true
	return nil
}

// checkTarget refuses a hard link whose target is outside the root or goes
// through a symbolic link.
func (x *extractor) checkTarget(e *layers.Entry) error {
	t := e.Linkname
	if !safeRel(t) {
		return fmt.Errorf("%w: hard link %q to %q", ErrUnsafePath, e.Name, t)
	}
	for d := path.Dir(t); d != "."; d = path.Dir(d) {
		if x.dirs[d] {
			break
		}
		fi, err := x.root.Lstat(d)
		if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: hard link %q to %q goes through the symbolic link %q", ErrUnsafePath, e.Name, t, d)
		}
	}
	return nil
}

// safeRel reports whether p is a clean relative path that stays below the
// root.
func safeRel(p string) bool {
	return p != "" && p != "." && !path.IsAbs(p) && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// remove deletes what p holds, to replace it.
func (x *extractor) remove(p string) error {
	if x.parentPath == p || strings.HasPrefix(x.parentPath, p+"/") {
		x.closeParent()
	}
	if err := x.root.RemoveAll(p); err != nil {
		return err
	}
	for d := range x.dirs {
		if d == p || strings.HasPrefix(d, p+"/") {
			delete(x.dirs, d)
		}
	}
	for d := range x.dirMeta {
		if d == p || strings.HasPrefix(d, p+"/") {
			delete(x.dirMeta, d)
		}
	}
	return nil
}

func (x *extractor) writeFile(p string, e *layers.Entry, r io.Reader) error {
	f, err := x.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// The content is checked against the index: a source that serves
	// other bytes the second time is caught.
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err == nil && n != e.Size {
		err = fmt.Errorf("%w: %d bytes in the stream, %d in the index", ErrLayerMismatch, n, e.Size)
	}
	if err == nil && !bytes.Equal(h.Sum(nil), e.Digest[:]) {
		err = fmt.Errorf("%w: the content does not hash to the digest in the index", ErrLayerMismatch)
	}
	if err == nil && x.o.owners {
		err = f.Chown(e.UID, e.GID)
	}
	if err == nil {
		// After chown, which clears the setuid and setgid bits.
		err = f.Chmod(perm(e.Mode))
	}
	if err == nil {
		x.setXattrs(f, e)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	x.res.Bytes += n
	return x.setTimes(p, e)
}

func (x *extractor) chown(p string, e *layers.Entry) error {
	if !x.o.owners {
		return nil
	}
	return x.root.Lchown(p, e.UID, e.GID)
}

// finish applies the metadata of directories, deepest first, so that adding
// children does not change a directory's mtime afterwards.
func (x *extractor) finish() error {
	ps := make([]string, 0, len(x.dirMeta))
	for p := range x.dirMeta {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		di, dj := strings.Count(ps[i], "/"), strings.Count(ps[j], "/")
		if ps[i] == "." {
			di = -1
		}
		if ps[j] == "." {
			dj = -1
		}
		if di != dj {
			return di > dj
		}
		return ps[i] < ps[j]
	})
	for _, p := range ps {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		e := x.dirMeta[p]
		if err := x.chown(p, e); err != nil {
			return fmt.Errorf("directory %q: %w", e.Name, err)
		}
		if err := x.root.Chmod(p, perm(e.Mode)); err != nil {
			return fmt.Errorf("directory %q: %w", e.Name, err)
		}
		if len(e.Xattrs) > 0 {
			f, err := x.root.Open(p)
			if err != nil {
				return fmt.Errorf("directory %q: %w", e.Name, err)
			}
			x.setXattrs(f, e)
			f.Close()
		}
		if err := x.setTimes(p, e); err != nil {
			return fmt.Errorf("directory %q: %w", e.Name, err)
		}
		x.res.Entries++
	}
	if x.dropped > 0 {
		x.res.Notes = append(x.res.Notes, fmt.Sprintf("... and %d more notes", x.dropped))
	}
	return nil
}

func (x *extractor) setXattrs(f *os.File, e *layers.Entry) {
	names := make([]string, 0, len(e.Xattrs))
	for k := range e.Xattrs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if err := setXattr(f, k, e.Xattrs[k]); err != nil {
			xf := x.xattrs[k]
			if xf == nil {
				xf = &xattrFailure{first: e.Name, err: err}
				x.xattrs[k] = xf
			}
			xf.n++
		}
	}
}

func (x *extractor) flushXattrNotes() {
	names := make([]string, 0, len(x.xattrs))
	for k := range x.xattrs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		xf := x.xattrs[k]
		x.res.Notes = append(x.res.Notes, fmt.Sprintf("extended attribute %s not set on %d files (first %q): %v", k, xf.n, xf.first, xf.err))
	}
}

func (x *extractor) closeParent() {
	if x.parentFile != nil {
		x.parentFile.Close()
		x.parentFile, x.parentPath = nil, ""
	}
}

// parent returns an open directory handle of dir (inside the root), cached
// for the next entries of the same directory.
func (x *extractor) parent(dir string) (*os.File, error) {
	if x.parentFile != nil && x.parentPath == dir {
		return x.parentFile, nil
	}
	x.closeParent()
	f, err := x.root.Open(dir)
	if err != nil {
		return nil, err
	}
	x.parentFile, x.parentPath = f, dir
	return f, nil
}

// perm converts tar mode bits to an fs.FileMode.
func perm(mode int64) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}
