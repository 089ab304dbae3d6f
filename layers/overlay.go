package layers

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Ref names one entry of one layer: Layer indexes the layers given to Merge
// (0 is the bottom), Entry indexes that layer's Index.Entries.
type Ref struct{ Layer, Entry int }

func (r Ref) String() string { return fmt.Sprintf("layer %d entry %d", r.Layer, r.Entry) }

// Reason says why an entry is or is not visible in the merged filesystem.
type Reason uint8

// Reasons. Only Visible entries are seen by a container.
const (
	// Visible: the entry is what the container sees at its path.
	Visible Reason = iota
	// ReplacedInLayer: a later entry of the same layer replaced it (or
	// replaced one of its ancestor directories by a non-directory).
	ReplacedInLayer
	// Overwritten: a later layer has an entry at the same path.
	Overwritten
	// Deleted: a later layer's whiteout deleted it or an ancestor.
	Deleted
	// HiddenByOpaque: a later layer made an ancestor directory opaque.
	HiddenByOpaque
	// AncestorReplaced: a later layer replaced an ancestor directory by a
	// non-directory.
	AncestorReplaced
	// Marker: the entry is a whiteout or opaque marker, not a filesystem
	// object.
	Marker
)

var reasonNames = [...]string{"visible", "replaced in layer", "overwritten", "deleted", "hidden by opaque dir", "ancestor replaced", "marker"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Status is the visibility of one entry. By is the index of the nearest
// later layer that hides it, or -1 when no later layer does.
type Status struct {
	Reason Reason
	By     int
}

// Overlay is the merged view of a stack of layers, with OCI whiteout
// semantics: whiteouts and opaque markers hide what lower layers hold, a
// later entry at the same path replaces an earlier one, a non-directory
// replaces a directory with everything under it.
type Overlay struct {
	layers  []*Index
	status  [][]Status
	visible map[string]Ref
	// versions lists, per path, the entries at that path bottom to top; in
	// each layer only the last entry for a path (markers included).
	versions map[string][]Ref
	// markers holds each layer's whiteout and opaque markers by path.
	markers []map[string]EntryType
	// sorted holds every entry path of every layer with its ref, sorted by
	// path, for range queries below a directory.
	sorted []pathRef
}

type pathRef struct {
	path string
	ref  Ref
}

type hider struct {
	layer  int
	reason Reason
}

// Merge builds the overlay view of layers given bottom first. Foreign
// layers, whose entries are unknown, contribute nothing.
func Merge(layers ...*Index) (*Overlay, error) {
	o := &Overlay{
		layers:   layers,
		status:   make([][]Status, len(layers)),
		visible:  map[string]Ref{},
		versions: map[string][]Ref{},
		markers:  make([]map[string]EntryType, len(layers)),
	}
	for i, l := range layers {
		if l == nil {
			return nil, fmt.Errorf("merging layers: layer %d has no index", i)
		}
	}
	o.resolveCrossLayerLinks()

	exact := map[string]hider{}  // hides the path itself, from layers above
	prefix := map[string]hider{} // hides everything strictly below the path
	for li := len(layers) - 1; li >= 0; li-- {
		entries := layers[li].Entries
		st := make([]Status, len(entries))
		o.markers[li] = map[string]EntryType{}
		localExact := map[string]bool{}
		localPrefix := map[string]bool{}
		for ei := len(entries) - 1; ei >= 0; ei-- {
			e := &entries[ei]
			if e.Type.IsMarker() {
				st[ei] = Status{Reason: Marker, By: -1}
				if _, dup := o.markers[li][e.Path]; !dup || e.Type == TypeWhiteout {
					o.markers[li][e.Path] = e.Type
				}
				continue
			}
			st[ei] = o.visibility(e.Path, exact, prefix, localExact, localPrefix)
			localExact[e.Path] = true
			if e.Type != TypeDir {
				localPrefix[e.Path] = true
			}
			if st[ei].Reason == Visible {
				o.visible[e.Path] = Ref{li, ei}
			}
		}
		o.status[li] = st
		// Now this layer hides things in the layers below it.
		for ei := range entries {
			e := &entries[ei]
			switch e.Type {
			case TypeWhiteout:
				exact[e.Path] = hider{li, Deleted}
				prefix[e.Path] = hider{li, Deleted}
			case TypeOpaque:
				prefix[e.Path] = hider{li, HiddenByOpaque}
			}
		}
		for ei := range entries {
			e := &entries[ei]
			if e.Type.IsMarker() {
				continue
			}
			if h, ok := exact[e.Path]; !ok || h.layer != li {
				exact[e.Path] = hider{li, Overwritten}
			}
			if e.Type != TypeDir {
				prefix[e.Path] = hider{li, AncestorReplaced}
			}
		}
	}
	o.buildVersions()
	return o, nil
}

// visibility decides the status of an entry at p, given the hiders of the
// layers above (exact, prefix) and of the later entries of its own layer.
func (o *Overlay) visibility(p string, exact, prefix map[string]hider, localExact, localPrefix map[string]bool) Status {
	if localExact[p] {
		return Status{Reason: ReplacedInLayer, By: -1}
	}
	for a := parent(p); a != ""; a = parent(a) {
		if localPrefix[a] {
			return Status{Reason: ReplacedInLayer, By: -1}
		}
	}
	best := Status{Reason: Visible, By: -1}
	consider := func(h hider) {
		if best.By == -1 || h.layer < best.By {
			best = Status{Reason: h.reason, By: h.layer}
		}
	}
	if h, ok := exact[p]; ok {
		consider(h)
	}
	for a := parent(p); a != ""; a = parent(a) {
		if h, ok := prefix[a]; ok {
			consider(h)
		}
	}
	return best
}

// parent returns the parent directory of p, "." for a top-level path and ""
// for the root.
func parent(p string) string {
	if p == "." {
		return ""
	}
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}

// resolveCrossLayerLinks fills the content of hard links whose target is in
// a lower layer, from the version of the target visible at that point.
func (o *Overlay) resolveCrossLayerLinks() {
	type content struct {
		digest [32]byte
		size   int64
	}
	cur := map[string]content{}
	for _, l := range o.layers {
		for ei := range l.Entries {
			e := &l.Entries[ei]
			switch {
			case e.Type == TypeHardlink && e.LinkIndex < 0:
				if c, ok := cur[e.Linkname]; ok {
					e.Digest, e.Size = c.digest, c.size
				}
			case e.Type == TypeHardlink && e.LinkIndex < ei:
				// A link to an earlier link of the layer, which may be one
				// resolved just above: the index copied its content before.
				if t := &l.Entries[e.LinkIndex]; t.Type == TypeHardlink {
					e.Digest, e.Size = t.Digest, t.Size
				}
			}
		}
		for ei := range l.Entries {
			e := &l.Entries[ei]
			switch {
			case e.HasContent() || (e.Type == TypeHardlink && e.Size > 0):
				cur[e.Path] = content{e.Digest, e.Size}
			case e.Type == TypeWhiteout || !e.Type.IsMarker():
				delete(cur, e.Path)
			}
		}
	}
}

func (o *Overlay) buildVersions() {
	n := 0
	for li, l := range o.layers {
		n += len(l.Entries)
		last := map[string]int{}
		for ei := range l.Entries {
			last[l.Entries[ei].Path] = ei
		}
		for ei := range l.Entries {
			p := l.Entries[ei].Path
			if last[p] == ei {
				o.versions[p] = append(o.versions[p], Ref{li, ei})
			}
		}
	}
	o.sorted = make([]pathRef, 0, n)
	for li, l := range o.layers {
		for ei := range l.Entries {
			o.sorted = append(o.sorted, pathRef{l.Entries[ei].Path, Ref{li, ei}})
		}
	}
	sort.SliceStable(o.sorted, func(i, j int) bool { return o.sorted[i].path < o.sorted[j].path })
}

// Layers returns the indexes the overlay was built from.
func (o *Overlay) Layers() []*Index { return o.layers }

// Entry returns the entry r names.
func (o *Overlay) Entry(r Ref) *Entry { return &o.layers[r.Layer].Entries[r.Entry] }

// Status returns the visibility of the entry r names.
func (o *Overlay) Status(r Ref) Status { return o.status[r.Layer][r.Entry] }

// Visible reports whether the entry r names is seen by a container.
func (o *Overlay) Visible(r Ref) bool { return o.status[r.Layer][r.Entry].Reason == Visible }

// Lookup returns the visible entry at path p (cleaned, relative).
func (o *Overlay) Lookup(p string) (Ref, bool) {
	r, ok := o.visible[p]
	return r, ok
}

// Paths returns the paths of the merged filesystem, sorted.
func (o *Overlay) Paths() []string {
	out := make([]string, 0, len(o.visible))
	for p := range o.visible {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Versions returns the entries at path p, bottom to top, one per layer that
// has one (the last in that layer), markers included.
func (o *Overlay) Versions(p string) []Ref { return o.versions[p] }

// Beneath returns the entry that becomes visible at r's path if r alone is
// removed: the version right below r that nothing but r hides. ok is false
// when there is none (r is the first version, or something else in r's
// layer, a whiteout or an opaque directory, also hides it).
func (o *Overlay) Beneath(r Ref) (Ref, bool) {
	e := o.Entry(r)
	vs := o.versions[e.Path]
	pos := -1
	for i, v := range vs {
		if v == r {
			pos = i
		}
	}
	if pos <= 0 {
		return Ref{}, false
	}
	prev := vs[pos-1]
	if o.Entry(prev).Type.IsMarker() {
		return Ref{}, false
	}
	if st := o.Status(prev); st.By != r.Layer {
		return Ref{}, false
	}
	m := o.markers[r.Layer]
	if m[e.Path] == TypeWhiteout {
		return Ref{}, false
	}
	for a := parent(e.Path); a != ""; a = parent(a) {
		if _, ok := m[a]; ok {
			return Ref{}, false
		}
	}
	return prev, true
}

// InScope calls fn for every entry of layers below marker m's layer that
// the marker covers: the path itself and everything under it for a
// whiteout, everything strictly under the directory for an opaque marker.
// fn returns false to stop.
func (o *Overlay) InScope(m Ref, fn func(Ref) bool) {
	e := o.Entry(m)
	if !e.Type.IsMarker() {
		return
	}
	visit := func(lo, hi int) bool {
		for _, pr := range o.sorted[lo:hi] {
			if pr.ref.Layer < m.Layer && !fn(pr.ref) {
				return false
			}
		}
		return true
	}
	if e.Type == TypeWhiteout {
		lo := sort.Search(len(o.sorted), func(i int) bool { return o.sorted[i].path >= e.Path })
		hi := lo
		for hi < len(o.sorted) && o.sorted[hi].path == e.Path {
			hi++
		}
		if !visit(lo, hi) {
			return
		}
	}
	pre := e.Path + "/"
	if e.Path == "." {
		pre = ""
	}
	lo := sort.Search(len(o.sorted), func(i int) bool { return o.sorted[i].path >= pre })
	hi := lo
	for hi < len(o.sorted) && strings.HasPrefix(o.sorted[hi].path, pre) {
		hi++
	}
	if pre == "" {
		// The root's children: everything but "." itself.
		lo, hi = 0, len(o.sorted)
		for lo < hi && o.sorted[lo].path == "." {
			lo++
		}
	}
	visit(lo, hi)
}

// Waste returns the bytes of layer li that no container sees: the sizes of
// its regular files that are the final version of their path in the layer
// and that a later layer overwrote, deleted, hid under an opaque directory
// or replaced an ancestor of.
func (o *Overlay) Waste(li int) int64 {
	var n int64
	for ei := range o.layers[li].Entries {
		e := &o.layers[li].Entries[ei]
		if e.Type != TypeReg {
			continue
		}
		switch o.status[li][ei].Reason {
		case Overwritten, Deleted, HiddenByOpaque, AncestorReplaced:
			n += e.Size
		}
	}
	return n
}

// WastedPath is a regular file that no container sees.
type WastedPath struct {
	Ref    Ref
	Path   string
	Size   int64
	Reason Reason
	By     int
}

// WastedPaths returns every wasted regular file, largest first (then by
// layer and path).
func (o *Overlay) WastedPaths() []WastedPath {
	var out []WastedPath
	for li, l := range o.layers {
		for ei := range l.Entries {
			e := &l.Entries[ei]
			st := o.status[li][ei]
			if e.Type != TypeReg {
				continue
			}
			switch st.Reason {
			case Overwritten, Deleted, HiddenByOpaque, AncestorReplaced:
				out = append(out, WastedPath{Ref{li, ei}, e.Path, e.Size, st.Reason, st.By})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Size != out[j].Size {
			return out[i].Size > out[j].Size
		}
		if out[i].Ref.Layer != out[j].Ref.Layer {
			return out[i].Ref.Layer < out[j].Ref.Layer
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// Readd is a visible entry that re-adds what the entry beneath it already
// held: the same content and metadata (Identical) or the same content with
// another mode, owner, xattrs or mtime (a metadata-only copy-up, as a
// chmod or chown in a Dockerfile leaves).
type Readd struct {
	Upper, Lower Ref
	Identical    bool
}

// Readds returns the identical re-adds and the metadata-only copy-ups of
// regular files, in layer and entry order.
func (o *Overlay) Readds() []Readd {
	var out []Readd
	for li, l := range o.layers {
		for ei := range l.Entries {
			r := Ref{li, ei}
			e := &l.Entries[ei]
			if o.status[li][ei].Reason != Visible {
				continue
			}
			lower, ok := o.Beneath(r)
			if !ok {
				continue
			}
			le := o.Entry(lower)
			switch {
			case SameMetadata(e, le):
				out = append(out, Readd{r, lower, true})
			case e.Type == TypeReg && le.HasContent() && SameContent(e, le):
				out = append(out, Readd{r, lower, false})
			}
		}
	}
	return out
}

// DuplicateGroup is one content stored at several visible paths.
type DuplicateGroup struct {
	Digest [32]byte
	Size   int64
	Paths  []string
}

// DuplicateContent returns the non-empty regular-file contents that appear
// at more than one visible path (hard links to one another excluded), the
// largest extra bytes first.
func (o *Overlay) DuplicateContent() []DuplicateGroup {
	groups := map[[32]byte]*DuplicateGroup{}
	for _, p := range o.Paths() {
		r := o.visible[p]
		e := o.Entry(r)
		if e.Type != TypeReg || e.Size == 0 {
			continue
		}
		g, ok := groups[e.Digest]
		if !ok {
			g = &DuplicateGroup{Digest: e.Digest, Size: e.Size}
			groups[e.Digest] = g
		}
		g.Paths = append(g.Paths, p)
	}
	var out []DuplicateGroup
	for _, g := range groups {
		if len(g.Paths) > 1 {
			out = append(out, *g)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		wi, wj := out[i].Size*int64(len(out[i].Paths)-1), out[j].Size*int64(len(out[j].Paths)-1)
		if wi != wj {
			return wi > wj
		}
		return out[i].Paths[0] < out[j].Paths[0]
	})
	return out
}

// MaxSymlinks is how many symbolic links Resolve follows before it gives
// up, as the kernel's ELOOP does.
const MaxSymlinks = 40

// Resolve follows the absolute path p through the merged filesystem, as the
// kernel does when a process opens it: every symbolic link on the way is
// followed inside the image root (absolute targets start again at the root,
// ".." stops at the root), and a directory that exists only implicitly, as
// the parent of entries, is walked through. It returns the entry reached
// and, in order, the symbolic links crossed on the way; ok is false when
// the path leads nowhere (a missing component, a loop, a file used as a
// directory). This is the one symlink resolver of the images coldstart
// reads: the optimizer's prioritization, the cost model and the pull client
// use it.
func (o *Overlay) Resolve(p string) (final Ref, links []Ref, ok bool) {
	rest := splitPath(p)
	cur := "."
	hops := 0
	found := false
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case ".":
			continue
		case "..":
			if cur != "." {
				cur = path.Dir(cur)
			}
			found = false
			continue
		}
		next := c
		if cur != "." {
			next = cur + "/" + c
		}
		r, exists := o.Lookup(next)
		if !exists {
			// An implicit directory, or nothing: the next lookup says.
			cur, found = next, false
			continue
		}
		e := o.Entry(r)
		switch e.Type {
		case TypeSymlink:
			links = append(links, r)
			if hops++; hops > MaxSymlinks {
				return Ref{}, links, false
			}
			if strings.HasPrefix(e.Linkname, "/") {
				cur = "."
			}
			rest = append(splitPath(e.Linkname), rest...)
			found = false
			continue
		case TypeDir:
		default:
			if len(rest) > 0 {
				return Ref{}, links, false // a file used as a directory
			}
		}
		cur, final, found = next, r, true
	}
	return final, links, found
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}
