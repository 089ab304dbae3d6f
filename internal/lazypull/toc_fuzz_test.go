package lazypull

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
)

// FuzzOpenTOC: parsing the footer and TOC of an untrusted lazy layer never
// panics, whatever the bytes.
func FuzzOpenTOC(f *testing.F) {
	tar := testimage.Layer{
		testimage.Dir("bin", 0o755),
		testimage.File("bin/app", "#!/bin/sh\necho ready\n", testimage.Mode(0o755)),
		testimage.File("etc/conf", "x=1\n"),
	}.Tar(testimage.WithParents())
	for _, fm := range []layers.Format{layers.FormatEStargz, layers.FormatZstdChunked} {
		var out bytes.Buffer
		if _, err := layers.Encode(context.Background(), io.NewSectionReader(bytes.NewReader(tar), 0, int64(len(tar))), &out,
			layers.EncodeOptions{Format: fm, Prioritized: []string{"bin/app"}}); err != nil {
			f.Fatal(err)
		}
		f.Add(out.Bytes())
	}
	f.Fuzz(func(t *testing.T, blob []byte) {
		toc, err := OpenTOC(bytes.NewReader(blob), int64(len(blob)))
		if err != nil || toc == nil {
			return
		}
	})
}
