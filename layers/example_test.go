package layers_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
)

func ExampleIndexReader() {
	tar := testimage.Layer{
		testimage.Dir("etc", 0o755),
		testimage.File("etc/hostname", "coldstart\n"),
		testimage.Whiteout("etc/motd"),
	}.Tar()
	idx, err := layers.IndexReader(context.Background(), bytes.NewReader(tar))
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
	lower := testimage.Layer{testimage.File("a", "old"), testimage.File("b", "kept")}.Tar()
	upper := testimage.Layer{testimage.File("a", "new")}.Tar()
	var idxs []*layers.Index
	for _, t := range [][]byte{lower, upper} {
		idx, _ := layers.IndexReader(context.Background(), bytes.NewReader(t))
		idxs = append(idxs, idx)
	}
	ov, _ := layers.Merge(idxs...)
	fmt.Println(ov.Paths())
	fmt.Println("wasted in the lower layer:", ov.Waste(0))
	// Output:
	// [a b]
	// wasted in the lower layer: 3
}
