package layers_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/coldstart-dev/coldstart/layers"
)

func ExampleIndexReader() {
	// A layer tar: a directory, a file and a whiteout that deletes
	// etc/motd from the layers below.
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, f := range []struct{ name, body string }{
		{"etc/", ""},
		{"etc/hostname", "coldstart\n"},
		{"etc/.wh.motd", ""},
	} {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body)),
			ModTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		tw.WriteHeader(h)
		tw.Write([]byte(f.body))
	}
	tw.Close()

	idx, err := layers.IndexReader(context.Background(), &layer)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range idx.Entries {
		fmt.Println(e.Type, e.Path, e.Size)
	}
	fmt.Println("diff id:", idx.DiffID)
	// Output:
	// dir etc 0
	// file etc/hostname 10
	// whiteout etc/motd 0
	// diff id: sha256:1abffebefa374621a552527e12a687195bd34312e98f0dc672cc3eb12eb4cead
}

func ExampleMerge() {
	// Two layers: the upper one writes "a" again.
	tarOf := func(files ...string) *bytes.Buffer {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for i := 0; i < len(files); i += 2 {
			name, body := files[i], files[i+1]
			tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
			tw.Write([]byte(body))
		}
		tw.Close()
		return &b
	}
	lower := tarOf("a", "old", "b", "kept")
	upper := tarOf("a", "new")

	var idxs []*layers.Index
	for _, t := range []*bytes.Buffer{lower, upper} {
		idx, err := layers.IndexReader(context.Background(), t)
		if err != nil {
			fmt.Println(err)
			return
		}
		idxs = append(idxs, idx)
	}
	ov, _ := layers.Merge(idxs...)
	fmt.Println(ov.Paths())
	fmt.Println("wasted in the lower layer:", ov.Waste(0))
	// Output:
	// [a b]
	// wasted in the lower layer: 3
}
