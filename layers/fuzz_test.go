package layers_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
)

func seedTars(f *testing.F) [][]byte {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", "*"))
	var out [][]byte
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || strings.HasSuffix(p, ".md") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzIndex: indexing never panics, and what it accepts is clean.
func FuzzIndex(f *testing.F) {
	for _, b := range seedTars(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := layers.IndexReader(context.Background(), bytes.NewReader(data), layers.WithMaxSize(64<<20), layers.WithMaxEntries(10000))
		if err != nil {
			return
		}
		if idx.Size != int64(len(data)) {
			t.Fatalf("size %d, read %d bytes", idx.Size, len(data))
		}
		for _, e := range idx.Entries {
			if strings.HasPrefix(e.Path, "/") || e.Path == ".." || strings.HasPrefix(e.Path, "../") || strings.Contains(e.Path, "/../") {
				t.Fatalf("unsafe path %q accepted", e.Path)
			}
		}
		if _, err := layers.Merge(idx); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzMerge: two layers cut from the input; whenever both index and the
// naive applier accepts them, the overlay agrees with it.
func FuzzMerge(f *testing.F) {
	seeds := seedTars(f)
	for i := range seeds {
		for j := range seeds {
			if strings.HasPrefix(string(seeds[i][:min(5, len(seeds[i]))]), "\x1f\x8b") {
				continue
			}
			f.Add(append(append([]byte{}, seeds[i]...), seeds[j]...), uint32(len(seeds[i])))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint32) {
		if int(cut) > len(data) {
			return
		}
		a, b := data[:cut], data[cut:]
		ia, err := layers.IndexReader(context.Background(), bytes.NewReader(a))
		if err != nil || ia.Compression != layers.Uncompressed {
			return
		}
		ib, err := layers.IndexReader(context.Background(), bytes.NewReader(b))
		if err != nil || ib.Compression != layers.Uncompressed {
			return
		}
		ov, err := layers.Merge(ia, ib)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := testimage.Apply(a, b)
		if err != nil {
			return
		}
		for _, n := range ref.Nodes() {
			if n.Path == "." {
				continue
			}
			r, ok := ov.Lookup(n.Path)
			if !ok {
				// The reference creates missing parents implicitly.
				if ov.Entry(layers.Ref{Layer: n.Origin.Layer, Entry: n.Origin.Entry}).Path != n.Path {
					continue
				}
				t.Fatalf("%s visible in the reference, not in the overlay", n.Path)
			}
			if r.Layer != n.Origin.Layer || r.Entry != n.Origin.Entry {
				t.Fatalf("%s: overlay %v, reference %+v", n.Path, r, n.Origin)
			}
		}
	})
}
