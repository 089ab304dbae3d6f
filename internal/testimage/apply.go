package testimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"sort"
	"strings"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Type is the type of a [Node]; its values are tar typeflags.
type Type byte

// The node types. A hard link becomes a TypeFile node (see [Node.Linkname]).
const (
	TypeFile    Type = tar.TypeReg
	TypeDir     Type = tar.TypeDir
	TypeSymlink Type = tar.TypeSymlink
	TypeChar    Type = tar.TypeChar
	TypeBlock   Type = tar.TypeBlock
	TypeFIFO    Type = tar.TypeFifo
)

func (t Type) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeChar:
		return "char"
	case TypeBlock:
		return "block"
	case TypeFIFO:
		return "fifo"
	}
	return fmt.Sprintf("type(%q)", byte(t))
}

// Origin names the tar entry that produced a node: the index of its layer
// in the list given to [Apply], and the index of the entry within that
// layer's tar, counting every header tar.Reader.Next returns (whiteouts
// included), from 0.
type Origin struct {
	Layer, Entry int
}

// Node is one path of a merged filesystem.
type Node struct {
	// Path is cleaned and relative: "etc/passwd"; the root is ".".
	Path string
	Type Type
	// Mode holds the permission bits plus setuid, setgid and sticky
	// (0o7777 of the tar mode).
	Mode     int64
	UID, GID int
	// Size is the content size of a file; 0 for other types.
	Size int64
	// Digest is "sha256:HEX" of a file's content; empty for other types.
	Digest string
	// Linkname is a symlink's target as written in the tar. For a file
	// created by a hard link entry it is the cleaned path of the link's
	// target; for other files it is empty.
	Linkname string
	// Devmajor and Devminor are set for char and block devices.
	Devmajor, Devminor int64
	// Xattrs are the PAX "SCHILY.xattr." records, nil if there are none.
	Xattrs map[string]string
	// Origin is the entry that produced this node. A directory created
	// implicitly because an entry below it had no parent carries that
	// entry's origin (with mode 0o755 and owner 0:0, as containerd does).
	Origin Origin
}

// Tree is a merged filesystem produced by [Apply].
type Tree struct {
	nodes map[string]*Node
}

// newTree returns an empty tree.
func newTree() *Tree {
	return &Tree{nodes: map[string]*Node{}}
}

// Len returns the number of nodes.
func (t *Tree) Len() int { return len(t.nodes) }

// Get returns the node at p, which is cleaned first ("/etc/", "./etc" and
// "etc" are the same path).
func (t *Tree) Get(p string) (Node, bool) {
	c, err := CleanPath(p)
	if err != nil {
		return Node{}, false
	}
	n, ok := t.nodes[c]
	if !ok {
		return Node{}, false
	}
	return n.clone(), true
}

// Paths returns every path in sorted order.
func (t *Tree) Paths() []string {
	out := make([]string, 0, len(t.nodes))
	for p := range t.nodes {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Nodes returns copies of every node, sorted by path.
func (t *Tree) Nodes() []Node {
	out := make([]Node, 0, len(t.nodes))
	for _, p := range t.Paths() {
		out = append(out, t.nodes[p].clone())
	}
	return out
}

// String lists the tree one node per line, sorted by path, without origins:
// "PATH TYPE MODE UID:GID SIZE DIGEST -> LINK".
func (t *Tree) String() string {
	var b strings.Builder
	for _, n := range t.Nodes() {
		fmt.Fprintf(&b, "%s %s %04o %d:%d", n.Path, n.Type, n.Mode, n.UID, n.GID)
		if n.Type == TypeFile {
			fmt.Fprintf(&b, " %d %s", n.Size, n.Digest)
		}
		if n.Type == TypeChar || n.Type == TypeBlock {
			fmt.Fprintf(&b, " %d,%d", n.Devmajor, n.Devminor)
		}
		if n.Linkname != "" {
			fmt.Fprintf(&b, " -> %s", n.Linkname)
		}
		for _, k := range sortedKeys(n.Xattrs) {
			fmt.Fprintf(&b, " %s=%q", k, n.Xattrs[k])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Diff reports the differences between two merged filesystems, ignoring
// origins, in cmp.Diff's format; "" means equal.
func Diff(want, got *Tree) string {
	return cmp.Diff(want.Nodes(), got.Nodes(), cmpopts.IgnoreFields(Node{}, "Origin"), cmpopts.EquateEmpty())
}

func (n *Node) clone() Node {
	c := *n
	c.Xattrs = maps.Clone(n.Xattrs)
	return c
}

// CleanPath turns a tar entry name into the tree's form: "./a/b/", "/a/b"
// and "a//b" become "a/b"; "", "." and "/" become ".". A name with a ".."
// element is an error.
func CleanPath(name string) (string, error) {
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("path %q has a %q element", name, "..")
		}
	}
	c := path.Clean("/" + name)
	if c == "/" {
		return ".", nil
	}
	return c[1:], nil
}

// ErrBadLayer wraps every error [Apply] returns for a malformed layer.
var ErrBadLayer = errors.New("bad layer")

// rawEntry is one tar header of a layer, read and cleaned.
type rawEntry struct {
	index  int
	hdr    *tar.Header
	name   string // cleaned
	size   int64
	digest string
}

// isSparse reports whether tar.Reader expands the entry from a sparse map
// (GNU or PAX sparse formats).
func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func readLayer(data []byte) ([]rawEntry, error) {
	var out []rawEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar entry %d: %w", i, err)
		}
		name, err := CleanPath(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if isSparse(hdr) && hdr.Size > int64(len(data)) {
			return nil, fmt.Errorf("entry %d (%s): %d bytes in a %d-byte layer: sparse files are not supported", i, hdr.Name, hdr.Size, len(data))
		}
		e := rawEntry{index: i, hdr: hdr, name: name}
		h := sha256.New()
		n, err := io.Copy(h, tr)
		if err != nil {
			return nil, fmt.Errorf("reading tar entry %d (%s): %w", i, hdr.Name, err)
		}
		e.size = n
		e.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
		out = append(out, e)
	}
}

// Apply merges uncompressed layer tars, bottom layer first, into a tree.
//
// Per layer, whiteouts apply to the layers below only: "DIR/.wh.NAME"
// deletes DIR/NAME and everything under it, "DIR/.wh..wh..opq" deletes
// everything under DIR (but not DIR); neither touches entries of the same
// layer, wherever they are in the tar. Other ".wh..wh." names are ignored.
// Then the other entries apply in tar order: an entry replaces whatever the
// path held, except that a directory over a directory only replaces the
// directory's metadata and keeps its children; a non-directory over a
// directory removes the subtree. A hard link entry becomes a copy of its
// target's node (content and metadata, as an inode would be shared) taken
// when the entry applies. A missing parent is created as a directory; a
// parent that is not a directory, a ".." element, a path below a whiteout
// name, a hard link to a missing path or a directory, and a broken tar are
// errors wrapping [ErrBadLayer]. So are sparse entries larger than the
// whole layer (real image layers have none), rather than hashing terabytes
// of holes.
func Apply(layers ...[]byte) (*Tree, error) {
	t := newTree()
	for i, l := range layers {
		if _, err := t.applyLayer(i, l); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// ApplyImage reads the uncompressed layers of img and applies them.
func ApplyImage(img v1.Image) (*Tree, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	datas := make([][]byte, len(ls))
	for i, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("reading layer %d: %w", i, err)
		}
		datas[i], err = io.ReadAll(rc)
		closeErr := rc.Close()
		if err = errors.Join(err, closeErr); err != nil {
			return nil, fmt.Errorf("reading layer %d: %w", i, err)
		}
	}
	return Apply(datas...)
}

// WastedBytes applies the layers and sums the sizes of regular-file entries
// that were visible right after their own layer applied (so, the final
// version of their path within that layer) and are not visible in the
// merged filesystem, because a later layer overwrote them, deleted them
// with a whiteout, hid them under an opaque directory or replaced an
// ancestor directory. Hard link entries carry no bytes and never count; a
// file counts even if a hard link made in its own layer keeps its content
// visible under another name.
func WastedBytes(layers ...[]byte) (int64, error) {
	t := newTree()
	type seen struct {
		path string
		size int64
	}
	visible := map[Origin]seen{}
	for i, l := range layers {
		entries, err := t.applyLayer(i, l)
		if err != nil {
			return 0, err
		}
		for _, e := range entries {
			if e.hdr.Typeflag != tar.TypeReg {
				continue
			}
			o := Origin{Layer: i, Entry: e.index}
			if n := t.nodes[e.name]; n != nil && n.Origin == o {
				visible[o] = seen{path: e.name, size: n.Size}
			}
		}
	}
	var wasted int64
	for o, s := range visible {
		if n := t.nodes[s.path]; n == nil || n.Origin != o {
			wasted += s.size
		}
	}
	return wasted, nil
}

func isWhiteout(name string) bool {
	return strings.HasPrefix(path.Base(name), WhiteoutPrefix)
}

// applyLayer applies one layer and returns its entries.
func (t *Tree) applyLayer(li int, data []byte) ([]rawEntry, error) {
	entries, err := readLayer(data)
	if err != nil {
		return nil, fmt.Errorf("%w %d: %w", ErrBadLayer, li, err)
	}
	// Whiteouts first: they only see the layers below.
	for _, e := range entries {
		if !isWhiteout(e.name) {
			continue
		}
		dir, base := path.Dir(e.name), path.Base(e.name)
		switch {
		case base == OpaqueMarker:
			t.removeUnder(dir)
		case strings.HasPrefix(base, WhiteoutPrefix+WhiteoutPrefix):
			// Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): ignored.
		default:
			victim := strings.TrimPrefix(base, WhiteoutPrefix)
			if victim == "" || victim == "." {
				return nil, fmt.Errorf("%w %d: entry %d: bad whiteout name %q", ErrBadLayer, li, e.index, e.hdr.Name)
			}
			t.remove(path.Join(dir, victim))
		}
	}
	for _, e := range entries {
		if isWhiteout(e.name) {
			continue
		}
		for _, a := range ancestors(e.name) {
			if isWhiteout(a) {
				return nil, fmt.Errorf("%w %d: entry %d (%s): path inside a whiteout %s", ErrBadLayer, li, e.index, e.hdr.Name, a)
			}
		}
		if err := t.put(li, e); err != nil {
			return nil, fmt.Errorf("%w %d: entry %d (%s): %w", ErrBadLayer, li, e.index, e.hdr.Name, err)
		}
	}
	return entries, nil
}

// remove deletes p and everything under it.
func (t *Tree) remove(p string) {
	delete(t.nodes, p)
	t.removeUnder(p)
}

// removeUnder deletes everything under dir, keeping dir.
func (t *Tree) removeUnder(dir string) {
	for q := range t.nodes {
		if isUnder(q, dir) {
			delete(t.nodes, q)
		}
	}
}

// isUnder reports whether q is strictly below dir.
func isUnder(q, dir string) bool {
	if dir == "." {
		return q != "."
	}
	return strings.HasPrefix(q, dir+"/")
}

func (t *Tree) put(li int, e rawEntry) error {
	h := e.hdr
	origin := Origin{Layer: li, Entry: e.index}
	n := &Node{
		Path:   e.name,
		Mode:   h.Mode & 0o7777,
		UID:    h.Uid,
		GID:    h.Gid,
		Origin: origin,
	}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if n.Xattrs == nil {
				n.Xattrs = map[string]string{}
			}
			n.Xattrs[name] = v
		}
	}
	switch h.Typeflag {
	case tar.TypeReg:
		n.Type = TypeFile
		n.Size = e.size
		n.Digest = e.digest
	case tar.TypeDir:
		n.Type = TypeDir
	case tar.TypeSymlink:
		n.Type = TypeSymlink
		n.Linkname = h.Linkname
	case tar.TypeChar, tar.TypeBlock:
		n.Type = Type(h.Typeflag)
		n.Devmajor, n.Devminor = h.Devmajor, h.Devminor
	case tar.TypeFifo:
		n.Type = TypeFIFO
	case tar.TypeLink:
		target, err := CleanPath(h.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		tn := t.nodes[target]
		if tn == nil {
			return fmt.Errorf("hard link target %s does not exist", target)
		}
		if tn.Type == TypeDir {
			return fmt.Errorf("hard link target %s is a directory", target)
		}
		c := tn.clone()
		n = &c
		n.Path = e.name
		n.Origin = origin
		if n.Type == TypeFile {
			n.Linkname = target
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("unsupported entry type %q", h.Typeflag)
	}

	if e.name == "." {
		if n.Type != TypeDir {
			return fmt.Errorf("root entry is a %s, not a directory", n.Type)
		}
		t.nodes["."] = n
		return nil
	}
	for _, a := range ancestors(e.name) {
		switch p := t.nodes[a]; {
		case p == nil:
			t.nodes[a] = &Node{Path: a, Type: TypeDir, Mode: 0o755, Origin: origin}
		case p.Type != TypeDir:
			return fmt.Errorf("parent %s is a %s, not a directory", a, p.Type)
		}
	}
	if old := t.nodes[e.name]; old != nil && !(old.Type == TypeDir && n.Type == TypeDir) {
		t.remove(e.name)
	}
	t.nodes[e.name] = n
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
