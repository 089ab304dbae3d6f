package layers_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/corpus"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

var (
	benchOnce   sync.Once
	benchLayers map[string][]byte
)

// benchBlobs returns the same layer tar compressed with gzip and zstd. The
// tar is 64 MiB of generated content, or the file COLDSTART_BENCH_TAR names.
func benchBlobs(b *testing.B) map[string][]byte {
	benchOnce.Do(func() {
		var tarBuf bytes.Buffer
		if p := os.Getenv("COLDSTART_BENCH_TAR"); p != "" {
			f, err := os.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			tarBuf.Write(f)
		} else if err := corpus.Write(&tarBuf, 1, 64<<20); err != nil {
			b.Fatal(err)
		}
		var gz, zs bytes.Buffer
		gw, _ := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
		gw.Write(tarBuf.Bytes())
		gw.Close()
		zw, _ := zstd.NewWriter(&zs)
		zw.Write(tarBuf.Bytes())
		zw.Close()
		benchLayers = map[string][]byte{"gzip": gz.Bytes(), "zstd": zs.Bytes(), "tar": tarBuf.Bytes()}
	})
	return benchLayers
}

// BenchmarkIndex compares layers.IndexReader with the floor it cannot beat:
// a loop that only decompresses the same blob with the same decompressor and
// hashes the output. Throughput (MB/s) is of the uncompressed tar, so the
// two sub-benchmarks of one compression compare directly.
func BenchmarkIndex(b *testing.B) {
	blobs := benchBlobs(b)
	ulen := int64(len(blobs["tar"]))
	for _, comp := range []string{"gzip", "zstd"} {
		blob := blobs[comp]
		b.Run(comp+"/floor", func(b *testing.B) {
			b.SetBytes(ulen)
			for b.Loop() {
				h := sha256.New()
				var r io.Reader
				if comp == "gzip" {
					zr, err := gzip.NewReader(bytes.NewReader(blob))
					if err != nil {
						b.Fatal(err)
					}
					r = zr
				} else {
					zr, err := zstd.NewReader(bytes.NewReader(blob), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
					if err != nil {
						b.Fatal(err)
					}
					defer zr.Close()
					r = zr
				}
				if _, err := io.Copy(h, r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(comp+"/index", func(b *testing.B) {
			b.SetBytes(ulen)
			for b.Loop() {
				if _, err := layers.IndexReader(context.Background(), bytes.NewReader(blob)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
