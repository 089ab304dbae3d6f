package oracle_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/oracle"
	"github.com/klauspost/compress/gzip"
)

// bigTar is a layer shaped like a distribution's: 30000 entries (a
// directory tree, files of log-distributed sizes averaging ~5 KiB plus a
// few large ones, symlinks and hard links), about 160 MB.
var bigTar = sync.OnceValue(func() []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	r := newRand(99)
	src := randReader(99)
	var files []string
	write := func(h *tar.Header, size int64) {
		h.Mode |= 0o644
		h.Size = size
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if size > 0 {
			if _, err := io.CopyN(tw, src, size); err != nil {
				panic(err)
			}
		}
	}
	for d := range 300 {
		dir := fmt.Sprintf("usr/share/pkg%03d/sub%d", d, d%7)
		write(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}, 0)
		for f := range 95 {
			name := fmt.Sprintf("%s/file%02d.dat", dir, f)
			switch {
			case f == 90 && len(files) > 0:
				write(&tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: files[r.IntN(len(files))]}, 0)
			case f > 90:
				write(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: "file00.dat", Mode: 0o777}, 0)
			default:
				size := int64(1) << r.IntN(14)
				if f == 0 && d%10 == 0 {
					size = 3 << 20
				}
				write(&tar.Header{Typeflag: tar.TypeReg, Name: name}, size+int64(r.IntN(int(size))))
				files = append(files, name)
			}
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
})

// cpuTime returns the CPU time this process has used. On a shared machine
// it says more than the wall time; benchmarks report it per op as
// "cpu-ms/op" (the GC's share included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime()-start).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// BenchmarkReadLayer measures reading (parsing and hashing) a large layer.
func BenchmarkReadLayer(b *testing.B) {
	raw := bigTar()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		if _, err := oracle.ReadLayer(bytes.NewReader(raw)); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchmarkApply measures applying the large layer three times over
// (every path replaced twice) and comparing the result with itself.
func BenchmarkApply(b *testing.B) {
	l, err := oracle.ReadLayer(bytes.NewReader(bigTar()))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(3*len(l.Entries)), "entries/op")
	start := cpuTime()
	defer reportCPU(b, start)
	for b.Loop() {
		fs, err := oracle.Apply(l, l, l)
		if err != nil {
			b.Fatal(err)
		}
		if !oracle.Compare(fs, fs).Equal() {
			b.Fatal("not equal to itself")
		}
	}
}

var bigGzip = sync.OnceValue(func() []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(bigTar()); err != nil {
		panic(err)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
})

// BenchmarkReadBlobGzip measures reading the large layer gzipped; the
// bytes per second are those of the uncompressed tar.
func BenchmarkReadBlobGzip(b *testing.B) {
	blob := bigGzip()
	b.SetBytes(int64(len(bigTar())))
	start := cpuTime()
	for b.Loop() {
		if _, err := oracle.ReadBlob(bytes.NewReader(blob)); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}
