package layers_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/coldstart-dev/coldstart/layers"
)

// Encode a small layer as eStargz with its entrypoint prioritized. The DiffID
// and the TOC digest depend only on the input and the options.
func ExampleEncode() {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, f := range []struct{ name, body string }{
		{"etc/motd", "hello\n"},
		{"usr/bin/app", "#!/bin/sh\necho started\n"},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(f.body)),
			ModTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
		tw.Write([]byte(f.body))
	}
	tw.Close()

	src := io.NewSectionReader(bytes.NewReader(layer.Bytes()), 0, int64(layer.Len()))
	var blob bytes.Buffer
	res, err := layers.Encode(context.Background(), src, &blob, layers.EncodeOptions{
		Format:      layers.FormatEStargz,
		Prioritized: []string{"/usr/bin/app", "/usr/bin/missing"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.MediaType)
	fmt.Println("diff_id:", res.DiffID)
	fmt.Println("toc:", res.Annotations["containerd.io/snapshot/stargz/toc.digest"])
	fmt.Println("missing:", res.MissingPrioritized)
	fmt.Println("size matches:", res.Size == int64(blob.Len()))
	// Output:
	// application/vnd.oci.image.layer.v1.tar+gzip
	// diff_id: sha256:903cde5e2a1e1e4c52841d079a9a53341aaa92d10c399bdf85e1c3d24321e976
	// toc: sha256:aae72d7801739705c9e6aabeb419da4e2614b02c78cfe85be74f6461ca27e282
	// missing: [/usr/bin/missing]
	// size matches: true
}
