package oracle_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/oracle"
	ti "github.com/coldstart-dev/coldstart/internal/testimage"
)

// agree compares the oracle's filesystem with testimage.Apply's tree, a
// second implementation written independently with copy-on-link semantics
// and no mtimes, on what both model: paths, types, modes, owners, content,
// symlink targets, device numbers and xattrs.
//
// loose accepts the documented places where containerd (and so the
// oracle) does more than testimage: directories that only the oracle has
// and that it made implicitly (a whiteout in a missing directory makes
// it), and directory xattrs kept from a lower directory entry
// (containerd's setxattr adds, it never removes).
func agree(fs *oracle.FS, tree *ti.Tree, loose bool) error {
	want := map[string]ti.Node{}
	for _, n := range tree.Nodes() {
		if n.Path != "." {
			want[n.Path] = n
		}
	}
	for _, n := range fs.Nodes() {
		w, ok := want[n.Path]
		if !ok {
			if loose && n.Implicit {
				continue
			}
			return fmt.Errorf("/%s: only in the oracle (%s)", n.Path, n.Type)
		}
		delete(want, n.Path)
		if byte(w.Type) != typeflag(n.Type) {
			return fmt.Errorf("/%s: type %s in testimage, %s in the oracle", n.Path, w.Type, n.Type)
		}
		mode := w.Mode
		if n.Type == oracle.TypeSymlink {
			mode = 0o777 // Linux symlinks have no mode of their own
		}
		if mode != n.Mode || w.UID != n.UID || w.GID != n.GID {
			return fmt.Errorf("/%s: %04o %d:%d in testimage, %04o %d:%d in the oracle", n.Path, mode, w.UID, w.GID, n.Mode, n.UID, n.GID)
		}
		switch n.Type {
		case oracle.TypeFile:
			if w.Digest != n.Digest.String() || w.Size != n.Size {
				return fmt.Errorf("/%s: content %s (%d bytes) in testimage, %s (%d bytes) in the oracle", n.Path, w.Digest, w.Size, n.Digest, n.Size)
			}
		case oracle.TypeSymlink:
			if w.Linkname != n.Target {
				return fmt.Errorf("/%s: target %q in testimage, %q in the oracle", n.Path, w.Linkname, n.Target)
			}
		case oracle.TypeChar, oracle.TypeBlock:
			if w.Devmajor != n.Devmajor || w.Devminor != n.Devminor {
				return fmt.Errorf("/%s: device %d,%d in testimage, %d,%d in the oracle", n.Path, w.Devmajor, w.Devminor, n.Devmajor, n.Devminor)
			}
		}
		wx := w.Xattrs
		if loose && n.Type == oracle.TypeDir {
			// Only the keys testimage has.
			got := map[string]string{}
			for k := range wx {
				if v, ok := n.Xattrs[k]; ok {
					got[k] = v
				}
			}
			if !maps.Equal(wx, got) {
				return fmt.Errorf("/%s: xattrs %v in testimage, %v in the oracle", n.Path, wx, n.Xattrs)
			}
		} else if !maps.Equal(wx, n.Xattrs) {
			return fmt.Errorf("/%s: xattrs %v in testimage, %v in the oracle", n.Path, wx, n.Xattrs)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(want)) {
		return fmt.Errorf("/%s: only in testimage (%s)", p, want[p].Type)
	}
	return nil
}

func typeflag(t oracle.Type) byte {
	return map[oracle.Type]byte{
		oracle.TypeFile: tar.TypeReg, oracle.TypeDir: tar.TypeDir, oracle.TypeSymlink: tar.TypeSymlink,
		oracle.TypeChar: tar.TypeChar, oracle.TypeBlock: tar.TypeBlock, oracle.TypeFIFO: tar.TypeFifo,
	}[t]
}

// TestAgreesWithTestimage applies random images, with every kind the
// generator has, with both appliers: they must agree exactly, and the
// oracle must notice nothing the generator promises not to write.
func TestAgreesWithTestimage(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 60
	}
	var links, crossLinks int
	for seed := range uint64(seeds) {
		o := ti.RandomOptions{Layers: 2 + int(seed%5), Specials: seed%2 == 0}
		if seed%4 != 0 {
			o.HardLinks, o.GlobalHeaders, o.LongNames, o.Xattrs = true, true, true, true
		}
		layers := ti.Random(newRand(seed), o)
		tars := make([][]byte, len(layers))
		for i, l := range layers {
			tars[i] = l.Tar()
		}
		tree, err := ti.Apply(tars...)
		if err != nil {
			t.Fatalf("seed %d: testimage: %v", seed, err)
		}
		fs := mustApply(t, layers...)
		if err := agree(fs, tree, false); err != nil {
			t.Fatalf("seed %d (%+v): %v", seed, o, err)
		}
		notes, _ := fs.Notes()
		for _, n := range notes {
			switch n.Kind {
			case oracle.NoteCrossLayerLink:
				crossLinks++
			case oracle.NoteRootEntry, oracle.NoteSymlinkParent, oracle.NoteLinkMetadata, oracle.NoteXattrDropped, oracle.NoteGlobalHeader, oracle.NoteSameLayerWhiteout:
				t.Errorf("seed %d: %s", seed, n)
			}
		}
		for _, n := range fs.Nodes() {
			if n.Links > 1 {
				links++
			}
		}
	}
	if links == 0 || crossLinks == 0 {
		t.Errorf("%d paths share an inode, %d cross-layer links: the generator does not exercise hard links", links, crossLinks)
	}
}

// FuzzApply reads a layer and applies it alone and on top of base.tar. It
// checks that nothing panics, that a filesystem equals itself, that
// applying is deterministic, and, when testimage.Apply accepts the same
// layers and the oracle noted none of the places where containerd does
// more than a copy-on-link applier, that the two agree. Seeded from
// testdata/*.tar.
func FuzzApply(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(testdata, "*.tar"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for seed := range uint64(4) {
		f.Add(ti.Random(newRand(seed), ti.RandomOptions{Layers: 1, HardLinks: true, LongNames: true, GlobalHeaders: true, Xattrs: true})[0].Tar())
	}
	base, err := os.ReadFile(filepath.Join(testdata, "base.tar"))
	if err != nil {
		f.Fatal(err)
	}
	baseLayer, err := oracle.ReadLayer(bytes.NewReader(base))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !smallEntries(data) {
			return // a sparse or huge entry would only make the fuzzer slow
		}
		l, err := oracle.ReadLayer(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, stack := range [][]*oracle.Layer{{l}, {baseLayer, l}} {
			fs, err := oracle.Apply(stack...)
			if err != nil {
				continue
			}
			if c := oracle.Compare(fs, fs); !c.Equal() {
				t.Fatalf("a filesystem differs from itself:\n%s", c)
			}
			again, err := oracle.Apply(stack...)
			if err != nil || again.String() != fs.String() {
				t.Fatalf("applying twice differs: %v", err)
			}
			notes, _ := fs.Notes()
			divergent := false
			for _, n := range notes {
				switch n.Kind {
				case oracle.NoteLinkMetadata, oracle.NoteXattrDropped, oracle.NoteSymlinkParent, oracle.NoteGlobalHeader:
					divergent = true
				}
			}
			tars := [][]byte{data}
			if len(stack) == 2 {
				tars = [][]byte{base, data}
			}
			tree, err := ti.Apply(tars...)
			if err != nil || divergent {
				continue
			}
			if err := agree(fs, tree, true); err != nil {
				t.Fatalf("oracle and testimage disagree: %v\noracle:\n%s\ntestimage:\n%s", err, fs, tree)
			}
		}
	})
}

// smallEntries reports whether data is a tar whose entries all declare at
// most 1 MiB (so that no sparse entry expands to gigabytes of zeros).
func smallEntries(data []byte) bool {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return true // the readers will reject it
		}
		if h.Size > 1<<20 {
			return false
		}
	}
}
