package oracle

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// maxLinks is how many symlinks one path resolution may follow, as in
// continuity's fs.RootPath (it gives up after 255).
const maxLinks = 255

// inode is a file object: what a hard link shares.
type inode struct {
	typ      Type
	mode     int64
	uid, gid int
	// mtime is in Unix nanoseconds; mtimeKnown is false when the time
	// is the moment of extraction (implicit directories, directories
	// whose children a later entry changed without a directory entry
	// setting the time again).
	mtime      int64
	mtimeKnown bool
	size       int64
	digest     Digest
	target     string // symlink target
	major      int64
	minor      int64
	xattrs     map[string]string
	layer      int // the layer whose entry created the inode
	implicit   bool
}

// dnode is a name in the tree.
type dnode struct {
	ino      *inode
	children map[string]*dnode // directories only
}

func (d *dnode) isDir() bool { return d.ino.typ == TypeDir }

// FS is a merged filesystem: a tree of names over inodes.
type FS struct {
	root  *dnode
	notes []Note
	// dropped counts notes not kept once maxNotes were.
	dropped int
}

// NoteKind classifies a [Note].
type NoteKind string

// Note kinds: the places where containerd's two appliers, or a lazy
// puller, disagree with the semantics [Apply] implements, or where an
// entry was dropped rather than applied.
const (
	// NoteCrossLayerLink: a hard link names a file of a lower layer.
	// The merged-view applier shares the inode; containerd's overlayfs
	// applier (apply_linux.go: archive.Apply on the upper directory)
	// resolves the target in the empty upper directory and fails, and
	// estargz refuses a TOC whose hard link target is not in the layer.
	NoteCrossLayerLink NoteKind = "cross-layer-hardlink"
	// NoteLinkMetadata: a hard link header's mode, owner, mtime or
	// xattrs differ from its target's; containerd applies them to the
	// shared inode, so every name of the inode changes.
	NoteLinkMetadata NoteKind = "hardlink-metadata"
	// NoteSameLayerWhiteout: a whiteout names a path the same layer
	// also writes (at or under it). [Apply] follows the OCI rule
	// (whiteouts hide lower layers only); containerd's merged-view
	// applier deletes what the layer wrote before the whiteout, and the
	// overlayfs applier fails with EEXIST (mknod over an existing name).
	NoteSameLayerWhiteout NoteKind = "same-layer-whiteout"
	// NoteSymlinkParent: an entry's parent path goes through a symlink,
	// which containerd follows (inside the root).
	NoteSymlinkParent NoteKind = "symlink-parent"
	// NoteRootEntry: an entry names the root; containerd ignores it.
	NoteRootEntry NoteKind = "root-entry"
	// NoteGlobalHeader: a PAX global header's name named an existing
	// path, which containerd removed (the RemoveAll before
	// createTarFile, which then ignores the header).
	NoteGlobalHeader NoteKind = "global-header-removed"
	// NoteXattrDropped: an xattr containerd does not set (trusted.*
	// always, user.* on anything but files and directories).
	NoteXattrDropped NoteKind = "xattr-dropped"
)

// Note records one such place.
type Note struct {
	Layer int
	Entry int // Entry.Index
	Path  string
	Kind  NoteKind
	Msg   string
}

func (n Note) String() string {
	return fmt.Sprintf("layer %d entry %d: /%s: %s: %s", n.Layer, n.Entry, n.Path, n.Kind, n.Msg)
}

const maxNotes = 1000

// Notes returns what Apply noticed (at most 1000 notes, in order) and how
// many more it did not keep.
func (fs *FS) Notes() ([]Note, int) { return fs.notes, fs.dropped }

// Apply applies layers, bottom first, the way containerd's archive.Apply
// does on the merged view of the layers below (see the package
// documentation for every rule). Errors wrap [ErrApply] and name the
// layer and the entry.
func Apply(layers ...*Layer) (*FS, error) {
	a := &applier{fs: &FS{root: &dnode{
		ino:      &inode{typ: TypeDir, mode: 0o755, layer: -1, implicit: true},
		children: map[string]*dnode{},
	}}}
	for li, l := range layers {
		if l == nil {
			return nil, fmt.Errorf("%w: layer %d is nil", ErrApply, li)
		}
		if err := a.layer(li, l); err != nil {
			return nil, err
		}
	}
	return a.fs, nil
}

type grave struct {
	pos  int // Entry.Index of the whiteout
	node *dnode
}

type applier struct {
	fs      *FS
	li      int
	touched map[*inode]struct{}
	// graves holds, while a layer with hard links applies, what its
	// whiteouts removed, by path, for links placed before the whiteout.
	graves map[string]grave
	// written holds, while a layer applies, the resolved paths its
	// non-marker entries wrote, and under the directories with such a
	// path below them, each with the first entry index, to note
	// same-layer whiteouts.
	written, under map[string]int
	// victimDirs and opaque hold, while a layer applies, the paths its
	// whiteouts removed a directory from and the directories it made
	// opaque.
	victimDirs, opaque map[string]bool
}

func (a *applier) note(e *Entry, path string, kind NoteKind, format string, args ...any) {
	if len(a.fs.notes) >= maxNotes {
		a.fs.dropped++
		return
	}
	a.fs.notes = append(a.fs.notes, Note{Layer: a.li, Entry: e.Index, Path: path, Kind: kind, Msg: fmt.Sprintf(format, args...)})
}

func (a *applier) fail(e *Entry, format string, args ...any) error {
	return fmt.Errorf("%w: layer %d %s: %s", ErrApply, a.li, e, fmt.Sprintf(format, args...))
}

// layer applies one layer: its whiteouts first, against the layers below
// (OCI: whiteouts apply to lower layers only, wherever they are in the
// tar), then every other entry in tar order, then the directory mtimes.
func (a *applier) layer(li int, l *Layer) error {
	a.li = li
	a.touched = map[*inode]struct{}{}
	a.graves = nil
	a.written, a.under = map[string]int{}, map[string]int{}
	a.victimDirs, a.opaque = map[string]bool{}, map[string]bool{}
	hasLinks := false
	for i := range l.Entries {
		if l.Entries[i].Type == TypeHardlink {
			hasLinks = true
			break
		}
	}
	if hasLinks {
		a.graves = map[string]grave{}
	}
	var deferred map[int]bool
	var whiteouts []int
	for i := range l.Entries {
		e := &l.Entries[i]
		if !e.Type.IsMarker() {
			continue
		}
		whiteouts = append(whiteouts, i)
		ok, err := a.whiteout(e)
		if err != nil {
			return err
		}
		if !ok {
			if deferred == nil {
				deferred = map[int]bool{}
			}
			deferred[i] = true
		}
	}
	var dirs []*Entry
	for i := range l.Entries {
		e := &l.Entries[i]
		if e.Type.IsMarker() {
			if deferred[i] {
				// The parent was not a directory in the layers below;
				// containerd meets it here, where making the parent
				// either fails or finds a directory of this layer.
				if _, _, err := a.parentDir(e, markerDir(e)); err != nil {
					return err
				}
			}
			continue
		}
		isDir, err := a.entry(e)
		if err != nil {
			return err
		}
		if isDir {
			dirs = append(dirs, e)
		}
	}
	for _, i := range whiteouts {
		if e := &l.Entries[i]; e.Type == TypeWhiteout {
			a.sameLayer(e)
		}
	}
	// Changing a directory's children sets its mtime to the time of
	// extraction; containerd then sets the mtime of every directory
	// entry of the layer, in tar order, once all entries are applied
	// (archive/tar.go applyNaive: the dirs loop).
	for ino := range a.touched {
		if ino.typ == TypeDir {
			ino.mtimeKnown = false
		}
	}
	for _, e := range dirs {
		_, n, err := a.resolve(e, e.Path, true)
		if err == errNotDir {
			return a.fail(e, "setting the directory mtime: a parent of /%s is not a directory", e.Path)
		}
		if err != nil {
			return err
		}
		if n == nil {
			return a.fail(e, "setting the directory mtime: /%s no longer exists", e.Path)
		}
		n.ino.mtime, n.ino.mtimeKnown = boundTime(e.ModTime), true
	}
	a.graves, a.written, a.under, a.touched, a.victimDirs, a.opaque = nil, nil, nil, nil, nil, nil
	return nil
}

// markerDir is the directory a marker's parent resolution starts from.
func markerDir(e *Entry) string {
	if e.Type == TypeOpaque {
		return e.Path
	}
	return parentOf(e.Path)
}

// sameLayer notes a whiteout of a path the same layer writes (at or under
// it) where containerd's appliers do not do what OCI says and [Apply]
// does (the whiteout hides the layers below only).
func (a *applier) sameLayer(e *Entry) {
	first, ok := a.written[e.Path]
	under, uok := a.under[e.Path]
	if uok && (!ok || under < first) {
		first, ok = under, true
	}
	switch {
	case !ok:
	case first < e.Index:
		a.note(e, e.Path, NoteSameLayerWhiteout, "the layer writes at or under /%s before the whiteout (entry %d): "+
			"containerd's merged-view applier deletes that too, its overlayfs applier fails (mknod: file exists)", e.Path, first)
	case uok && (!a.hasWritten(e.Path) || under < a.written[e.Path]):
		a.note(e, e.Path, NoteSameLayerWhiteout, "the layer writes under /%s (entry %d) without a directory entry for it first: "+
			"containerd's overlayfs applier fails there (the whiteout device is not a directory)", e.Path, under)
	case a.victimDirs[e.Path] && !a.opaque[e.Path]:
		if n := a.lookup(e.Path); n != nil && n.isDir() {
			a.note(e, e.Path, NoteSameLayerWhiteout, "the layer deletes the directory /%s and makes it again without an opaque marker: "+
				"containerd's overlayfs applier shows the lower directory's children in it", e.Path)
		}
	}
}

func (a *applier) hasWritten(p string) bool {
	_, ok := a.written[p]
	return ok
}

// lookup returns the node at a clean path, without following symlinks.
func (a *applier) lookup(p string) *dnode {
	n := a.fs.root
	for i := 0; i < len(p); {
		j := strings.IndexByte(p[i:], '/')
		if j < 0 {
			j = len(p)
		} else {
			j += i
		}
		if !n.isDir() {
			return nil
		}
		if n = n.children[p[i:j]]; n == nil {
			return nil
		}
		i = j + 1
	}
	return n
}

// whiteout applies a whiteout, opaque or reserved marker against the layers
// below. It returns false, without error, when the marker's directory is
// not a directory there (the marker is then handled at its position).
func (a *applier) whiteout(e *Entry) (bool, error) {
	dir := markerDir(e)
	rdir, pn, err := a.resolve(e, dir, true)
	if err != nil {
		if err == errNotDir {
			return false, nil
		}
		return false, err
	}
	if pn != nil && !pn.isDir() {
		return false, nil
	}
	rdir, pn, err = a.mkparent(e, rdir, pn)
	if err != nil {
		return false, err
	}
	if rdir != dir {
		a.note(e, e.Path, NoteSymlinkParent, "applies in /%s", rdir)
	}
	switch e.Type {
	case TypeWhiteout:
		base := baseOf(e.Path)
		if victim := pn.children[base]; victim != nil {
			if victim.isDir() {
				a.victimDirs[e.Path] = true
			}
			delete(pn.children, base)
			a.touch(pn)
			a.bury(e, joinPath(rdir, base), victim)
		}
	case TypeOpaque:
		a.opaque[e.Path] = true
		for name, c := range pn.children {
			delete(pn.children, name)
			a.touch(pn)
			a.bury(e, joinPath(rdir, name), c)
		}
	}
	return true, nil
}

func (a *applier) bury(e *Entry, path string, n *dnode) {
	if a.graves != nil {
		a.graves[path] = grave{pos: e.Index, node: n}
	}
}

func (a *applier) touch(d *dnode) { a.touched[d.ino] = struct{}{} }

// wrote records that the entry at index wrote path.
func (a *applier) wrote(path string, index int) {
	if _, ok := a.written[path]; !ok {
		a.written[path] = index
	}
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] != '/' {
			continue
		}
		if _, ok := a.under[path[:i]]; ok {
			break
		}
		a.under[path[:i]] = index
	}
	if _, ok := a.under["."]; !ok {
		a.under["."] = index
	}
}

// entry applies one non-marker entry in tar order. It reports whether the
// entry is a directory whose mtime is set at the end of the layer.
func (a *applier) entry(e *Entry) (bool, error) {
	if e.Path == "." {
		// archive/tar.go: "file %q ignored: resolved to root".
		a.note(e, ".", NoteRootEntry, "%s entry for the root ignored", e.Type)
		return false, nil
	}
	if e.Type == TypeOther {
		return false, a.fail(e, "unhandled tar header type %q", e.Typeflag)
	}
	rdir, pn, err := a.parentDir(e, parentOf(e.Path))
	if err != nil {
		return false, err
	}
	base := baseOf(e.Path)
	path := joinPath(rdir, base)
	if path != e.Path {
		a.note(e, e.Path, NoteSymlinkParent, "written at /%s", path)
	}
	// An existing path is removed unless both are directories
	// (archive/tar.go: the os.RemoveAll before createTarFile). A global
	// header goes through this too: it removes what its name names.
	old := pn.children[base]
	if old != nil && !(old.isDir() && e.Type == TypeDir) {
		delete(pn.children, base)
		a.touch(pn)
		if e.Type == TypeGlobalHeader {
			a.note(e, path, NoteGlobalHeader, "removed a %s", old.ino.typ)
		}
		old = nil
	}
	if e.Type == TypeGlobalHeader {
		return false, nil
	}
	a.wrote(path, e.Index)
	var ino *inode
	switch e.Type {
	case TypeDir:
		if old != nil {
			ino = old.ino
			break
		}
		ino = &inode{typ: TypeDir}
		pn.children[base] = &dnode{ino: ino, children: map[string]*dnode{}}
	case TypeFile:
		ino = &inode{typ: TypeFile, size: e.Size, digest: e.Digest}
	case TypeSymlink:
		ino = &inode{typ: TypeSymlink, target: e.Linkname}
	case TypeChar, TypeBlock, TypeFIFO:
		if e.Devmajor < 0 || e.Devmajor > math.MaxUint32 || e.Devminor < 0 || e.Devminor > math.MaxUint32 {
			return false, a.fail(e, "device number %d:%d out of range", e.Devmajor, e.Devminor)
		}
		ino = &inode{typ: e.Type}
		if e.Type != TypeFIFO {
			ino.major, ino.minor = e.Devmajor, e.Devminor
		}
	case TypeHardlink:
		return false, a.link(e, pn, base, path)
	}
	if ino.typ != TypeDir || old == nil {
		ino.layer = a.li
		if ino.typ != TypeDir {
			pn.children[base] = &dnode{ino: ino}
		}
		a.touch(pn)
	}
	a.setMeta(e, path, ino)
	return e.Type == TypeDir, nil
}

// setMeta does what createTarFile does after creating the object: chown,
// setxattr for each xattr, chmod unless a symlink, and chtimes.
func (a *applier) setMeta(e *Entry, path string, ino *inode) {
	ino.uid, ino.gid = e.UID, e.GID
	for k, v := range e.Xattrs {
		if dropXattr(k, ino.typ) {
			a.note(e, path, NoteXattrDropped, "xattr %s not set on a %s", k, ino.typ)
			continue
		}
		if ino.xattrs == nil {
			ino.xattrs = map[string]string{}
		}
		ino.xattrs[k] = v
	}
	if ino.typ == TypeSymlink {
		ino.mode = 0o777
	} else {
		ino.mode = e.Mode
	}
	ino.mtime, ino.mtimeKnown = boundTime(e.ModTime), true
}

// dropXattr reports whether containerd's setxattr fails on key in a way it
// ignores: "trusted." is refused as ENOTSUP (tar_unix.go setxattr), and
// "user." on anything but a file or directory is EPERM from the kernel,
// which createTarFile skips.
func dropXattr(key string, t Type) bool {
	if strings.HasPrefix(key, "trusted.") {
		return true
	}
	return strings.HasPrefix(key, "user.") && t != TypeFile && t != TypeDir
}

// link creates a second name for the inode the target path has now.
func (a *applier) link(e *Entry, pn *dnode, base, path string) error {
	if e.Linkname == "." {
		return a.fail(e, "hard link to the root directory")
	}
	tdir, err := a.resolvePath(e, parentOf(e.Linkname), true)
	if err != nil {
		return err
	}
	tpath := joinPath(tdir, baseOf(e.Linkname))
	t := a.lookupForLink(tpath, e.Index)
	if t == nil {
		return a.fail(e, "hard link target /%s does not exist", e.Linkname)
	}
	if t.isDir() {
		return a.fail(e, "hard link target /%s is a directory", e.Linkname)
	}
	ino := t.ino
	if ino.layer != a.li {
		a.note(e, path, NoteCrossLayerLink, "links to /%s of layer %d", e.Linkname, ino.layer)
	}
	if diff := linkMetaDiff(e, ino); diff != "" {
		a.note(e, path, NoteLinkMetadata, "%s; the header's values now apply to /%s too", diff, e.Linkname)
	}
	pn.children[base] = &dnode{ino: ino}
	a.touch(pn)
	a.setMeta(e, path, ino)
	return nil
}

func linkMetaDiff(e *Entry, ino *inode) string {
	var d []string
	if ino.typ != TypeSymlink && e.Mode != ino.mode {
		d = append(d, fmt.Sprintf("mode %04o over %04o", e.Mode, ino.mode))
	}
	if e.UID != ino.uid || e.GID != ino.gid {
		d = append(d, fmt.Sprintf("owner %d:%d over %d:%d", e.UID, e.GID, ino.uid, ino.gid))
	}
	if m := boundTime(e.ModTime); m != ino.mtime {
		d = append(d, "another mtime")
	}
	for k, v := range e.Xattrs {
		if old, ok := ino.xattrs[k]; !ok || old != v {
			d = append(d, "xattr "+k)
		}
	}
	return strings.Join(d, ", ")
}

// lookupForLink finds the node at a resolved path the way it was when the
// link entry at pos applied in containerd's in-order applier: the current
// tree, over what this layer's whiteouts placed after pos removed.
func (a *applier) lookupForLink(p string, pos int) *dnode {
	cur := a.fs.root
	var graves []*dnode
	for i := 0; i < len(p); {
		j := strings.IndexByte(p[i:], '/')
		if j < 0 {
			j = len(p)
		} else {
			j += i
		}
		name := p[i:j]
		var next *dnode
		if cur != nil && cur.isDir() {
			next = cur.children[name]
		}
		var ng []*dnode
		if a.graves != nil && (next == nil || next.isDir()) {
			for _, g := range graves {
				if g.isDir() {
					if c := g.children[name]; c != nil {
						ng = append(ng, c)
					}
				}
			}
			if g, ok := a.graves[p[:j]]; ok && g.pos > pos {
				ng = append(ng, g.node)
			}
		}
		cur, graves = next, ng
		if cur == nil && len(graves) == 0 {
			return nil
		}
		i = j + 1
	}
	if cur != nil {
		return cur
	}
	return graves[0]
}

// parentDir resolves the directory an entry goes in, creating what is
// missing (mkparent).
func (a *applier) parentDir(e *Entry, dir string) (string, *dnode, error) {
	rdir, pn, err := a.resolve(e, dir, true)
	if err != nil {
		if err == errNotDir {
			return "", nil, a.fail(e, "a parent of /%s is not a directory", dir)
		}
		return "", nil, err
	}
	return a.mkparent(e, rdir, pn)
}

// mkparent makes sure the resolved path rdir is a directory, creating the
// missing ones as containerd's mkparent does (0755, root:root, the time of
// extraction).
func (a *applier) mkparent(e *Entry, rdir string, pn *dnode) (string, *dnode, error) {
	if pn != nil {
		if !pn.isDir() {
			return "", nil, a.fail(e, "parent /%s is a %s, not a directory", rdir, pn.ino.typ)
		}
		return rdir, pn, nil
	}
	n := a.fs.root
	for i := 0; i < len(rdir); {
		j := strings.IndexByte(rdir[i:], '/')
		if j < 0 {
			j = len(rdir)
		} else {
			j += i
		}
		name := rdir[i:j]
		c := n.children[name]
		switch {
		case c == nil:
			c = &dnode{
				ino:      &inode{typ: TypeDir, mode: 0o755, layer: a.li, implicit: true},
				children: map[string]*dnode{},
			}
			n.children[name] = c
			a.touch(n)
		case !c.isDir():
			return "", nil, a.fail(e, "parent /%s is a %s, not a directory", rdir[:j], c.ino.typ)
		}
		n = c
		i = j + 1
	}
	return rdir, n, nil
}

type notDirError struct{}

func (notDirError) Error() string { return "not a directory" }

var errNotDir error = notDirError{}

// resolvePath is resolve without the node, with errNotDir turned into an
// apply error.
func (a *applier) resolvePath(e *Entry, p string, followLast bool) (string, error) {
	r, _, err := a.resolve(e, p, followLast)
	if err == errNotDir {
		return "", a.fail(e, "a parent of /%s is not a directory", p)
	}
	return r, err
}

// resolve walks the clean relative path p from the root the way
// continuity's fs.RootPath does: a symlink met on the way is replaced by
// its target (an absolute target from the root, a relative one from the
// link's directory, ".." never above the root) and the walk starts again;
// a name that does not exist is kept as is. The last element is followed
// only if followLast. It returns the resolved path ("." for the root) and
// its node, nil if it does not exist. errNotDir means that an existing
// element before the last is not a directory (Lstat fails with ENOTDIR).
func (a *applier) resolve(e *Entry, p string, followLast bool) (string, *dnode, error) {
	if p == "." {
		return ".", a.fs.root, nil
	}
	links := 0
restart:
	n := a.fs.root
	for i := 0; i < len(p); {
		j := strings.IndexByte(p[i:], '/')
		last := j < 0
		if last {
			j = len(p)
		} else {
			j += i
		}
		var c *dnode
		if n != nil {
			if !n.isDir() {
				return "", nil, errNotDir
			}
			c = n.children[p[i:j]]
		}
		if c != nil && c.ino.typ == TypeSymlink && (!last || followLast) {
			links++
			if links > maxLinks {
				return "", nil, a.fail(e, "too many levels of symlinks resolving /%s", p)
			}
			dir := "."
			if i > 0 {
				dir = p[:i-1]
			}
			p = joinLink(dir, c.ino.target, p[j:])
			if p == "." {
				return ".", a.fs.root, nil
			}
			goto restart
		}
		n = c
		i = j + 1
	}
	return p, n, nil
}

// joinLink replaces a symlink in dir by its target and appends rest ("" or
// "/more/elements").
func joinLink(dir, target, rest string) string {
	var t string
	if strings.HasPrefix(target, "/") {
		t = cleanSlow(target)
	} else {
		t = cleanSlow(dir + "/" + target)
	}
	if rest == "" {
		return t
	}
	if t == "." {
		return rest[1:]
	}
	return t + rest
}

var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, math.MaxInt64)
)

// boundTime is containerd's boundTime: a time before 1970 or after what
// a 64-bit timespec holds in nanoseconds becomes the Unix epoch.
func boundTime(t time.Time) int64 {
	if t.Before(minTime) || t.After(maxTime) {
		return 0
	}
	return t.UnixNano()
}
