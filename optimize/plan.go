package optimize

import (
	"slices"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/optimize/profile"
)

// Role says what the optimizer may do with a layer.
type Role int

// Roles.
const (
	// RoleRewrite: entries no container sees are dropped, start-up files go
	// first, and the layer is re-encoded.
	RoleRewrite Role = iota
	// RoleKeep: the layer stays byte-identical (a cached, foreign or
	// already-lazy layer).
	RoleKeep
	// RoleConvert: the layer is re-encoded as it is, without dropping
	// anything and with only the base's own start-up files first, so that
	// every image on the same base layer gets the same converted digest
	// (base layers under BaseConvert).
	RoleConvert
	// RoleRecompress: the layer's tar stream stays byte for byte (and so its
	// DiffID), recompressed into zstd:chunked for containerd (base layers
	// under BaseRecompress). The plan treats it as kept.
	RoleRecompress
)

// layerPlan is what happens to one layer.
type layerPlan struct {
	role   Role
	reason string
	// keep[i] says whether entry i of the layer stays: RoleRewrite drops
	// what no container sees, RoleConvert only markers another marker of
	// its layer covers (dropCoveredMarkers).
	keep         []bool
	droppedFiles int
	droppedBytes int64
	// prioritized lists the entry paths to put first, in access order.
	prioritized []string
	// onDemand lists the start-up files of the layer left out of its
	// prefetch (plan.sparse): they stay where they are, compressed at the
	// start-up level.
	onDemand []string
	// links lists the kept hard links whose file is in a lower layer
	// (RoleRewrite and RoleConvert), by entry index: each becomes that
	// file, or a link to an earlier entry of the layer that became it.
	links map[int]linkSource
	// dirs lists, by entry index, directories to write right before the
	// entry: those above kept entries that the layer has no entry for,
	// as the layers below have them (lazy formats only).
	dirs map[int][]*layers.Entry
	// moved lists, by entry index, the entries containerd writes through
	// a symlinked directory, named where they land
	// (resolveSymlinkParents); RoleRecompress refuses a layer with any.
	moved map[int]layers.Moved
}

// linkSource is what a hard link to a file of a lower layer becomes.
type linkSource struct {
	// relink is the name of an earlier entry of the layer that holds the
	// file; when empty, the link becomes the file, read from file.
	relink string
	file   layers.Ref
}

// plan decides, for every layer, which entries stay and which go first.
type plan struct {
	ov     *layers.Overlay
	layers []*layerPlan
	// provider maps a path to the entry that provides it in the output.
	provider map[string]layers.Ref
	// missing lists prioritized paths not found in the image.
	missing []string
	// sparse lists the start-up files left out of the prefetch: large
	// files programs read in part, through mmap (WithSparseLimit).
	sparse []string
}

// makePlan computes the plan for the overlay ov, where roles[i] is layer i's
// role, moved[i] its entries that apply through a symlinked directory
// (resolveSymlinkParents), dedupe says whether to drop what no container
// sees and f is the output format.
func makePlan(ov *layers.Overlay, roles []Role, reasons []string, moved []map[int]layers.Moved, dedupe bool, f layers.Format) *plan {
	// A recompressed layer's entries are the input's: for the plan, it is
	// kept.
	planRoles := slices.Clone(roles)
	for i, r := range planRoles {
		if r == RoleRecompress {
			planRoles[i] = RoleKeep
		}
	}
	p := makePlanEntries(ov, planRoles, reasons, moved, dedupe)
	p.findLinkSources()
	if f.Lazy() {
		p.findParentDirs()
	}
	if f == layers.FormatZstdChunked {
		p.addRootDirs()
	}
	for i, r := range roles {
		p.layers[i].role = r
	}
	return p
}

// emptyLayers lists the rewritten layers dedupe leaves with no entry at
// all: their output layer would change nothing. It lists none when every
// layer of the image is one, so that the output keeps a layer.
func (p *plan) emptyLayers() []bool {
	empty := make([]bool, len(p.layers))
	n := 0
	for li, lp := range p.layers {
		if lp.role != RoleRewrite || slices.Contains(lp.keep, true) {
			continue
		}
		empty[li] = true
		n++
	}
	if n == 0 || n == len(p.layers) {
		return nil
	}
	return empty
}

// addRootDirs gives every rewritten or converted layer that has no entry
// for the root directory one, before its first entry: the root's entry of
// the layers below when there is one, else 0755, root-owned, from 1970.
// containers/storage (1.43, Debian's podman) stages a partially pulled
// layer in a directory it creates 0700 and sets the root's mode only from
// an entry for it, so without one a container that runs as another user
// than root cannot reach any file of the image. Whole pulls and
// containerd ignore the root's entry.
func (p *plan) addRootDirs() {
	for li, idx := range p.ov.Layers() {
		lp := p.layers[li]
		if lp.role == RoleKeep {
			continue
		}
		first, hasRoot := -1, false
		for ei := range idx.Entries {
			if !lp.keep[ei] {
				continue
			}
			if first < 0 {
				first = ei
			}
			if e := &idx.Entries[ei]; e.Path == "." && e.Type == layers.TypeDir {
				hasRoot = true
				break
			}
		}
		if first < 0 || hasRoot {
			continue
		}
		root, ok := p.dirBefore(li, ".")
		if !ok {
			root = &layers.Entry{Path: ".", Name: "./", Type: layers.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0).UTC()}
		}
		if lp.dirs == nil {
			lp.dirs = map[int][]*layers.Entry{}
		}
		lp.dirs[first] = append([]*layers.Entry{root}, lp.dirs[first]...)
	}
}

func makePlanEntries(ov *layers.Overlay, roles []Role, reasons []string, moved []map[int]layers.Moved, dedupe bool) *plan {
	idxs := ov.Layers()
	p := &plan{ov: ov, layers: make([]*layerPlan, len(idxs)), provider: map[string]layers.Ref{}}
	for li, idx := range idxs {
		lp := &layerPlan{role: roles[li], reason: reasons[li], keep: make([]bool, len(idx.Entries)), moved: moved[li]}
		for i := range lp.keep {
			lp.keep[i] = true
		}
		p.layers[li] = lp
	}
	for _, path := range ov.Paths() {
		r, _ := ov.Lookup(path)
		p.provider[path] = r
	}
	p.dropCoveredMarkers()
	if !dedupe {
		return p
	}
	rewrite := func(li int) bool { return p.layers[li].role == RoleRewrite }

	// 1. Entries no container sees.
	for li, idx := range idxs {
		if !rewrite(li) {
			continue
		}
		for ei := range idx.Entries {
			if st := ov.Status(layers.Ref{Layer: li, Entry: ei}); st.Reason != layers.Visible && st.Reason != layers.Marker {
				p.layers[li].keep[ei] = false
			}
		}
	}
	// 2. Identical re-adds: drop the upper copy, keep the one beneath,
	// unless a hard link of any layer shares either (the re-add gives the
	// path an inode of its own, which dropping it would undo), or the upper
	// copy's layer has its name twice (a copy before it that stays, say
	// for a link to it, would become the layer's last word).
	linked := p.linkedEntries()
	twice := map[layers.Ref]bool{}
	for li, idx := range idxs {
		if !rewrite(li) {
			continue
		}
		last := map[string]int{}
		for ei := range idx.Entries {
			e := &idx.Entries[ei]
			if e.Type.IsMarker() {
				continue
			}
			if prev, ok := last[e.Path]; ok {
				twice[layers.Ref{Layer: li, Entry: prev}] = true
				twice[layers.Ref{Layer: li, Entry: ei}] = true
			}
			last[e.Path] = ei
		}
	}
	for li, idx := range idxs {
		if !rewrite(li) {
			continue
		}
		for ei := range idx.Entries {
			v := layers.Ref{Layer: li, Entry: ei}
			e := ov.Entry(v)
			if !ov.Visible(v) || (e.Type != layers.TypeReg && e.Type != layers.TypeSymlink) {
				continue
			}
			cur := v
			for rewrite(cur.Layer) && !linked[cur] && !twice[cur] {
				lower, ok := ov.Beneath(cur)
				if !ok || linked[lower] || !layers.SameMetadata(ov.Entry(cur), ov.Entry(lower)) {
					break
				}
				p.layers[cur.Layer].keep[cur.Entry] = false
				cur = lower
			}
			if cur != v {
				p.layers[cur.Layer].keep[cur.Entry] = true
				p.provider[e.Path] = cur
			}
		}
	}
	// 3a. A hard link of a kept layer resolves its target by name when it
	// applies: whatever provided that name then stays.
	for li, idx := range idxs {
		if rewrite(li) || p.layers[li].role == RoleConvert {
			continue
		}
		for ei := range idx.Entries {
			if e := &idx.Entries[ei]; e.Type == layers.TypeHardlink && e.LinkIndex < 0 {
				chain, _ := p.fileBefore(li, e.Linkname, 0)
				for _, r := range chain {
					p.layers[r.Layer].keep[r.Entry] = true
				}
			}
		}
	}
	// 3b. An entry of a kept layer applies into the directories that the
	// layers below provide: they stay (else the applier makes them up,
	// 0755, and a later whiteout that hid them would go, as it would hide
	// nothing that stays).
	for li, idx := range idxs {
		if rewrite(li) || p.layers[li].role == RoleConvert {
			continue
		}
		seen := map[string]bool{}
		for ei := range idx.Entries {
			e := &idx.Entries[ei]
			dir := parentDir(e.Path)
			if e.Type == layers.TypeOpaque {
				dir = e.Path
			}
			for a := dir; a != "" && a != "." && !seen[a]; a = parentDir(a) {
				seen[a] = true
				if r, ok := p.dirRefBefore(li, a); ok && rewrite(r.Layer) {
					p.layers[r.Layer].keep[r.Entry] = true
				}
			}
		}
	}
	// 3c. An entry of a kept layer that applies through a symlinked
	// directory needs the symlinks where it applies: they stay.
	for li := range idxs {
		if lp := p.layers[li]; rewrite(li) || lp.role == RoleConvert {
			continue
		}
		for _, m := range p.layers[li].moved {
			for _, s := range m.Via {
				vs := ov.Versions(s)
				for i := len(vs) - 1; i >= 0; i-- {
					if v := vs[i]; v.Layer < li {
						if ov.Entry(v).Type == layers.TypeSymlink && rewrite(v.Layer) {
							p.layers[v.Layer].keep[v.Entry] = true
						}
						break
					}
				}
			}
		}
	}
	// 3. Hard link targets of kept links stay, and so do the directories
	// above every kept entry of a layer.
	for li, idx := range idxs {
		if !rewrite(li) {
			continue
		}
		lp := p.layers[li]
		for changed := true; changed; {
			changed = false
			for ei := range idx.Entries {
				e := &idx.Entries[ei]
				if lp.keep[ei] && e.Type == layers.TypeHardlink && e.LinkIndex >= 0 && !lp.keep[e.LinkIndex] {
					lp.keep[e.LinkIndex] = true
					changed = true
				}
			}
		}
		needDirs := map[string]bool{}
		lastDir := map[string]int{}
		for ei := range idx.Entries {
			e := &idx.Entries[ei]
			if e.Type == layers.TypeDir {
				lastDir[e.Path] = ei
			}
			if lp.keep[ei] {
				for a := parentDir(e.Path); a != ""; a = parentDir(a) {
					if needDirs[a] {
						break
					}
					needDirs[a] = true
				}
			}
		}
		for d := range needDirs {
			if ei, ok := lastDir[d]; ok {
				lp.keep[ei] = true
			}
		}
	}
	// 4. Markers stay only while they hide something that stays below them.
	for li, idx := range idxs {
		if !rewrite(li) {
			continue
		}
		for ei := range idx.Entries {
			if !idx.Entries[ei].Type.IsMarker() {
				continue
			}
			hides := false
			ov.InScope(layers.Ref{Layer: li, Entry: ei}, func(r layers.Ref) bool {
				if p.layers[r.Layer].keep[r.Entry] && !ov.Entry(r).Type.IsMarker() {
					hides = true
					return false
				}
				return true
			})
			p.layers[li].keep[ei] = hides
		}
	}
	// Step 4 weighed every marker again: the covered ones go for good.
	p.dropCoveredMarkers()
	for li, idx := range idxs {
		lp := p.layers[li]
		for ei := range idx.Entries {
			if !lp.keep[ei] {
				lp.droppedFiles++
				if e := &idx.Entries[ei]; e.Type == layers.TypeReg {
					lp.droppedBytes += e.Size
				}
			}
		}
	}
	return p
}

// dropCoveredMarkers drops, in every layer the plan writes (rewritten or
// converted, deduped or not), the whiteout and opaque markers that another
// marker of the same layer covers: one under a directory the layer whites
// out or makes opaque. Dropping one changes nothing a full pull applies,
// and keeping it would make the lazy formats write the directories on its
// way (as its parents) in the layer that deletes them.
func (p *plan) dropCoveredMarkers() {
	for li, idx := range p.ov.Layers() {
		lp := p.layers[li]
		if lp.role != RoleRewrite && lp.role != RoleConvert {
			continue
		}
		whited := map[string]bool{}
		for ei := range idx.Entries {
			if e := &idx.Entries[ei]; e.Type.IsMarker() {
				whited[e.Path] = true
			}
		}
		for ei := range idx.Entries {
			if e := &idx.Entries[ei]; e.Type.IsMarker() && underWhiteout(whited, e.Path) {
				lp.keep[ei] = false
			}
		}
	}
}

// underWhiteout reports whether a strict ancestor of p is in whited (the
// paths a layer whites out and its opaque directories).
func underWhiteout(whited map[string]bool, p string) bool {
	if len(whited) == 0 {
		return false
	}
	for a := parentDir(p); a != "" && a != "."; a = parentDir(a) {
		if whited[a] {
			return true
		}
	}
	return false
}

// findLinkSources fills the links of every rewritten or converted layer:
// a lazy puller resolves hard links inside one layer only, and a later
// layer may delete the lower name, so a kept link to a file of a lower
// layer becomes that file (the first in the layer that links to it) or a
// link to the entry that became it.
func (p *plan) findLinkSources() {
	for li, idx := range p.ov.Layers() {
		lp := p.layers[li]
		if lp.role == RoleKeep {
			continue
		}
		held := map[layers.Ref]string{} // file -> the entry that became it, while it still names it
		for ei := range idx.Entries {
			e := &idx.Entries[ei]
			if !lp.keep[ei] {
				continue
			}
			for f, name := range held {
				if hp := cleanName(name); e.Path == hp || (e.Type != layers.TypeDir && strings.HasPrefix(hp, e.Path+"/")) {
					delete(held, f) // replaced: a later link must not follow the name
				}
			}
			if e.Type != layers.TypeHardlink || e.LinkIndex >= 0 {
				continue
			}
			chain, ok := p.fileBefore(li, e.Linkname, 0)
			if !ok {
				continue // a dangling link: left as the input has it
			}
			f := chain[len(chain)-1]
			if lp.links == nil {
				lp.links = map[int]linkSource{}
			}
			if name, ok := held[f]; ok {
				lp.links[ei] = linkSource{relink: name}
				continue
			}
			lp.links[ei] = linkSource{file: f}
			held[f] = e.Name
		}
	}
}

// findParentDirs fills the dirs of every rewritten or converted layer: a
// lazy puller presents a directory that a layer's entries are under but
// that the layer has no entry for as 0755, root-owned, from 1970, and
// overlayfs shows the upper layer's directory, where a full pull keeps the
// metadata of the directory below. Such a directory gets an entry with
// that metadata.
func (p *plan) findParentDirs() {
	for li, idx := range p.ov.Layers() {
		lp := p.layers[li]
		if lp.role == RoleKeep {
			continue
		}
		kept := func(ei int) bool { return lp.role != RoleRewrite || lp.keep[ei] }
		done := map[string]bool{".": true}
		for ei := range idx.Entries {
			if e := &idx.Entries[ei]; kept(ei) && e.Type == layers.TypeDir {
				done[e.Path] = true
			}
		}
		for ei := range idx.Entries {
			if !kept(ei) {
				continue
			}
			e := &idx.Entries[ei]
			dir := parentDir(e.Path)
			if e.Type == layers.TypeOpaque {
				dir = e.Path // the marker is inside the directory it makes opaque
			}
			var need []string
			for a := dir; a != "" && !done[a]; a = parentDir(a) {
				need = append(need, a)
				done[a] = true
			}
			for k := len(need) - 1; k >= 0; k-- {
				if d, ok := p.dirBefore(li, need[k]); ok {
					if lp.dirs == nil {
						lp.dirs = map[int][]*layers.Entry{}
					}
					lp.dirs[ei] = append(lp.dirs[ei], d)
				}
			}
		}
	}
}

// dirBefore returns the directory entry that provided dir on top of the
// layers below layer; ok is false when none did (the directory was made
// implicitly below too) or dir was not a directory then.
func (p *plan) dirBefore(layer int, dir string) (*layers.Entry, bool) {
	r, ok := p.dirRefBefore(layer, dir)
	if !ok {
		return nil, false
	}
	return p.ov.Entry(r), true
}

// dirRefBefore is dirBefore's entry as a Ref.
func (p *plan) dirRefBefore(layer int, dir string) (layers.Ref, bool) {
	vs := p.ov.Versions(dir)
	for i := len(vs) - 1; i >= 0; i-- {
		v := vs[i]
		if v.Layer >= layer {
			continue
		}
		e := p.ov.Entry(v)
		if e.Type == layers.TypeOpaque {
			// The layer's last entry at dir is its opaque marker: its
			// directory entry, if any, comes before it.
			idx := p.ov.Layers()[v.Layer]
			for ei := v.Entry - 1; ei >= 0; ei-- {
				if c := &idx.Entries[ei]; c.Path == dir && c.Type == layers.TypeDir {
					v, e = layers.Ref{Layer: v.Layer, Entry: ei}, c
					break
				}
			}
			if e.Type == layers.TypeOpaque {
				continue
			}
		}
		st := p.ov.Status(v)
		if e.Type != layers.TypeDir || st.Reason == layers.ReplacedInLayer || (st.By >= 0 && st.By < layer && st.Reason != layers.Overwritten) {
			return layers.Ref{}, false
		}
		return v, true
	}
	return layers.Ref{}, false
}

func cleanName(name string) string {
	p, err := layers.CleanPath(name)
	if err != nil {
		return name
	}
	return p
}

// fileBefore finds the file that a hard link to target, applied on top of
// the layers below layer, shares: the entry that provided target then, and
// the links from it to the file, in order; the last ref is the file (any
// non-directory but a hard link). ok is false when nothing provided target.
func (p *plan) fileBefore(layer int, target string, hops int) (chain []layers.Ref, ok bool) {
	if hops > maxLinkHops {
		return nil, false
	}
	vs := p.ov.Versions(target)
	for i := len(vs) - 1; i >= 0; i-- {
		v := vs[i]
		if v.Layer >= layer {
			continue
		}
		e := p.ov.Entry(v)
		st := p.ov.Status(v)
		if e.Type.IsMarker() || e.Type == layers.TypeDir || st.Reason == layers.ReplacedInLayer || (st.By >= 0 && st.By < layer) {
			return nil, false
		}
		for {
			chain = append(chain, v)
			e := p.ov.Entry(v)
			if e.Type != layers.TypeHardlink {
				return chain, true
			}
			if e.LinkIndex < 0 {
				rest, ok := p.fileBefore(v.Layer, e.Linkname, hops+1)
				return append(chain, rest...), ok
			}
			if hops++; hops > maxLinkHops {
				return nil, false
			}
			v = layers.Ref{Layer: v.Layer, Entry: e.LinkIndex}
		}
	}
	return nil, false
}

// linkedEntries returns the entries that a hard link of any layer shares
// an inode with: its target in its own layer, or the file (and the links
// on the way to it) that provided its target's name in the layers below.
func (p *plan) linkedEntries() map[layers.Ref]bool {
	out := map[layers.Ref]bool{}
	for li, idx := range p.ov.Layers() {
		for ei := range idx.Entries {
			e := &idx.Entries[ei]
			if e.Type != layers.TypeHardlink {
				continue
			}
			if e.LinkIndex >= 0 {
				out[layers.Ref{Layer: li, Entry: e.LinkIndex}] = true
				continue
			}
			chain, _ := p.fileBefore(li, e.Linkname, 0)
			for _, r := range chain {
				out[r] = true
			}
		}
	}
	return out
}

// maxLinkHops bounds hard-link chains, as layers.MaxSymlinks bounds
// symbolic links.
const maxLinkHops = layers.MaxSymlinks

// prioritize resolves each path (absolute, in the image) through the
// image's symlinks (layers.Overlay.Resolve) and assigns the links on the way
// and the file reached to the layer that provides them in the output, in
// the given order. Paths in layers that are not rewritten stay where they
// are.
//
// The optional paths go first; an image without them is not missing
// anything (the runtime files a profile does not name, unnamedRuntimeFiles).
func (p *plan) prioritize(optional, paths []string, sparseLimit int64) {
	quiet := map[string]bool{}
	for _, o := range optional {
		quiet[o] = true
	}
	missing := func(want string) {
		if !quiet[want] {
			p.missing = append(p.missing, want)
		}
	}
	// The entry that provides a path in the output (an identical re-add
	// gives way to the copy beneath it).
	provider := func(r layers.Ref) layers.Ref {
		if pr, ok := p.provider[p.ov.Entry(r).Path]; ok {
			return pr
		}
		return r
	}
	eachResolved(p.ov, append(slices.Clone(optional), paths...), provider, missing, func(r layers.Ref) {
		lp := p.layers[r.Layer]
		e := p.ov.Entry(r)
		if readInPartOver(e, sparseLimit) {
			p.sparse = append(p.sparse, "/"+e.Path)
			if lp.role == RoleRewrite && lp.keep[r.Entry] || lp.role == RoleRecompress {
				lp.onDemand = append(lp.onDemand, e.Path)
			}
			return
		}
		// A recompressed layer copies its start-up files ahead of its
		// stream, which stays as it is.
		if lp.role == RoleRewrite && lp.keep[r.Entry] || lp.role == RoleRecompress {
			lp.prioritized = append(lp.prioritized, e.Path)
		}
	})
}

// eachResolved resolves each path through ov's symlinks and calls visit
// with the links on the way and the file reached, in order, each mapped by
// to (nil: as they are) and visited once. missing (nil: ignored) gets the
// paths that lead nowhere; their links are still visited.
func eachResolved(ov *layers.Overlay, paths []string, to func(layers.Ref) layers.Ref, missing func(string), visit func(layers.Ref)) {
	seen := map[layers.Ref]bool{}
	for _, want := range paths {
		final, links, ok := ov.Resolve(want)
		if ok {
			links = append(links, final)
		} else if missing != nil {
			missing(want)
		}
		for _, r := range links {
			if to != nil {
				r = to(r)
			}
			if !seen[r] {
				seen[r] = true
				visit(r)
			}
		}
	}
}

// readInPartOver reports whether e is a file programs read in part
// (profile.ReadInPart) larger than limit, which stays out of the prefetch
// (0: none does).
func readInPartOver(e *layers.Entry, limit int64) bool {
	return limit > 0 && e.Size > limit && profile.ReadInPart(e.Path)
}

// parentDir returns the parent of a cleaned relative path: "." for a
// top-level path, "" for the root.
func parentDir(p string) string {
	if p == "." || p == "" {
		return ""
	}
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}
