package demo_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/coldstart-dev/coldstart/internal/demo"
	"github.com/coldstart-dev/coldstart/internal/testimage"
)

func ExampleBuild() {
	// A stand-in binary keeps the example fast; without WithBinary, Build
	// compiles testdata/demoapp.
	dir, err := os.MkdirTemp("", "demo-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "demoapp")
	if err := os.WriteFile(bin, []byte("not really a binary"), 0o755); err != nil {
		panic(err)
	}

	img, err := demo.Build(context.Background(), demo.WithBinary(bin))
	if err != nil {
		panic(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		panic(err)
	}
	for i, d := range cf.RootFS.DiffIDs {
		fmt.Printf("%d %s %s\n", i, d.Hex[:12], cf.History[i].CreatedBy[:min(len(cf.History[i].CreatedBy), 40)])
	}
	// Output:
	// 0 7332540d3485 /bin/sh -c #(nop) ADD file:7332540d34850
	// 1 590739c8ae46 RUN /bin/sh -c apt-get update && apt-get
	// 2 d55e059a29ef RUN /bin/sh -c rm -rf /var/lib/apt/lists
	// 3 1698fbe382be COPY app /app # buildkit
	// 4 229b56c60c10 RUN /bin/sh -c chmod -R g+w /app # build
	// 5 1698fbe382be COPY app /app # buildkit
}

func ExampleFilesystem() {
	layers := demo.Filesystem([]byte("not really a binary"))
	raw := make([][]byte, len(layers))
	for i, l := range layers {
		raw[i] = l.Tar()
		fmt.Printf("layer %d: %d entries, %d bytes\n", i, len(l), len(raw[i]))
	}
	wasted, err := testimage.WastedBytes(raw...)
	if err != nil {
		panic(err)
	}
	fmt.Println("wasted:", wasted)
	// Output:
	// layer 0: 1599 entries, 30310400 bytes
	// layer 1: 58 entries, 780800 bytes
	// layer 2: 18 entries, 10240 bytes
	// layer 3: 48 entries, 13947392 bytes
	// layer 4: 48 entries, 13947392 bytes
	// layer 5: 48 entries, 13947392 bytes
	// wasted: 28451146
}
