package layers_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/coldstart-dev/coldstart/layers"
)

// Encode a small layer as eStargz with its entrypoint prioritized. The bytes,
// and so the DiffID and the TOC digest (the TOC records compressed offsets),
// depend only on the input, the options and the compressor's version.
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
	// diff_id: sha256:c19122ae607317fe903e1ebff286c2abb784725fe1678df7aecaa4221840232e
	// toc: sha256:fa0fdd9c446db105621afc7e5b370d0b00cb614e5b5e19510dc776e451626f8e
	// missing: [/usr/bin/missing]
	// size matches: true
}

// Recompress a layer for stargz-snapshotter without changing its tar
// stream: the DiffID stays the input's, so a containerd node that holds
// the layer from another image reuses its snapshot, while the prioritized
// file's data, copied ahead of the stream, is what a node without it
// prefetches.
func ExampleEncode_keepOrder() {
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
		Format:      layers.FormatZstdChunkedContainerd,
		Prioritized: []string{"/usr/bin/app"},
		KeepOrder:   true,
	})
	if err != nil {
		log.Fatal(err)
	}
	input := sha256.Sum256(layer.Bytes())
	fmt.Println(res.MediaType)
	fmt.Println("diff_id is the input's:", res.DiffID.Hex == hex.EncodeToString(input[:]))
	fmt.Printf("opens with a skippable frame: % x\n", blob.Bytes()[:4])
	// Output:
	// application/vnd.oci.image.layer.v1.tar+zstd
	// diff_id is the input's: true
	// opens with a skippable frame: 50 2a 4d 18
}
