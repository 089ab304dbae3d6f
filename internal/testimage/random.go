package testimage

import (
	"archive/tar"
	"fmt"
	"maps"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
)

// RandomOptions shapes the filesystems [Random] generates. Zero fields take
// their defaults.
type RandomOptions struct {
	// Layers is the number of layers. Default 4.
	Layers int
	// Ops is the number of changes made per layer (the first layer gets
	// twice as many). Each change writes one to three entries. Default 24.
	Ops int
	// MaxFileSize bounds the size of a file's content. Default 2048.
	MaxFileSize int
	// Specials adds FIFOs and character devices. Default false.
	Specials bool
	// HardLinks adds the hard-link cases optimizers get wrong: links to
	// files of lower layers, chains of links (to links, across layers),
	// later whiteouts of link targets and of their parent directories,
	// opaque parents of link targets, and a name written twice in one
	// layer with a link to the first copy in between. Default false.
	HardLinks bool
	// GlobalHeaders starts some layers with a PAX global header, as
	// git archive writes. Default false.
	GlobalHeaders bool
	// LongNames adds directories, files, hard links and symlink targets
	// longer than the 100 bytes of a plain tar header, written as PAX or
	// GNU long names. Default false.
	LongNames bool
	// Xattrs gives more files and directories extended attributes
	// (user.* and security.capability; never trusted.*, and none on
	// symlinks or devices, which containerd drops). Default false.
	Xattrs bool
	// SymlinkParents writes files, directories and whiteouts through a
	// symlink to a directory ("lib/x" over "lib -> usr/lib"), which
	// containerd's applier follows to where they land. [Apply] takes names
	// literally, and so does not agree with containerd on such layers.
	// Default false.
	SymlinkParents bool
}

// Random generates a valid layered filesystem of the kind real image builds
// produce. Each layer adds directories, files, symlinks (to existing,
// absolute, relative and dangling targets) and hard links (to regular files
// written earlier in the same layer); later layers also overwrite lower
// paths (new content, chmod-only and chown-only copy-ups, identical
// re-adds), delete files and whole directories with whiteouts, make
// directories opaque, replace a directory by a file and a file by a
// directory (each after a whiteout of the old one), re-emit parent
// directories, and write the same path twice in one layer (the later wins).
// Names sometimes start with "./". A hard link entry carries its target's
// mode, owner, time and xattrs, as tar writers write them (containerd
// applies a link header's metadata to the shared inode). Valid means: a
// parent exists (below or earlier in the same layer) before a child is
// added; a hard link's target is not written again in its layer (unless
// [RandomOptions.HardLinks]); a whiteout only names a lower path that the
// same layer has not written under. The options add the cases they
// describe, all valid in this sense and all modeled the same way by a
// copy-on-link applier such as [Apply] and by containerd's inode model.
//
// The result depends only on r's state and o.
func Random(r *rand.Rand, o RandomOptions) []Layer {
	ls, _ := random(r, o)
	return ls
}

// gnode is the generator's model of one path of the merged filesystem.
type gnode struct {
	typ        byte
	mode       int64
	uid, gid   int
	content    string
	link       string // symlink target
	xattrs     map[string]string
	major      int64
	minor      int64
	layer      int    // the layer whose entry made this node
	hardTarget string // set when a hard link entry made this node
	pinned     bool   // a hard link in this node's layer points here
}

type generator struct {
	r       *rand.Rand
	o       RandomOptions
	state   map[string]*gnode
	cur     int
	out     Layer
	counter int
	pool    []string
	// linked holds the lower paths the current layer made hard links
	// to, and the names it wrote through a symlink: a whiteout of them
	// (or above them) in the same layer would apply before the link, or
	// before the write, in a copy-on-link applier.
	linked map[string]bool
	// via holds the symlinks the current layer wrote through: changing
	// one later in the layer would move what containerd resolves at the
	// layer's end (the directories' mtimes).
	via map[string]bool
}

func random(r *rand.Rand, o RandomOptions) ([]Layer, map[string]*gnode) {
	if o.Layers <= 0 {
		o.Layers = 4
	}
	if o.Ops <= 0 {
		o.Ops = 24
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = 2048
	}
	g := &generator{
		r:     r,
		o:     o,
		state: map[string]*gnode{".": {typ: tar.TypeDir, mode: 0o755, layer: -1}},
	}
	layers := make([]Layer, 0, o.Layers)
	for li := 0; li < o.Layers; li++ {
		g.cur = li
		g.out = nil
		for _, n := range g.state {
			n.pinned = false
		}
		g.linked = map[string]bool{}
		g.via = map[string]bool{}
		if o.GlobalHeaders && r.IntN(2) == 0 {
			g.out = append(g.out, GlobalHeader(map[string]string{"comment": fmt.Sprintf("%040x", r.Uint64())}))
		}
		ops := o.Ops
		if li == 0 {
			ops *= 2
		}
		for range ops {
			g.step()
		}
		if len(g.out) == 0 || (len(g.out) == 1 && g.out[0].Header.Typeflag == tar.TypeXGlobalHeader) {
			g.addFile()
		}
		layers = append(layers, g.out)
	}
	return layers, g.state
}

func (g *generator) step() {
	type op struct {
		weight int
		fn     func()
	}
	ops := []op{
		{6, g.addFile},
		{3, g.addDir},
		{2, g.addSymlink},
		{2, g.addHardlink},
		{6, g.overwrite},
		{3, g.whiteout},
		{1, g.opaque},
		{1, g.dirToFile},
		{1, g.fileToDir},
		{2, g.duplicate},
	}
	if g.o.Specials {
		ops = append(ops, op{1, g.addSpecial})
	}
	if g.o.HardLinks {
		ops = append(ops, op{3, g.crossLink}, op{2, g.killLinkTarget}, op{1, g.dupWithLink})
	}
	if g.o.LongNames {
		ops = append(ops, op{2, g.addLong})
	}
	if g.o.SymlinkParents {
		ops = append(ops, op{3, g.throughSymlink})
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	n := g.r.IntN(total)
	for _, o := range ops {
		if n < o.weight {
			o.fn()
			return
		}
		n -= o.weight
	}
}

// paths returns the sorted paths whose node satisfies keep (root excluded).
func (g *generator) paths(keep func(p string, n *gnode) bool) []string {
	var out []string
	for p, n := range g.state {
		if p != "." && keep(p, n) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (g *generator) pick(list []string) (string, bool) {
	if len(list) == 0 {
		return "", false
	}
	return list[g.r.IntN(len(list))], true
}

func (g *generator) chance(p float64) bool { return g.r.Float64() < p }

// name is how path p is written in the tar.
func (g *generator) name(p string) string {
	if g.chance(0.1) {
		return "./" + p
	}
	return p
}

func (g *generator) fresh(prefix string) string {
	g.counter++
	return fmt.Sprintf("%s%d", prefix, g.counter)
}

// touchedUnder reports whether the current layer wrote p or a path below p,
// or made a hard link to one of them (a whiteout applied before the link,
// as a copy-on-link applier does, would leave the link without a target).
func (g *generator) touchedUnder(p string) bool {
	for q := range g.linked {
		if q == p || strings.HasPrefix(q, p+"/") {
			return true
		}
	}
	for q, n := range g.state {
		if n.layer == g.cur && (q == p || strings.HasPrefix(q, p+"/")) {
			return true
		}
	}
	return false
}

func (g *generator) lower(p string, n *gnode) bool { return n.layer < g.cur }

// parentDir picks an existing directory to add a child to, sometimes
// re-emitting it first the way builders re-emit modified parents.
func (g *generator) parentDir() string {
	dirs := g.paths(func(_ string, n *gnode) bool { return n.typ == tar.TypeDir })
	dirs = append(dirs, ".")
	d, _ := g.pick(dirs)
	if n := g.state[d]; d != "." && n.layer < g.cur && g.chance(0.3) {
		g.emitDir(d, n.mode, n.uid, n.gid, n.xattrs)
	}
	return d
}

func join(dir, base string) string {
	if dir == "." {
		return base
	}
	return dir + "/" + base
}

func (g *generator) meta() (mode int64, uid, gid int, xattrs map[string]string) {
	modes := []int64{0o644, 0o644, 0o644, 0o755, 0o755, 0o600, 0o640, 0o4755, 0o2755}
	mode = modes[g.r.IntN(len(modes))]
	switch g.r.IntN(6) {
	case 0:
		uid, gid = 1000, 1000
	case 1:
		gid = 42
	}
	if g.chance(0.1) {
		xattrs = map[string]string{"user.checksum": fmt.Sprintf("%08x", g.r.Uint32())}
	}
	if g.o.Xattrs && g.chance(0.3) {
		xattrs = g.moreXattrs(xattrs)
	}
	return mode, uid, gid, xattrs
}

func (g *generator) content() string {
	switch {
	case len(g.pool) > 0 && g.chance(0.2):
		return g.pool[g.r.IntN(len(g.pool))]
	case g.chance(0.1):
		return ""
	}
	n := g.r.IntN(g.o.MaxFileSize + 1)
	b := make([]byte, n)
	text := g.chance(0.5)
	for i := range b {
		if text {
			b[i] = "abcdefghij klmnop\n"[g.r.IntN(18)]
		} else {
			b[i] = byte(g.r.UintN(256))
		}
	}
	s := string(b)
	g.pool = append(g.pool, s)
	return s
}

func xattrOpts(x map[string]string) []EntryOption {
	var opts []EntryOption
	for _, k := range sortedKeys(x) {
		opts = append(opts, Xattr(k, x[k]))
	}
	return opts
}

func (g *generator) emitDir(p string, mode int64, uid, gid int, xattrs map[string]string) {
	g.out = append(g.out, Dir(g.name(p), mode, append(xattrOpts(xattrs), Owner(uid, gid))...))
	if n := g.state[p]; n != nil && n.typ == tar.TypeDir {
		n.mode, n.uid, n.gid, n.xattrs, n.layer = mode, uid, gid, maps.Clone(xattrs), g.cur
		return
	}
	g.state[p] = &gnode{typ: tar.TypeDir, mode: mode, uid: uid, gid: gid, xattrs: maps.Clone(xattrs), layer: g.cur}
}

func (g *generator) emitFile(p, content string, mode int64, uid, gid int, xattrs map[string]string) {
	opts := append(xattrOpts(xattrs), Mode(mode), Owner(uid, gid))
	g.out = append(g.out, File(g.name(p), content, opts...))
	g.state[p] = &gnode{typ: tar.TypeReg, mode: mode, uid: uid, gid: gid, content: content, xattrs: maps.Clone(xattrs), layer: g.cur}
}

func (g *generator) emitSymlink(p, target string) {
	g.out = append(g.out, Symlink(g.name(p), target))
	g.state[p] = &gnode{typ: tar.TypeSymlink, mode: 0o777, link: target, layer: g.cur}
}

// removeTree deletes p and its subtree from the model.
func (g *generator) removeTree(p string) {
	for q := range g.state {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(g.state, q)
		}
	}
}

func (g *generator) addFile() {
	p := join(g.parentDir(), g.fresh("f"))
	mode, uid, gid, x := g.meta()
	g.emitFile(p, g.content(), mode, uid, gid, x)
}

func (g *generator) addDir() {
	p := join(g.parentDir(), g.fresh("d"))
	modes := []int64{0o755, 0o755, 0o700, 0o775, 0o1777}
	uid := 0
	if g.chance(0.2) {
		uid = 1000
	}
	var x map[string]string
	if g.o.Xattrs && g.chance(0.3) {
		x = g.moreXattrs(nil)
	}
	g.emitDir(p, modes[g.r.IntN(len(modes))], uid, uid, x)
	if g.chance(0.5) {
		mode, uid, gid, x := g.meta()
		g.emitFile(join(p, g.fresh("f")), g.content(), mode, uid, gid, x)
	}
}

func (g *generator) addSymlink() {
	dir := g.parentDir()
	p := join(dir, g.fresh("l"))
	var target string
	switch g.r.IntN(4) {
	case 0:
		target = g.fresh("dangling")
	case 1:
		// Relative, to a sibling.
		sibs := g.paths(func(q string, _ *gnode) bool { return path.Dir(q) == dir })
		if s, ok := g.pick(sibs); ok {
			target = path.Base(s)
		} else {
			target = "../" + g.fresh("up")
		}
	default:
		all := g.paths(func(string, *gnode) bool { return true })
		if s, ok := g.pick(all); ok {
			target = "/" + s
		} else {
			target = "/"
		}
	}
	g.emitSymlink(p, target)
}

// throughSymlink writes a file or a directory, or a whiteout of a lower
// path, through a symlink whose target is a directory.
func (g *generator) throughSymlink() {
	type via struct{ link, dir string }
	var vias []via
	for _, s := range g.paths(func(_ string, n *gnode) bool { return n.typ == tar.TypeSymlink }) {
		t := g.state[s].link
		if !strings.HasPrefix(t, "/") {
			t = path.Dir(s) + "/" + t
		}
		d := strings.TrimPrefix(path.Clean("/"+t), "/")
		if d == "" {
			d = "."
		}
		if n := g.state[d]; n != nil && n.typ == tar.TypeDir {
			vias = append(vias, via{s, d})
		}
	}
	if len(vias) == 0 {
		return
	}
	v := vias[g.r.IntN(len(vias))]
	g.via[v.link] = true
	switch g.r.IntN(4) {
	case 0:
		if g.state[v.link].layer == g.cur {
			// Whiteouts apply to the layers below, where the link is not.
			return
		}
		kids := g.paths(func(q string, n *gnode) bool {
			return path.Dir(q) == v.dir && n.layer < g.cur && !g.touchedUnder(q) && q != v.link && !strings.HasPrefix(v.link, q+"/")
		})
		if k, ok := g.pick(kids); ok {
			g.out = append(g.out, Whiteout(join(v.link, path.Base(k))))
			g.removeTree(k)
		}
	case 1:
		name := g.fresh("sd")
		g.out = append(g.out, Dir(join(v.link, name), 0o755))
		g.state[join(v.dir, name)] = &gnode{typ: tar.TypeDir, mode: 0o755, layer: g.cur}
		g.linked[join(v.link, name)] = true
	default:
		name := g.fresh("sf")
		mode, uid, gid, x := g.meta()
		content := g.content()
		g.out = append(g.out, File(join(v.link, name), content, append(xattrOpts(x), Mode(mode), Owner(uid, gid))...))
		g.state[join(v.dir, name)] = &gnode{typ: tar.TypeReg, mode: mode, uid: uid, gid: gid, content: content, xattrs: maps.Clone(x), layer: g.cur}
		g.linked[join(v.link, name)] = true
	}
}

func (g *generator) addHardlink() {
	targets := g.paths(func(_ string, n *gnode) bool {
		return n.layer == g.cur && n.typ == tar.TypeReg && n.hardTarget == ""
	})
	t, ok := g.pick(targets)
	if !ok {
		return
	}
	g.emitLink(join(g.parentDir(), g.fresh("h")), t)
}

// emitLink writes a hard link p -> t with t's metadata, as tar writers do,
// and models it as a copy of t.
func (g *generator) emitLink(p, t string) {
	tn := g.state[t]
	opts := append(xattrOpts(tn.xattrs), Mode(tn.mode), Owner(tn.uid, tn.gid))
	g.out = append(g.out, Hardlink(g.name(p), g.name(t), opts...))
	c := *tn
	c.xattrs = maps.Clone(tn.xattrs)
	c.hardTarget = t
	c.pinned = false
	c.layer = g.cur
	g.state[p] = &c
	if tn.layer < g.cur {
		g.linked[t] = true
	} else {
		tn.pinned = true
	}
}

func (g *generator) overwrite() {
	p, ok := g.pick(g.paths(func(q string, n *gnode) bool { return g.lower(q, n) && !g.via[q] }))
	if !ok {
		return
	}
	n := g.state[p]
	switch n.typ {
	case tar.TypeReg:
		mode, uid, gid, x, content := n.mode, n.uid, n.gid, n.xattrs, n.content
		switch g.r.IntN(4) {
		case 0: // identical re-add
		case 1:
			content = g.content()
		case 2: // chmod-only copy-up
			mode ^= 0o020
		case 3: // chown-only copy-up
			uid, gid = uid+1, gid+1
		}
		g.emitFile(p, content, mode, uid, gid, x)
	case tar.TypeDir:
		mode := n.mode
		if g.chance(0.5) {
			mode ^= 0o020
		}
		g.emitDir(p, mode, n.uid, n.gid, n.xattrs)
	case tar.TypeSymlink:
		target := n.link
		if g.chance(0.5) {
			target = g.fresh("retarget")
		}
		g.emitSymlink(p, target)
	default:
		g.out = append(g.out, g.special(p, n))
		c := *n
		c.layer = g.cur
		g.state[p] = &c
	}
}

func (g *generator) whiteout() {
	p, ok := g.pick(g.paths(func(q string, n *gnode) bool { return n.layer < g.cur && !g.touchedUnder(q) }))
	if !ok {
		return
	}
	g.out = append(g.out, Whiteout(g.name(p)))
	g.removeTree(p)
}

func (g *generator) opaque() {
	d, ok := g.pick(g.paths(func(d string, n *gnode) bool { return g.canOpaque(d) }))
	if !ok {
		return
	}
	g.makeOpaque(d)
}

// canOpaque reports whether the lower directory d can be made opaque in
// this layer: every path this layer wrote under d must hang from d
// through directories this layer wrote too, or it would lose its parent.
func (g *generator) canOpaque(d string) bool {
	n := g.state[d]
	if n == nil || n.typ != tar.TypeDir || n.layer >= g.cur {
		return false
	}
	for q := range g.linked {
		if strings.HasPrefix(q, d+"/") {
			return false
		}
	}
	for q, qn := range g.state {
		if qn.layer != g.cur || !strings.HasPrefix(q, d+"/") {
			continue
		}
		for a := path.Dir(q); a != d; a = path.Dir(a) {
			if g.state[a].layer != g.cur {
				return false
			}
		}
	}
	return true
}

// makeOpaque re-emits d, hides its lower children and sometimes adds a
// file.
func (g *generator) makeOpaque(d string) {
	n := g.state[d]
	g.emitDir(d, n.mode, n.uid, n.gid, n.xattrs)
	g.out = append(g.out, Opaque(g.name(d)))
	for q, qn := range g.state {
		if qn.layer < g.cur && strings.HasPrefix(q, d+"/") {
			delete(g.state, q)
		}
	}
	if g.chance(0.7) {
		mode, uid, gid, x := g.meta()
		g.emitFile(join(d, g.fresh("f")), g.content(), mode, uid, gid, x)
	}
}

func (g *generator) dirToFile() {
	p, ok := g.pick(g.paths(func(q string, n *gnode) bool {
		return n.typ == tar.TypeDir && n.layer < g.cur && !g.touchedUnder(q)
	}))
	if !ok {
		return
	}
	g.out = append(g.out, Whiteout(g.name(p)))
	g.removeTree(p)
	mode, uid, gid, x := g.meta()
	g.emitFile(p, g.content(), mode, uid, gid, x)
}

func (g *generator) fileToDir() {
	p, ok := g.pick(g.paths(func(q string, n *gnode) bool {
		return n.typ != tar.TypeDir && n.layer < g.cur && !g.linked[q] && !g.via[q]
	}))
	if !ok {
		return
	}
	g.out = append(g.out, Whiteout(g.name(p)))
	g.removeTree(p)
	g.emitDir(p, 0o755, 0, 0, nil)
	if g.chance(0.5) {
		mode, uid, gid, x := g.meta()
		g.emitFile(join(p, g.fresh("f")), g.content(), mode, uid, gid, x)
	}
}

func (g *generator) duplicate() {
	p, ok := g.pick(g.paths(func(q string, n *gnode) bool { return n.layer == g.cur && !n.pinned && !g.via[q] }))
	if !ok {
		return
	}
	n := g.state[p]
	switch {
	case n.typ == tar.TypeDir:
		g.emitDir(p, n.mode^0o005, n.uid, n.gid, n.xattrs)
	case n.typ == tar.TypeReg && g.chance(0.25):
		g.emitSymlink(p, g.fresh("was-file"))
	case n.typ == tar.TypeReg:
		mode, uid, gid, x := g.meta()
		g.emitFile(p, g.content(), mode, uid, gid, x)
	default:
		mode, uid, gid, x := g.meta()
		g.emitFile(p, g.content(), mode, uid, gid, x)
	}
}

func (g *generator) special(p string, n *gnode) Entry {
	opts := []EntryOption{Mode(n.mode), Owner(n.uid, n.gid)}
	if n.typ == tar.TypeChar {
		return Char(g.name(p), n.major, n.minor, opts...)
	}
	return FIFO(g.name(p), opts...)
}

func (g *generator) addSpecial() {
	p := join(g.parentDir(), g.fresh("s"))
	n := &gnode{typ: tar.TypeFifo, mode: 0o644, layer: g.cur}
	if g.chance(0.5) {
		n.typ, n.mode, n.major, n.minor = tar.TypeChar, 0o666, 1, int64(3+g.r.IntN(6))
	}
	g.out = append(g.out, g.special(p, n))
	g.state[p] = n
}
