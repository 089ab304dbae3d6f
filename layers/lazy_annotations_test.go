package layers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"testing"

	"github.com/coldstart-dev/coldstart/layers"
	"github.com/google/go-cmp/cmp"
)

// TestLazyAnnotations: the annotations derived from a lazy blob are the ones
// the encoder put on its descriptor, for both lazy formats; a blob whose TOC
// frame is damaged is an error, not made-up annotations.
func TestLazyAnnotations(t *testing.T) {
	in := encBuildTar(t, encSampleFiles())
	for _, f := range []layers.Format{layers.FormatEStargz, layers.FormatZstdChunked, layers.FormatZstdChunkedContainerd} {
		t.Run(f.String(), func(t *testing.T) {
			blob, res := encode(t, in, encOpts(f))
			idx, err := layers.IndexReader(context.Background(), bytes.NewReader(blob))
			if err != nil {
				t.Fatal(err)
			}
			got, err := layers.LazyAnnotations(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))), idx)
			if err != nil {
				t.Fatal(err)
			}
			want := maps.Clone(res.Annotations)
			delete(want, "containerd.io/snapshot/remote/stargz.prefetch") // not in the blob
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("derived annotations differ from the encoder's (-encoder +derived):\n%s", d)
			}
			if f != layers.FormatZstdChunked {
				return
			}
			// Break the TOC frame: the footer still parses, the TOC does not.
			var tocOff, tocLen int
			if _, err := fmt.Sscanf(res.Annotations["io.containers.zstd-chunked.manifest-position"], "%d:%d:", &tocOff, &tocLen); err != nil {
				t.Fatal(err)
			}
			bad := bytes.Clone(blob)
			for i := range tocLen {
				bad[tocOff+i] ^= 0x55
			}
			if _, err := layers.LazyAnnotations(io.NewSectionReader(bytes.NewReader(bad), 0, int64(len(bad))), idx); !errors.Is(err, layers.ErrCorrupt) {
				t.Errorf("damaged TOC: got %v, want an error wrapping ErrCorrupt", err)
			}
		})
	}
}
