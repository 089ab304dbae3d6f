package layers_test

import (
	"archive/tar"
	"context"
	"io"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/layers"
)

// genTar streams a tar of n files of size bytes each, generated on the fly.
func genTar(n int, size int64) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		block := make([]byte, 1<<20)
		for i := range block {
			block[i] = byte(i * 7)
		}
		for i := 0; i < n; i++ {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big/" + string(rune('a'+i)), Mode: 0o644, Size: size}); err != nil {
				pw.CloseWithError(err)
				return
			}
			for left := size; left > 0; {
				k := min(left, int64(len(block)))
				if _, err := tw.Write(block[:k]); err != nil {
					pw.CloseWithError(err)
					return
				}
				left -= k
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr
}

// TestIndexMemoryBounded streams a 10 GiB layer through IndexReader and
// checks that the heap never grows with it.
func TestIndexMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams a 10 GiB synthetic layer (about 20 s); run without -short")
	}
	const files, size = 10, 1 << 30
	// The live heap after each collection is what the indexer retains;
	// other tests of the package may have left a baseline.
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > base && v-base > peak.Load() {
				peak.Store(v - base)
			}
		}
	}()
	idx, err := layers.IndexReader(context.Background(), genTar(files, size))
	close(done)
	if err != nil {
		t.Fatal(err)
	}
	if idx.UncompressedSize < files*size || len(idx.Entries) != files {
		t.Fatalf("indexed %d bytes, %d entries", idx.UncompressedSize, len(idx.Entries))
	}
	t.Logf("peak live heap above the baseline: %d MiB for a %d GiB layer", peak.Load()>>20, idx.UncompressedSize>>30)
	if peak.Load() > 64<<20 {
		t.Errorf("peak live heap %d MiB above the baseline: memory grows with the layer", peak.Load()>>20)
	}
}
