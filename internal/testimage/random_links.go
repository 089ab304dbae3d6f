package testimage

import (
	"archive/tar"
	"maps"
	"path"
	"strings"
)

// The generator's operations for [RandomOptions.HardLinks],
// [RandomOptions.LongNames] and [RandomOptions.Xattrs].

// crossLink adds a hard link to a regular file of a lower layer or to a
// path a hard link made (a chain of links), anywhere in the tree.
func (g *generator) crossLink() {
	t, ok := g.pick(g.paths(func(_ string, n *gnode) bool {
		return n.typ == tar.TypeReg && (n.layer < g.cur || n.hardTarget != "")
	}))
	if !ok {
		return
	}
	g.emitLink(join(g.parentDir(), g.fresh("h")), t)
}

// killLinkTarget takes away, in this layer, the path a lower layer's hard
// link was made to: a whiteout of the target or of its parent directory,
// or the parent made opaque. The link keeps the content.
func (g *generator) killLinkTarget() {
	var targets []string
	for _, q := range g.paths(func(_ string, n *gnode) bool { return n.hardTarget != "" && n.layer < g.cur }) {
		t := g.state[q].hardTarget
		if tn := g.state[t]; tn != nil && tn.layer < g.cur {
			targets = append(targets, t)
		}
	}
	t, ok := g.pick(targets)
	if !ok {
		return
	}
	dir := path.Dir(t)
	switch g.r.IntN(3) {
	case 0:
		if !g.touchedUnder(t) {
			g.out = append(g.out, Whiteout(g.name(t)))
			g.removeTree(t)
		}
	case 1:
		if dir != "." && g.state[dir].layer < g.cur && !g.touchedUnder(dir) {
			g.out = append(g.out, Whiteout(g.name(dir)))
			g.removeTree(dir)
		}
	default:
		if dir != "." && g.canOpaque(dir) {
			g.makeOpaque(dir)
		}
	}
}

// dupWithLink writes a file (new, or over a lower one), a hard link to it,
// then the file again with other content and metadata: the link keeps the
// first copy.
func (g *generator) dupWithLink() {
	p, ok := g.pick(g.paths(func(_ string, n *gnode) bool { return n.typ == tar.TypeReg && n.layer < g.cur }))
	if !ok || g.chance(0.5) {
		p = join(g.parentDir(), g.fresh("f"))
	}
	mode, uid, gid, x := g.meta()
	g.emitFile(p, g.content(), mode, uid, gid, x)
	g.emitLink(join(g.parentDir(), g.fresh("h")), p)
	mode, uid, gid, x = g.meta()
	g.emitFile(p, g.content(), mode^0o100, uid, gid, x)
}

// longName returns a fresh name longer than a tar header's 100 bytes.
func (g *generator) longName(prefix string) string {
	return strings.Repeat("long-name-", 10+g.r.IntN(6)) + g.fresh(prefix)
}

// gnu makes Go's tar writer use GNU long-name headers instead of PAX,
// when nothing needs PAX records.
func gnu(h *tar.Header) {
	if len(h.PAXRecords) == 0 {
		h.Format = tar.FormatGNU
	}
}

// addLong adds a directory (with a file in it), a file, a symlink or a
// hard link whose name or target is longer than 100 bytes.
func (g *generator) addLong() {
	dir := g.parentDir()
	var extra []EntryOption
	if g.chance(0.5) {
		extra = append(extra, gnu)
	}
	switch g.r.IntN(4) {
	case 0:
		p := join(dir, g.longName("d"))
		g.emitDir(p, 0o755, 0, 0, nil)
		mode, uid, gid, x := g.meta()
		g.emitFile(join(p, g.longName("f")), g.content(), mode, uid, gid, x)
	case 1:
		p := join(dir, g.longName("f"))
		mode, uid, gid, x := g.meta()
		opts := append(xattrOpts(x), Mode(mode), Owner(uid, gid))
		g.out = append(g.out, File(g.name(p), g.content(), append(opts, extra...)...))
		g.state[p] = &gnode{typ: tar.TypeReg, mode: mode, uid: uid, gid: gid, content: string(g.out[len(g.out)-1].Content), xattrs: maps.Clone(x), layer: g.cur}
	case 2:
		p := join(dir, g.fresh("l"))
		target := "/" + strings.Repeat("far/away/", 12) + g.fresh("t")
		g.out = append(g.out, Symlink(g.name(p), target, extra...))
		g.state[p] = &gnode{typ: tar.TypeSymlink, mode: 0o777, link: target, layer: g.cur}
	default:
		t, ok := g.pick(g.paths(func(_ string, n *gnode) bool {
			return n.typ == tar.TypeReg && (n.layer == g.cur || g.o.HardLinks)
		}))
		if !ok {
			return
		}
		g.emitLink(join(dir, g.longName("h")), t)
	}
}

// moreXattrs returns x with one more extended attribute: a user.* one, a
// binary security.capability or a long value.
func (g *generator) moreXattrs(x map[string]string) map[string]string {
	out := maps.Clone(x)
	if out == nil {
		out = map[string]string{}
	}
	switch g.r.IntN(3) {
	case 0:
		out["user.mime_type"] = "text/plain"
	case 1:
		out["security.capability"] = "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	default:
		out["user.long"] = strings.Repeat("v", 200+g.r.IntN(100))
	}
	return out
}
