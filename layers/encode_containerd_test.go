package layers_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	digest "github.com/opencontainers/go-digest"

	"github.com/coldstart-dev/coldstart/layers"
)

// TestEncodeZstdChunkedContainerd: the containerd flavour of zstd:chunked,
// judged by estargz's own reader (what stargz-snapshotter mounts with).
// Given a tar it need not reorder, it keeps the stream byte for byte (the
// DiffID is the input's) and its TOC says not to prefetch; with prioritized
// files, the TOC's prefetch landmark ends the range that holds exactly them.
// The tar stream never has a landmark, and the descriptor carries the
// stargz TOC digest but not containers/storage's manifest checksum. With
// KeepOrder the stream is the input's whatever is prioritized, and the
// prefetch range holds copies of exactly the prioritized files.
func TestEncodeZstdChunkedContainerd(t *testing.T) {
	in := encBuildTar(t, encSampleFiles())
	asItIs, _ := encode(t, in, encOpts(layers.FormatZstdChunkedContainerd))
	for _, tc := range []struct {
		name        string
		prioritized []string
		keepOrder   bool
	}{
		{"as it is", nil, false},
		{"prioritized", []string{"/b/y.txt", "c/attr", "b/big.bin"}, false},
		{"all missing", []string{"not/there"}, false},
		{"keep order", []string{"/b/y.txt", "c/attr", "b/big.bin"}, true},
		{"keep order, all missing", []string{"not/there"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := encOpts(layers.FormatZstdChunkedContainerd)
			opt.Prioritized = tc.prioritized
			opt.KeepOrder = tc.keepOrder
			blob, res := encode(t, in, opt)
			found := len(tc.prioritized) > 0 && tc.prioritized[0] != "not/there"
			if tc.keepOrder && !found && !bytes.Equal(blob, asItIs) {
				t.Errorf("with nothing to prefetch, KeepOrder wrote other bytes than the layer as it is")
			}
			if res.Annotations[estargz.TOCJSONDigestAnnotation] != res.TOCDigest.String() {
				t.Errorf("annotation %s = %q, want the TOC digest %s", estargz.TOCJSONDigestAnnotation, res.Annotations[estargz.TOCJSONDigestAnnotation], res.TOCDigest)
			}
			for _, k := range layers.ZstdChunkedAnnotationKeys {
				if v, ok := res.Annotations[k]; ok {
					t.Errorf("annotation %s = %q: containers/storage refuses a layer with it and the TOC digest", k, v)
				}
			}
			stream := encDecompress(t, layers.FormatZstdChunkedContainerd, blob)
			for _, e := range encReadTar(t, stream) {
				if strings.Contains(e.Name, "landmark") {
					t.Errorf("the tar stream has %s", e.Name)
				}
			}
			if got := encSha(stream); got != res.DiffID {
				t.Errorf("DiffID %s, the stream hashes to %s", res.DiffID, got)
			}
			if (tc.prioritized == nil || tc.keepOrder) && !bytes.Equal(stream, in) {
				t.Errorf("DiffID %s, the input's is %s: the stream changed", res.DiffID, encSha(in))
			}

			r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))), estargz.WithDecompressors(new(zstdchunked.Decompressor)))
			if err != nil {
				t.Fatal(err)
			}
			tocDigest, err := digestParse(res.TOCDigest)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.VerifyTOC(tocDigest); err != nil {
				t.Fatalf("VerifyTOC: %v", err)
			}
			lm, prefetch := r.Lookup(estargz.PrefetchLandmark)
			if _, none := r.Lookup(estargz.NoPrefetchLandmark); none == prefetch {
				t.Fatalf("the TOC has a prefetch landmark: %v, a no-prefetch landmark: %v; want exactly one", prefetch, none)
			}
			if prefetch != found {
				t.Fatalf("prefetch landmark: %v, want %v", prefetch, found)
			}
			if !prefetch {
				return
			}
			// Every file reads back as stargz-snapshotter reads it: with
			// the entries that share its offset pre-read and verified.
			for name, body := range encFileBodies(encSampleFiles()) {
				fr, err := r.OpenFileWithPreReader(name, func(e *estargz.TOCEntry, cr io.Reader) error {
					d, err := digest.Parse(e.ChunkDigest)
					if err != nil {
						return fmt.Errorf("%s at %d: chunk digest %q: %w", e.Name, e.Offset, e.ChunkDigest, err)
					}
					v := d.Verifier()
					if _, err := io.Copy(v, cr); err != nil {
						return err
					}
					if !v.Verified() {
						return fmt.Errorf("%s at %d does not verify", e.Name, e.Offset)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(body))
				if _, err := fr.ReadAt(got, 0); err != nil && err != io.EOF {
					t.Errorf("reading %s: %v", name, err)
				} else if !bytes.Equal(got, body) {
					t.Errorf("%s: content differs", name)
				}
			}
			want := map[string]bool{}
			for _, n := range tc.prioritized {
				want[strings.TrimPrefix(n, "/")] = true
			}
			end := lm.Offset
			first := int64(-1)
			for name, body := range encFileBodies(encSampleFiles()) {
				if len(body) == 0 {
					continue
				}
				e, ok := r.Lookup(name)
				if !ok {
					t.Fatalf("%s is not in the TOC", name)
				}
				switch {
				case want[name] && e.Offset >= end:
					t.Errorf("prioritized %s at %d is after the prefetch range [0, %d)", name, e.Offset, end)
				case want[name]:
					// Its last chunk ends inside the range too.
					for off := int64(0); off < e.Size; {
						ce, ok := r.ChunkEntryForOffset(name, off)
						if !ok {
							t.Fatalf("%s: no chunk at %d", name, off)
						}
						if ce.NextOffset() > end {
							t.Errorf("prioritized %s: chunk at %d ends at %d, after the prefetch range [0, %d)", name, off, ce.NextOffset(), end)
						}
						off = ce.ChunkOffset + ce.ChunkSize
					}
				case e.Offset < end:
					t.Errorf("%s at %d is inside the prefetch range [0, %d)", name, e.Offset, end)
				case first < 0 || e.Offset < first:
					first = e.Offset
				}
			}
			switch {
			case tc.keepOrder && first <= end:
				t.Errorf("the prefetch range of copies ends at %d, a file of the stream starts at %d", end, first)
			case !tc.keepOrder && first != end:
				t.Errorf("the prefetch range ends at %d, the first other file starts at %d", end, first)
			}
		})
	}
}
