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
		layers, state := random(r, RandomOptions{Specials: seed%2 == 0})
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
		checkValid(t, seed, layers)
	}
}

// checkValid checks the validity rules on the tar entries alone.
func checkValid(t *testing.T, seed int, layers []Layer) {
	t.Helper()
	exists := map[string]Type{".": TypeDir} // merged view, spec semantics
	for li, l := range layers {
		var names []string
		regInLayer := map[string]bool{}
		for ei, e := range l {
			h := e.Header
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
