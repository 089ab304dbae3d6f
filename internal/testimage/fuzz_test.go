package testimage

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzApply checks that Apply never panics and, when it accepts a layer,
// returns a well-formed tree: every node's parent is a directory in the
// tree, no path has a whiteout name, and WastedBytes agrees to succeed.
// Seeded from testdata/*.tar, applied alone and on top of base.tar.
func FuzzApply(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(fixtureDir, "*.tar"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	base, err := os.ReadFile(filepath.Join(fixtureDir, "base.tar"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, layer []byte) {
		for _, layers := range [][][]byte{{layer}, {base, layer}} {
			tree, err := Apply(layers...)
			if _, werr := WastedBytes(layers...); (err == nil) != (werr == nil) {
				t.Fatalf("Apply error %v, WastedBytes error %v", err, werr)
			}
			if err != nil {
				continue
			}
			for _, n := range tree.Nodes() {
				if n.Path == "." {
					continue
				}
				for _, elem := range strings.Split(n.Path, "/") {
					if strings.HasPrefix(elem, WhiteoutPrefix) {
						t.Fatalf("whiteout name in tree: %s", n.Path)
					}
				}
				if parent := path.Dir(n.Path); parent != "." {
					if p, ok := tree.Get(parent); !ok || p.Type != TypeDir {
						t.Fatalf("%s has no parent directory", n.Path)
					}
				}
			}
		}
	})
}

func BenchmarkApply(b *testing.B) {
	for _, l := range []struct {
		name string
		o    RandomOptions
	}{
		{"small", RandomOptions{}},
		{"large", RandomOptions{Layers: 8, Ops: 200}},
	} {
		layers := Random(newTestRand(1), l.o)
		raw := make([][]byte, len(layers))
		var size int64
		for i, x := range layers {
			raw[i] = x.Tar()
			size += int64(len(raw[i]))
		}
		b.Run(l.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if _, err := Apply(raw...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
