package oracle

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Node is one path of a merged filesystem.
type Node struct {
	// Path is clean and relative: "etc/passwd".
	Path string
	Type Type
	// Mode holds the permission bits plus setuid, setgid and sticky;
	// 0o777 for a symlink (Linux has no symlink modes).
	Mode     int64
	UID, GID int
	// ModTime is the modification time, when known: false for a
	// directory created implicitly or whose children a later entry
	// changed without a directory entry setting its time again (such a
	// directory has the time of extraction).
	ModTime      time.Time
	ModTimeKnown bool
	// Size and Digest describe a file's content.
	Size   int64
	Digest Digest
	// Target is a symlink's target, as written.
	Target string
	// Devmajor and Devminor are set for char and block devices.
	Devmajor, Devminor int64
	// Xattrs are the extended attributes; nil when there are none.
	Xattrs map[string]string
	// Inode numbers the file objects of the filesystem from 1, in the
	// order [FS.Nodes] lists their first path: paths with the same
	// number are hard links of one another.
	Inode int
	// Links is the number of paths of the inode.
	Links int
	// Layer is the index of the layer whose entry created the inode (an
	// implicit directory: the layer whose entry needed it).
	Layer int
	// Implicit is set for a directory no entry created.
	Implicit bool
}

// Len returns the number of paths, the root excluded.
func (fs *FS) Len() int {
	n := 0
	fs.walk(func(string, *dnode) { n++ })
	return n
}

// walk visits every path but the root in tree order: a directory before
// its children, siblings by name.
func (fs *FS) walk(fn func(p string, n *dnode)) {
	var rec func(dir string, d *dnode)
	rec = func(dir string, d *dnode) {
		for _, name := range slices.Sorted(maps.Keys(d.children)) {
			c := d.children[name]
			p := joinPath(dir, name)
			fn(p, c)
			if c.isDir() {
				rec(p, c)
			}
		}
	}
	rec(".", fs.root)
}

// Nodes returns every path but the root, in tree order (a directory before
// its children, siblings by name), with inodes numbered in that order.
func (fs *FS) Nodes() []Node {
	type seen struct{ num, links int }
	ids := map[*inode]*seen{}
	var out []Node
	var owners []*seen
	fs.walk(func(p string, n *dnode) {
		s := ids[n.ino]
		if s == nil {
			s = &seen{num: len(ids) + 1}
			ids[n.ino] = s
		}
		s.links++
		out = append(out, nodeOf(p, n.ino, s.num))
		owners = append(owners, s)
	})
	for i := range out {
		out[i].Links = owners[i].links
	}
	return out
}

func nodeOf(p string, ino *inode, num int) Node {
	n := Node{
		Path: p, Type: ino.typ, Mode: ino.mode, UID: ino.uid, GID: ino.gid,
		ModTimeKnown: ino.mtimeKnown,
		Size:         ino.size, Digest: ino.digest, Target: ino.target,
		Devmajor: ino.major, Devminor: ino.minor,
		Xattrs: maps.Clone(ino.xattrs),
		Inode:  num, Layer: ino.layer, Implicit: ino.implicit,
	}
	if ino.mtimeKnown {
		n.ModTime = time.Unix(0, ino.mtime).UTC()
	}
	return n
}

// Get returns the node at path p, cleaned first ("/etc/", "./etc" and
// "etc" are the same path), without following symlinks. Inode is 0 and
// Links counts the names of the inode.
func (fs *FS) Get(p string) (Node, bool) {
	c, err := CleanName(p)
	if err != nil || c == "." {
		return Node{}, false
	}
	n := fs.root
	for _, name := range strings.Split(c, "/") {
		if !n.isDir() {
			return Node{}, false
		}
		if n = n.children[name]; n == nil {
			return Node{}, false
		}
	}
	out := nodeOf(c, n.ino, 0)
	fs.walk(func(_ string, m *dnode) {
		if m.ino == n.ino {
			out.Links++
		}
	})
	return out, true
}

// String lists the filesystem one path per line in tree order:
// "PATH TYPE MODE UID:GID", then for a file its size and short digest, for a
// device its numbers, for a symlink "-> TARGET", the xattrs, "mtime=RFC3339"
// ("mtime=?" when unknown), and "inode=N" for paths that share an inode.
func (fs *FS) String() string {
	var b strings.Builder
	for _, n := range fs.Nodes() {
		fmt.Fprintf(&b, "%s %s %04o %d:%d", n.Path, n.Type, n.Mode, n.UID, n.GID)
		switch n.Type {
		case TypeFile:
			fmt.Fprintf(&b, " %d %s", n.Size, n.Digest.Short())
		case TypeChar, TypeBlock:
			fmt.Fprintf(&b, " %d,%d", n.Devmajor, n.Devminor)
		case TypeSymlink:
			fmt.Fprintf(&b, " -> %s", n.Target)
		}
		for _, k := range slices.Sorted(maps.Keys(n.Xattrs)) {
			fmt.Fprintf(&b, " %s=%q", k, n.Xattrs[k])
		}
		if n.ModTimeKnown {
			fmt.Fprintf(&b, " mtime=%s", n.ModTime.Format(time.RFC3339Nano))
		} else {
			b.WriteString(" mtime=?")
		}
		if n.Links > 1 {
			fmt.Fprintf(&b, " inode=%d", n.Inode)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
