package layers

import (
	"path"
	"slices"
	"strings"
)

// maxSymlinks is how many symlinks resolving one path may go through
// (Linux's limit, which continuity's fs.RootPath keeps too).
const maxSymlinks = 255

// Moved is an entry that containerd's applier writes somewhere other than
// its name says, because a directory on the way is a symlink.
type Moved struct {
	// Path is where the entry lands: Entry.Path with the directory it is
	// in resolved. For a whiteout, the path it deletes; for an opaque
	// marker, the directory it makes opaque.
	Path string
	// Linkname is, for a hard link, its target with the target's
	// directory resolved the same way; "" when that does not change.
	Linkname string
	// Via lists the symlinks resolving went through, by their resolved
	// paths, in order: a layer that stays as it is needs them where it
	// applies.
	Via []string
}

// SymlinkParents finds, in every layer of a stack, the entries whose
// directory containerd's applier reaches through a symlink: it resolves
// an entry's directory in the filesystem the layers below (and the
// entries before it in its layer) made, as continuity's fs.RootPath does
// (an absolute target from the root, a relative one from the link's
// directory, ".." never above the root), and writes the entry there.
// "lib/libfoo.so" over a "lib -> usr/lib" symlink lands in
// "usr/lib/libfoo.so". A lazy puller does not do that: stargz-snapshotter
// mounts each layer as its own directory tree, which overlayfs stacks, so
// the layer's "lib" directory hides the symlink and everything the
// container reached through it.
//
// It returns, per layer, the moved entries by index (nil for a layer with
// none). An entry whose directory cannot be resolved (a loop, or a file on
// the way) is left where it is: containerd would fail to apply it.
func SymlinkParents(idxs []*Index) []map[int]Moved {
	out := make([]map[int]Moved, len(idxs))
	t := &symTree{root: &symNode{dir: map[string]*symNode{}, layer: -1}}
	for li, idx := range idxs {
		for i := range idx.Entries {
			e := &idx.Entries[i]
			if e.Path == "." {
				continue
			}
			var m Moved
			switch e.Type {
			case TypeWhiteout, TypeOpaque:
				dir := parent(e.Path)
				if e.Type == TypeOpaque {
					dir = e.Path
				}
				rdir, ok := t.resolve(dir, &m.Via)
				if !ok {
					continue
				}
				n := t.lookup(rdir)
				if n == nil || n.dir == nil {
					continue
				}
				// A marker hides what the layers below made (the OCI
				// spec; containerd keeps what the layer itself unpacked
				// from an opaque marker).
				if e.Type == TypeOpaque {
					m.Path = rdir
					for name, c := range n.dir {
						if !c.prune(li) {
							delete(n.dir, name)
						}
					}
				} else {
					base := path.Base(e.Path)
					m.Path = joinRel(rdir, base)
					if c := n.dir[base]; c != nil && !c.prune(li) {
						delete(n.dir, base)
					}
				}
			default:
				rdir, ok := t.resolve(parent(e.Path), &m.Via)
				if n := t.lookup(rdir); !ok || n != nil && n.dir == nil {
					continue
				}
				m.Path = joinRel(rdir, path.Base(e.Path))
				var link *symNode
				if e.Type == TypeHardlink {
					if ldir, ok := t.resolve(parent(e.Linkname), &m.Via); ok {
						lp := joinRel(ldir, path.Base(e.Linkname))
						if lp != e.Linkname {
							m.Linkname = lp
						}
						link = t.lookup(lp)
					}
				}
				t.write(m.Path, e, link, li)
			}
			if m.Path != e.Path || m.Linkname != "" {
				if out[li] == nil {
					out[li] = map[int]Moved{}
				}
				out[li][i] = m
			}
		}
	}
	return out
}

// symNode is one path of the filesystem SymlinkParents keeps: a directory
// (dir non-nil), a symlink (target set) or anything else, and the layer
// that last wrote it.
type symNode struct {
	dir     map[string]*symNode
	symlink bool
	target  string
	layer   int
}

// prune removes from a directory node what layers below layer li made,
// and reports whether the node stays: it, or something under it, was
// written by layer li.
func (n *symNode) prune(li int) bool {
	keep := n.layer == li
	for name, c := range n.dir {
		if c.prune(li) {
			keep = true
		} else {
			delete(n.dir, name)
		}
	}
	return keep
}

type symTree struct{ root *symNode }

// lookup returns the node at a clean, resolved path, nil if there is none.
func (t *symTree) lookup(p string) *symNode {
	n := t.root
	if p == "." {
		return n
	}
	for name := range strings.SplitSeq(p, "/") {
		if n.dir == nil {
			return nil
		}
		if n = n.dir[name]; n == nil {
			return nil
		}
	}
	return n
}

// resolve resolves every symlink of the clean path p, the last element
// included; a name that does not exist is kept as it is. It fails on a
// loop and when an element before the last exists and is not a directory.
// The symlinks it went through are appended to *via.
func (t *symTree) resolve(p string, via *[]string) (string, bool) {
	if p == "." {
		return p, true
	}
	links := 0
restart:
	n := t.root
	elems := strings.Split(p, "/")
	for i, name := range elems {
		var c *symNode
		if n != nil {
			if n.dir == nil {
				return "", false
			}
			c = n.dir[name]
		}
		if c != nil && c.symlink {
			if links++; links > maxSymlinks {
				return "", false
			}
			dir := strings.Join(elems[:i], "/")
			if dir == "" {
				dir = "."
			}
			*via = append(*via, joinRel(dir, name))
			var target string
			if strings.HasPrefix(c.target, "/") {
				target = cleanRel(c.target)
			} else {
				target = cleanRel(dir + "/" + c.target)
			}
			rest := strings.Join(elems[i+1:], "/")
			switch {
			case rest == "":
				p = target
			case target == ".":
				p = rest
			default:
				p = target + "/" + rest
			}
			if p == "." {
				return p, true
			}
			goto restart
		}
		n = c
	}
	return p, true
}

// write applies entry e of layer li at the resolved path p: the
// directories missing on the way are made (containerd's mkparent), and
// what is at p is replaced unless both are directories. A hard link takes
// the type of the node it links to.
func (t *symTree) write(p string, e *Entry, link *symNode, li int) {
	n := t.root
	elems := strings.Split(p, "/")
	for _, name := range elems[:len(elems)-1] {
		c := n.dir[name]
		if c == nil || c.dir == nil {
			if c != nil {
				return // a file on the way: containerd fails
			}
			c = &symNode{dir: map[string]*symNode{}, layer: li}
			n.dir[name] = c
		}
		n = c
	}
	base := elems[len(elems)-1]
	old := n.dir[base]
	switch {
	case e.Type == TypeDir && old != nil && old.dir != nil:
		old.layer = li
	case e.Type == TypeDir:
		n.dir[base] = &symNode{dir: map[string]*symNode{}, layer: li}
	case e.Type == TypeSymlink:
		n.dir[base] = &symNode{symlink: true, target: e.Linkname, layer: li}
	case e.Type == TypeHardlink && link != nil && link.dir == nil:
		n.dir[base] = &symNode{symlink: link.symlink, target: link.target, layer: li}
	default:
		n.dir[base] = &symNode{layer: li}
	}
}

// cleanRel cleans a path and makes it relative to the root: ".." never
// goes above it; the root is ".".
func cleanRel(p string) string {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		return "."
	}
	return c
}

// joinRel joins a resolved directory and a name.
func joinRel(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return dir + "/" + name
}

// WithMoved returns a copy of idx with the entries of mv named where they
// land (SymlinkParents), and its hard links found again by those names.
func (idx *Index) WithMoved(mv map[int]Moved) *Index {
	c := *idx
	c.Entries = slices.Clone(idx.Entries)
	for i, m := range mv {
		e := &c.Entries[i]
		e.Path = m.Path
		if m.Linkname != "" {
			e.Linkname = m.Linkname
		}
	}
	c.findLinks()
	return &c
}
