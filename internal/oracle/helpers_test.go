package oracle_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/oracle"
	ti "github.com/coldstart-dev/coldstart/internal/testimage"
)

// readLayers reads testimage layers through ReadLayer.
func readLayers(t testing.TB, layers ...ti.Layer) []*oracle.Layer {
	t.Helper()
	out := make([]*oracle.Layer, len(layers))
	for i, l := range layers {
		var b bytes.Buffer
		if err := l.WriteTar(&b); err != nil {
			t.Fatalf("writing layer %d: %v", i, err)
		}
		x, err := oracle.ReadLayer(&b)
		if err != nil {
			t.Fatalf("reading layer %d: %v", i, err)
		}
		out[i] = x
	}
	return out
}

func mustApply(t testing.TB, layers ...ti.Layer) *oracle.FS {
	t.Helper()
	fs, err := oracle.Apply(readLayers(t, layers...)...)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// contentsOf maps the digest of every file content in layers back to the
// content, for render.
func contentsOf(layers ...ti.Layer) map[oracle.Digest]string {
	m := map[oracle.Digest]string{}
	for _, l := range layers {
		for _, e := range l {
			m[sha256.Sum256(e.Content)] = string(e.Content)
		}
	}
	return m
}

// render lists a filesystem for table tests, one path per line:
// PATH TYPE MODE UID:GID, then "CONTENT" for a file, -> TARGET, dev M,m,
// the xattrs, mtime=? when unknown or mtime=TIME when not ti.Epoch, and
// ino=N for paths that share an inode (numbered from 1 among those).
func render(fs *oracle.FS, contents map[oracle.Digest]string) string {
	var b strings.Builder
	group := map[int]int{}
	for _, n := range fs.Nodes() {
		fmt.Fprintf(&b, "%s %s %04o %d:%d", n.Path, n.Type, n.Mode, n.UID, n.GID)
		switch n.Type {
		case oracle.TypeFile:
			if c, ok := contents[n.Digest]; ok {
				fmt.Fprintf(&b, " %q", c)
			} else {
				fmt.Fprintf(&b, " %d:%s", n.Size, n.Digest.Short())
			}
		case oracle.TypeSymlink:
			fmt.Fprintf(&b, " -> %s", n.Target)
		case oracle.TypeChar, oracle.TypeBlock:
			fmt.Fprintf(&b, " dev %d,%d", n.Devmajor, n.Devminor)
		}
		for _, k := range slices.Sorted(maps.Keys(n.Xattrs)) {
			fmt.Fprintf(&b, " %s=%s", k, n.Xattrs[k])
		}
		switch {
		case !n.ModTimeKnown:
			b.WriteString(" mtime=?")
		case !n.ModTime.Equal(ti.Epoch):
			fmt.Fprintf(&b, " mtime=%s", n.ModTime.Format(time.RFC3339Nano))
		}
		if n.Links > 1 {
			if group[n.Inode] == 0 {
				group[n.Inode] = len(group) + 1
			}
			fmt.Fprintf(&b, " ino=%d", group[n.Inode])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// lines joins expected lines, each followed by a newline.
func lines(ls ...string) string {
	if len(ls) == 0 {
		return ""
	}
	return strings.Join(ls, "\n") + "\n"
}

func noteKinds(fs *oracle.FS) []oracle.NoteKind {
	notes, _ := fs.Notes()
	var out []oracle.NoteKind
	for _, n := range notes {
		if !slices.Contains(out, n.Kind) {
			out = append(out, n.Kind)
		}
	}
	slices.Sort(out)
	return out
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

// randReader is a deterministic stream of pseudo-random bytes.
func randReader(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return rand.NewChaCha8(s)
}
