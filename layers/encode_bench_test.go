package layers_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"

	"github.com/coldstart-dev/coldstart/layers"
)

// BenchmarkEncode compares Encode with estargz.Build (its defaults: stdlib
// gzip at BestCompression, GOMAXPROCS workers, a decompression pass for the
// DiffID) side by side in one run. Every case reports its output size and,
// when the reference ran first in the same run, two ratios against it:
// x-ref-speed (reference time / case time) and x-ref-size (case output /
// reference output).
//
// The input is a generated, deterministic layer of 68 MB (text-like and
// binary-like files of mixed sizes, 3.6x compressible like /usr), or the tar
// named by COLDSTART_BENCH_TAR. Real layers make stdlib gzip -9 work harder
// than the generated one does, so the speed ratios there are larger (see
// the defaults in encode.go). On a shared machine, x-ref-cpu is the steadier
// figure:
//
//	go test ./layers -run '^$' -bench Encode -benchtime 3x
//	COLDSTART_BENCH_TAR=/tmp/usr.tar go test ./layers -run '^$' -bench Encode -benchtime 2x
func BenchmarkEncode(b *testing.B) {
	in := encBenchInput(b)
	size := int64(len(in))
	src := func() *io.SectionReader { return io.NewSectionReader(bytes.NewReader(in), 0, size) }
	var refNs, refCPU float64
	var refSize int64

	// report adds the output size and, against the reference, the ratios of
	// wall time, of CPU time (steadier on a shared machine) and of size.
	report := func(b *testing.B, out int64, cpu float64) {
		b.SetBytes(size)
		b.ReportMetric(float64(out)/1e6, "out-MB")
		b.ReportMetric(cpu, "cpu-s/op")
		if refSize > 0 && b.N > 0 {
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(refNs/ns, "x-ref-speed")
			b.ReportMetric(refCPU/cpu, "x-ref-cpu")
			b.ReportMetric(float64(out)/float64(refSize), "x-ref-size")
		}
	}

	b.Run("ref=estargz.Build", func(b *testing.B) {
		var out int64
		cpu := encCPUTime()
		for b.Loop() {
			blob, err := estargz.Build(src())
			if err != nil {
				b.Fatal(err)
			}
			out, err = io.Copy(io.Discard, blob)
			if err != nil {
				b.Fatal(err)
			}
			blob.Close()
			_ = blob.DiffID()
		}
		refCPU = (encCPUTime() - cpu) / float64(b.N)
		refNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		refSize = out
		report(b, out, refCPU)
	})
	cases := []struct {
		name string
		opt  layers.EncodeOptions
	}{
		{"estargz/L5", layers.EncodeOptions{Format: layers.FormatEStargz, Level: 5}},
		{"estargz/L6", layers.EncodeOptions{Format: layers.FormatEStargz, Level: 6}},
		{"estargz/L7", layers.EncodeOptions{Format: layers.FormatEStargz, Level: 7}},
		{"estargz/L8", layers.EncodeOptions{Format: layers.FormatEStargz, Level: 8}},
		{"estargz/L9", layers.EncodeOptions{Format: layers.FormatEStargz, Level: 9}},
		{"estargz/default", layers.EncodeOptions{Format: layers.FormatEStargz}},
		{"zstdchunked/default", layers.EncodeOptions{Format: layers.FormatZstdChunked}},
		{"zstdchunked/L1", layers.EncodeOptions{Format: layers.FormatZstdChunked, Level: 1}},
		{"zstdchunked/L7", layers.EncodeOptions{Format: layers.FormatZstdChunked, Level: 7}},
		{"zstdchunked/L11", layers.EncodeOptions{Format: layers.FormatZstdChunked, Level: 11}},
		{"gzip/default", layers.EncodeOptions{Format: layers.FormatGzip}},
		{"zstd/default", layers.EncodeOptions{Format: layers.FormatZstd}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var out int64
			cpu := encCPUTime()
			for b.Loop() {
				res, err := layers.Encode(context.Background(), src(), io.Discard, c.opt)
				if err != nil {
					b.Fatal(err)
				}
				out = res.Size
			}
			report(b, out, (encCPUTime()-cpu)/float64(b.N))
		})
	}
}

// encCPUTime is the CPU time this process has used, in seconds.
func encCPUTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

var (
	encBenchOnce sync.Once
	encBenchTar  []byte
	encBenchErr  error
)

// encBenchInput returns the benchmark layer: COLDSTART_BENCH_TAR if set, else
// the generated corpus.
func encBenchInput(b *testing.B) []byte {
	encBenchOnce.Do(func() {
		if p := os.Getenv("COLDSTART_BENCH_TAR"); p != "" {
			encBenchTar, encBenchErr = os.ReadFile(p)
			return
		}
		encBenchTar = encCorpus(64 << 20)
	})
	if encBenchErr != nil {
		b.Fatal(encBenchErr)
	}
	return encBenchTar
}

// encCorpus generates a deterministic layer of about total bytes that looks
// like a distribution's /usr: many small text files (sources, docs,
// configs), shared-library-like binaries with structure and random parts, a
// few large files above the default chunk size, directories and symlinks.
func encCorpus(total int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var words []string
	for range 4000 {
		n := 2 + r.IntN(10)
		w := make([]byte, n)
		for i := range w {
			w[i] = "etaoinshrdlcumwfgypbvkjxqz_"[min(26, int(r.ExpFloat64()*6))]
		}
		words = append(words, string(w))
	}
	var ops [][]byte
	for range 512 {
		op := make([]byte, 2+r.IntN(10))
		for i := range op {
			op[i] = byte(r.Uint32())
		}
		ops = append(ops, op)
	}
	// Text repeats recent lines, often with an edit, as sources and docs do.
	var recent [][]byte
	text := func(n int) []byte {
		var b bytes.Buffer
		for b.Len() < n {
			if len(recent) > 0 && r.IntN(10) < 7 {
				l := recent[len(recent)-1-min(len(recent)-1, int(r.ExpFloat64()*20))]
				if r.IntN(2) == 0 {
					b.Write(l)
					continue
				}
				cut := r.IntN(len(l))
				b.Write(l[:cut])
				b.WriteString(words[min(len(words)-1, int(r.ExpFloat64()*300))])
				b.Write(l[cut:])
				continue
			}
			var line bytes.Buffer
			line.WriteString("\t\t\t\t"[:r.IntN(5)])
			for range 3 + r.IntN(10) {
				line.WriteString(words[min(len(words)-1, int(r.ExpFloat64()*300))])
				line.WriteByte(" (.,=;"[r.IntN(6)])
			}
			line.WriteByte('\n')
			recent = append(recent, line.Bytes())
			if len(recent) > 4096 {
				recent = recent[len(recent)-1024:]
			}
			b.Write(line.Bytes())
		}
		return b.Bytes()[:n]
	}
	// Binaries: code from a small vocabulary of instructions that repeats
	// recent sequences, some random data, strings, padding.
	binary := func(n int) []byte {
		b := make([]byte, 0, n)
		for len(b) < n {
			switch k := r.IntN(20); {
			case k < 15:
				if len(b) > 4096 && r.IntN(2) == 0 {
					start := len(b) - 64 - r.IntN(4000)
					b = append(b, b[start:start+16+r.IntN(48)]...)
					continue
				}
				for range 16 {
					b = append(b, ops[min(len(ops)-1, int(r.ExpFloat64()*60))]...)
				}
			case k < 16:
				for range 32 + r.IntN(256) {
					b = append(b, byte(r.Uint32()))
				}
			case k < 18:
				b = append(b, text(64+r.IntN(256))...)
				b = append(b, 0)
			default:
				b = append(b, make([]byte, 16+r.IntN(512))...)
			}
		}
		return b[:n]
	}

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(h *tar.Header, body []byte) {
		h.ModTime = mtime
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if _, err := tw.Write(body); err != nil {
			panic(err)
		}
	}
	for d := 0; out.Len() < total; d++ {
		dir := fmt.Sprintf("usr/share/pkg%03d/", d)
		write(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
		for f := range 10 + r.IntN(40) {
			name := fmt.Sprintf("%sfile%03d", dir, f)
			switch k := r.IntN(100); {
			case k < 70:
				write(&tar.Header{Name: name + ".txt", Typeflag: tar.TypeReg, Mode: 0o644}, text(int(r.ExpFloat64()*6000)))
			case k < 93:
				write(&tar.Header{Name: name + ".so", Typeflag: tar.TypeReg, Mode: 0o755}, binary(int(r.ExpFloat64()*120_000)))
			case k < 94:
				write(&tar.Header{Name: name + ".big", Typeflag: tar.TypeReg, Mode: 0o644}, binary(5<<20+r.IntN(3<<20)))
			default:
				write(&tar.Header{Name: name + ".lnk", Typeflag: tar.TypeSymlink, Linkname: "file000.txt", Mode: 0o777}, nil)
			}
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return out.Bytes()
}
