package testimage

import (
	"archive/tar"
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// modelNodes turns the generator's model into the nodes Apply should produce.
func modelNodes(state map[string]*gnode) []Node {
	var out []Node
	for _, p := range sortedKeys(state) {
		g := state[p]
		if p == "." {
			continue
		}
		n := Node{Path: p, Type: Type(g.typ), Mode: g.mode, UID: g.uid, GID: g.gid, Xattrs: g.xattrs}
		switch g.typ {
		case tar.TypeReg:
			n.Size = int64(len(g.content))
			n.Digest = digestOf(g.content)
			n.Linkname = g.hardTarget
		case tar.TypeSymlink:
			n.Linkname = g.link
		case tar.TypeChar:
			n.Devmajor, n.Devminor = g.major, g.minor
		}
		out = append(out, n)
	}
	return out
}

// TestRandomMatchesModel checks two independent implementations against each
// other: the generator's own bookkeeping of the merged filesystem, and Apply.
// It also checks that every layer is valid in the sense Random documents.
func TestRandomMatchesModel(t *testing.T) {
	seeds := 200
	if testing.Short() {
		seeds = 40
	}
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		o := RandomOptions{Specials: seed%2 == 0}
		if seed%3 != 0 {
			// Every other kind too, in two seeds out of three.
			o.HardLinks, o.GlobalHeaders, o.LongNames, o.Xattrs = true, true, true, true
		}
		layers, state := random(r, o)
		raw := make([][]byte, len(layers))
		for i, l := range layers {
			raw[i] = l.Tar()
		}
		tree, err := Apply(raw...)
		if err != nil {
			t.Fatalf("seed %d: Apply: %v", seed, err)
		}
		if diff := cmp.Diff(modelNodes(state), tree.Nodes(), cmpopts.IgnoreFields(Node{}, "Origin"), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("seed %d: model and Apply disagree (-model +apply):\n%s", seed, diff)
		}
		checkValid(t, seed, layers, o)
	}
}

// checkValid checks the validity rules on the tar entries alone.
func checkValid(t *testing.T, seed int, layers []Layer, o RandomOptions) {
	t.Helper()
	exists := map[string]Type{".": TypeDir} // merged view, spec semantics
	for li, l := range layers {
		var names []string
		regInLayer := map[string]bool{}
		for ei, e := range l {
			h := e.Header
			if h.Typeflag == tar.TypeXGlobalHeader {
				if !o.GlobalHeaders || ei != 0 {
					t.Fatalf("seed %d layer %d entry %d: unexpected global header", seed, li, ei)
				}
				continue
			}
			name, err := CleanPath(h.Name)
			if err != nil {
				t.Fatalf("seed %d layer %d entry %d: %v", seed, li, ei, err)
			}
			names = append(names, name)
			base := name[strings.LastIndex(name, "/")+1:]
			parent := "."
			if i := strings.LastIndex(name, "/"); i >= 0 {
				parent = name[:i]
			}
			if typ, ok := exists[parent]; !ok || typ != TypeDir {
				t.Fatalf("seed %d layer %d entry %d (%s): parent %s missing or not a dir", seed, li, ei, h.Name, parent)
			}
			switch {
			case base == OpaqueMarker:
				for p := range exists {
					if isUnder(p, parent) && !layerWrote(names[:len(names)-1], p) {
						delete(exists, p)
					}
				}
			case strings.HasPrefix(base, WhiteoutPrefix):
				victim := parentJoin(parent, strings.TrimPrefix(base, WhiteoutPrefix))
				if _, ok := exists[victim]; !ok {
					t.Fatalf("seed %d layer %d entry %d: whiteout of missing %s", seed, li, ei, victim)
				}
				for _, earlier := range names[:len(names)-1] {
					if isWhiteout(earlier) {
						continue
					}
					if earlier == victim || isUnder(earlier, victim) {
						t.Fatalf("seed %d layer %d entry %d: whiteout of %s after the layer wrote %s", seed, li, ei, victim, earlier)
					}
				}
				delete(exists, victim)
				for p := range exists {
					if isUnder(p, victim) {
						delete(exists, p)
					}
				}
			case h.Typeflag == tar.TypeLink:
				target, _ := CleanPath(h.Linkname)
				if o.HardLinks {
					if exists[target] != TypeFile {
						t.Fatalf("seed %d layer %d entry %d: hard link to %s, not an existing regular file", seed, li, ei, target)
					}
					exists[name] = TypeFile
					break
				}
				if !regInLayer[target] {
					t.Fatalf("seed %d layer %d entry %d: hard link to %s, not an earlier regular file of the layer", seed, li, ei, target)
				}
				for _, later := range l[ei+1:] {
					if c, _ := CleanPath(later.Header.Name); c == target {
						t.Fatalf("seed %d layer %d: hard link target %s written again", seed, li, target)
					}
				}
				exists[name] = TypeFile
			default:
				if old, ok := exists[name]; ok && old == TypeDir && h.Typeflag != tar.TypeDir {
					for p := range exists {
						if isUnder(p, name) {
							delete(exists, p)
						}
					}
				}
				exists[name] = Type(h.Typeflag)
				regInLayer[name] = h.Typeflag == tar.TypeReg
			}
		}
	}
}

func layerWrote(names []string, p string) bool {
	for _, n := range names {
		if n == p {
			return true
		}
	}
	return false
}

func parentJoin(dir, base string) string {
	if dir == "." {
		return base
	}
	return dir + "/" + base
}

// TestRandomCoverage checks that the generator produces every feature it
// promises, over a handful of seeds.
func TestRandomCoverage(t *testing.T) {
	seen := map[string]bool{}
	for seed := range 20 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		layers := Random(r, RandomOptions{Specials: true})
		if len(layers) != 4 {
			t.Fatalf("got %d layers, want the default 4", len(layers))
		}
		lower := map[string]bool{}
		for li, l := range layers {
			if len(l) == 0 {
				t.Fatalf("seed %d: layer %d is empty", seed, li)
			}
			inLayer := map[string]int{}
			for _, e := range l {
				h := e.Header
				name, _ := CleanPath(h.Name)
				base := name[strings.LastIndex(name, "/")+1:]
				switch {
				case base == OpaqueMarker:
					seen["opaque"] = true
				case strings.HasPrefix(base, WhiteoutPrefix):
					seen["whiteout"] = true
				case h.Typeflag == tar.TypeLink:
					seen["hardlink"] = true
				case h.Typeflag == tar.TypeSymlink:
					seen["symlink"] = true
				case h.Typeflag == tar.TypeFifo, h.Typeflag == tar.TypeChar:
					seen["special"] = true
				case h.Typeflag == tar.TypeReg && lower[name]:
					seen["overwrite"] = true
				}
				if strings.HasPrefix(h.Name, "./") {
					seen["dot-slash"] = true
				}
				if len(h.PAXRecords) > 0 {
					seen["xattr"] = true
				}
				if h.Mode&0o4000 != 0 {
					seen["setuid"] = true
				}
				if !strings.HasPrefix(base, WhiteoutPrefix) {
					inLayer[name]++
					if inLayer[name] == 2 {
						seen["duplicate"] = true
					}
				}
			}
			for n := range inLayer {
				lower[n] = true
			}
		}
	}
	for _, f := range []string{"opaque", "whiteout", "hardlink", "symlink", "special", "overwrite", "dot-slash", "xattr", "setuid", "duplicate"} {
		if !seen[f] {
			t.Errorf("20 random filesystems have no %s", f)
		}
	}
}

func TestRandomDeterministic(t *testing.T) {
	gen := func() []byte {
		var b bytes.Buffer
		for _, l := range Random(rand.New(rand.NewPCG(42, 42)), RandomOptions{Layers: 6, Ops: 40, Specials: true}) {
			b.Write(l.Tar())
		}
		return b.Bytes()
	}
	a, b := gen(), gen()
	if !bytes.Equal(a, b) {
		t.Error("two runs with the same seed differ")
	}
	if len(a) == 0 {
		t.Error("empty output")
	}
}

func TestRandomWasted(t *testing.T) {
	// Over several seeds, later layers must hide something, or the
	// generator is not exercising the overlay.
	var total int64
	for seed := range 10 {
		layers := Random(rand.New(rand.NewPCG(uint64(seed), 3)), RandomOptions{})
		raw := make([][]byte, len(layers))
		for i, l := range layers {
			raw[i] = l.Tar()
		}
		w, err := WastedBytes(raw...)
		if err != nil {
			t.Fatal(err)
		}
		total += w
	}
	if total == 0 {
		t.Error("no random filesystem wastes any byte")
	}
}

func newTestRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

// TestRandomCoverageOptions checks that the optional kinds appear: hard
// links to lower layers, chains of links, later whiteouts of a link's
// target and of its parent, an opaque parent of a target, a name written
// twice with a link to the first copy in between, global headers, long
// names in PAX and GNU form, and more xattrs.
func TestRandomCoverageOptions(t *testing.T) {
	seen := map[string]bool{}
	o := RandomOptions{HardLinks: true, GlobalHeaders: true, LongNames: true, Xattrs: true}
	for seed := range 30 {
		layers := Random(rand.New(rand.NewPCG(uint64(seed), 9)), o)
		written := map[string]int{} // path -> layer of the last regular file there
		linkTarget := map[string]int{}
		for li, l := range layers {
			regs := map[string]int{} // regular files of this layer, by entry count
			for ei, e := range l {
				h := e.Header
				if h.Typeflag == tar.TypeXGlobalHeader {
					seen["global header"] = true
					continue
				}
				name, _ := CleanPath(h.Name)
				base := name[strings.LastIndex(name, "/")+1:]
				dir := "."
				if i := strings.LastIndex(name, "/"); i >= 0 {
					dir = name[:i]
				}
				if len(name) > 100 {
					seen["long name"] = true
				}
				if h.Format == tar.FormatGNU && (len(name) > 100 || len(h.Linkname) > 100) {
					seen["GNU long name"] = true
				}
				if len(h.Linkname) > 100 && h.Typeflag == tar.TypeSymlink {
					seen["long symlink target"] = true
				}
				if _, ok := h.PAXRecords["SCHILY.xattr.security.capability"]; ok {
					seen["security.capability"] = true
				}
				if h.Typeflag == tar.TypeDir && len(h.PAXRecords) > 0 {
					seen["directory xattr"] = true
				}
				switch {
				case base == OpaqueMarker:
					for tg, tl := range linkTarget {
						if tl < li && strings.HasPrefix(tg, dir+"/") {
							seen["opaque parent of a link target"] = true
						}
					}
				case strings.HasPrefix(base, WhiteoutPrefix):
					victim := parentJoin(dir, strings.TrimPrefix(base, WhiteoutPrefix))
					for tg, tl := range linkTarget {
						if tl < li && tg == victim {
							seen["whiteout of a link target"] = true
						}
						if tl < li && strings.HasPrefix(tg, victim+"/") {
							seen["whiteout of a link target's parent"] = true
						}
					}
				case h.Typeflag == tar.TypeLink:
					target, _ := CleanPath(h.Linkname)
					if wl, ok := written[target]; ok && wl < li {
						seen["cross-layer link"] = true
					}
					if _, ok := linkTarget[target]; ok {
						seen["chain of links"] = true
					}
					if n, ok := regs[target]; ok {
						for _, later := range l[ei+1:] {
							if c, _ := CleanPath(later.Header.Name); c == target && later.Header.Typeflag == tar.TypeReg && n > 0 {
								seen["name twice with a link in between"] = true
							}
						}
					}
					linkTarget[target] = li
					linkTarget[name] = li
					written[name] = li
				case h.Typeflag == tar.TypeReg:
					regs[name]++
					written[name] = li
				}
			}
		}
	}
	for _, f := range []string{
		"cross-layer link", "chain of links", "whiteout of a link target", "whiteout of a link target's parent",
		"opaque parent of a link target", "name twice with a link in between", "global header", "long name",
		"GNU long name", "long symlink target", "security.capability", "directory xattr",
	} {
		if !seen[f] {
			t.Errorf("30 random filesystems have no %s", f)
		}
	}
}
