package oracle

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Difference is one way two filesystems differ at one path.
type Difference struct {
	// Path is the path, clean and relative.
	Path string
	// Field is what differs: "missing" (only in want), "extra" (only in
	// got), "type", "mode", "owner", "mtime", "content", "target",
	// "device", "xattrs" or "hardlinks".
	Field string
	// Want and Got describe the field on each side.
	Want, Got string
	// Msg is the whole sentence, for people.
	Msg string
}

func (d Difference) String() string { return d.Msg }

// Comparison is the outcome of [Compare].
type Comparison struct {
	// Differences are the first differences in tree order (at most the
	// cap, see [MaxDifferences]).
	Differences []Difference
	// Total counts every difference found.
	Total int
	// Paths is the number of paths compared (in either filesystem, the
	// ignored ones excluded).
	Paths int
}

// Equal reports whether no difference was found.
func (c *Comparison) Equal() bool { return c.Total == 0 }

// String lists the differences one per line, and how many more there are.
func (c *Comparison) String() string {
	var b strings.Builder
	for _, d := range c.Differences {
		b.WriteString(d.Msg)
		b.WriteByte('\n')
	}
	if more := c.Total - len(c.Differences); more > 0 {
		fmt.Fprintf(&b, "... and %d more differences\n", more)
	}
	return b.String()
}

// CompareOption changes what [Compare] looks at.
type CompareOption func(*compareOptions)

type compareOptions struct {
	ignoreMTime bool
	ignore      []func(string) bool
	max         int
	want, got   string
}

// IgnoreMTime skips modification times. By default they are compared
// where both sides know them.
func IgnoreMTime() CompareOption { return func(o *compareOptions) { o.ignoreMTime = true } }

// IgnoreRootNames skips the named entries of the root directory and
// everything under them, on both sides, for example
// "stargz.index.json" and ".prefetch.landmark", which a full pull of an
// eStargz layer extracts as files. By default nothing is skipped.
func IgnoreRootNames(names ...string) CompareOption {
	set := map[string]bool{}
	for _, n := range names {
		set[strings.Trim(n, "/")] = true
	}
	return IgnorePaths(func(p string) bool {
		top, _, _ := strings.Cut(p, "/")
		return set[top]
	})
}

// IgnorePaths skips the paths for which skip returns true (it is given
// clean relative paths); the paths under a skipped directory are still
// visited unless skip says so too.
func IgnorePaths(skip func(path string) bool) CompareOption {
	return func(o *compareOptions) { o.ignore = append(o.ignore, skip) }
}

// MaxDifferences caps how many differences are listed (Total still counts
// them all). The default is 100; n <= 0 lists all.
func MaxDifferences(n int) CompareOption { return func(o *compareOptions) { o.max = n } }

// Sides names the two filesystems in messages. The default is "source"
// and "target".
func Sides(want, got string) CompareOption {
	return func(o *compareOptions) { o.want, o.got = want, got }
}

type entryRef struct {
	path string
	n    *dnode
}

// Compare reports, per path, how got differs from want: paths missing or
// extra, type, mode, owner, mtime (where both know it), content (size and
// digest), symlink target, device numbers, xattrs and hard-link structure
// (which of the paths present on both sides share an inode). Differences
// come in tree order, at most one per field and path; when the type
// differs the other fields are not compared.
func Compare(want, got *FS, opts ...CompareOption) *Comparison {
	o := &compareOptions{max: 100, want: "source", got: "target"}
	for _, opt := range opts {
		opt(o)
	}
	skip := func(p string) bool {
		for _, f := range o.ignore {
			if f(p) {
				return true
			}
		}
		return false
	}
	list := func(fs *FS) []entryRef {
		var out []entryRef
		fs.walk(func(p string, n *dnode) {
			if !skip(p) {
				out = append(out, entryRef{p, n})
			}
		})
		return out
	}
	ws, gs := list(want), list(got)
	c := &Comparison{}
	add := func(d Difference) { c.Differences = append(c.Differences, d) }
	// Hard-link structure: on the paths both sides have, the partition
	// into inodes must be the same, so the inode maps must be a
	// bijection.
	type pair struct{ w, g *inode }
	var common []pair
	var commonPaths []string
	w2g := map[*inode]map[*inode]bool{}
	g2w := map[*inode]map[*inode]bool{}
	link := func(m map[*inode]map[*inode]bool, a, b *inode) {
		if m[a] == nil {
			m[a] = map[*inode]bool{}
		}
		m[a][b] = true
	}
	i, j := 0, 0
	for i < len(ws) || j < len(gs) {
		var cmp int
		switch {
		case i == len(ws):
			cmp = 1
		case j == len(gs):
			cmp = -1
		default:
			cmp = treeCompare(ws[i].path, gs[j].path)
		}
		switch {
		case cmp < 0:
			c.Paths++
			add(o.diff(ws[i].path, "missing", describe(ws[i].n.ino), "", "/%s: missing from %s (%s in %s)", ws[i].path, o.got, describe(ws[i].n.ino), o.want))
			i++
		case cmp > 0:
			c.Paths++
			add(o.diff(gs[j].path, "extra", "", describe(gs[j].n.ino), "/%s: only in %s (%s)", gs[j].path, o.got, describe(gs[j].n.ino)))
			j++
		default:
			c.Paths++
			p := ws[i].path
			for _, d := range o.compareInodes(p, ws[i].n.ino, gs[j].n.ino) {
				add(d)
			}
			common = append(common, pair{ws[i].n.ino, gs[j].n.ino})
			commonPaths = append(commonPaths, p)
			link(w2g, ws[i].n.ino, gs[j].n.ino)
			link(g2w, gs[j].n.ino, ws[i].n.ino)
			i++
			j++
		}
	}
	// Report a broken structure once per path, naming the other paths of
	// its inode on each side.
	var wMembers, gMembers map[*inode][]string
	for k, pr := range common {
		if len(w2g[pr.w]) == 1 && len(g2w[pr.g]) == 1 {
			continue
		}
		if wMembers == nil {
			wMembers, gMembers = map[*inode][]string{}, map[*inode][]string{}
			for m, q := range common {
				wMembers[q.w] = append(wMembers[q.w], commonPaths[m])
				gMembers[q.g] = append(gMembers[q.g], commonPaths[m])
			}
		}
		p := commonPaths[k]
		wl, gl := others(wMembers[pr.w], p), others(gMembers[pr.g], p)
		add(o.diff(p, "hardlinks", wl, gl, "/%s: hard links %s in %s, %s in %s", p, wl, o.want, gl, o.got))
	}
	// The hard-link differences were found after the others: sort them
	// all into one tree order, then cap.
	slices.SortStableFunc(c.Differences, func(a, b Difference) int { return treeCompare(a.Path, b.Path) })
	c.Total = len(c.Differences)
	if o.max > 0 && len(c.Differences) > o.max {
		c.Differences = c.Differences[:o.max:o.max]
	}
	return c
}

func others(members []string, self string) string {
	var out []string
	for _, m := range members {
		if m != self {
			out = append(out, "/"+m)
		}
	}
	if len(out) == 0 {
		return "none (a separate inode)"
	}
	return "with " + strings.Join(out, " ")
}

func (o *compareOptions) diff(p, field, want, got, format string, args ...any) Difference {
	return Difference{Path: p, Field: field, Want: want, Got: got, Msg: fmt.Sprintf(format, args...)}
}

func describe(ino *inode) string {
	switch ino.typ {
	case TypeFile:
		return fmt.Sprintf("file, %d bytes", ino.size)
	case TypeSymlink:
		return "symlink -> " + ino.target
	}
	return ino.typ.String()
}

func (o *compareOptions) compareInodes(p string, w, g *inode) []Difference {
	var out []Difference
	field := func(name, wv, gv string) {
		out = append(out, o.diff(p, name, wv, gv, "/%s: %s %s, %s has %s", p, name, wv, o.got, gv))
	}
	if w.typ != g.typ {
		field("type", describe(w), describe(g))
		return out
	}
	if w.mode != g.mode {
		field("mode", fmt.Sprintf("%04o", w.mode), fmt.Sprintf("%04o", g.mode))
	}
	if w.uid != g.uid || w.gid != g.gid {
		field("owner", fmt.Sprintf("%d:%d", w.uid, w.gid), fmt.Sprintf("%d:%d", g.uid, g.gid))
	}
	if !o.ignoreMTime && w.mtimeKnown && g.mtimeKnown && w.mtime != g.mtime {
		field("mtime", fmtTime(w.mtime), fmtTime(g.mtime))
	}
	switch w.typ {
	case TypeFile:
		if w.size != g.size || w.digest != g.digest {
			field("content", fmt.Sprintf("%s (%d bytes)", w.digest.Short(), w.size), fmt.Sprintf("%s (%d bytes)", g.digest.Short(), g.size))
		}
	case TypeSymlink:
		if w.target != g.target {
			field("target", fmt.Sprintf("%q", w.target), fmt.Sprintf("%q", g.target))
		}
	case TypeChar, TypeBlock:
		if w.major != g.major || w.minor != g.minor {
			field("device", fmt.Sprintf("%d,%d", w.major, w.minor), fmt.Sprintf("%d,%d", g.major, g.minor))
		}
	}
	if !maps.Equal(w.xattrs, g.xattrs) {
		field("xattrs", fmtXattrs(w.xattrs), fmtXattrs(g.xattrs))
	}
	return out
}

func fmtTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func fmtXattrs(x map[string]string) string {
	if len(x) == 0 {
		return "{}"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(x)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, x[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// treeCompare orders clean relative paths in tree order: component by
// component, so "a/b" comes before "a.b" and "a-b".
func treeCompare(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	return len(a) - len(b)
}
