// Package corpus generates deterministic layer tars that look like real
// container layers: a directory tree of text files (sources, configs),
// binary-like files (code with repeated structure) and incompressible files
// (already compressed data), with sizes spread like a Linux distribution's.
// Benchmarks use it so that they run anywhere without downloading images.
package corpus

import (
	"archive/tar"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

var words = strings.Fields(`the of and to in is for that with on as this be are by it from or at an not
int return if else func struct import package const var type error nil true false string byte range
config server client request response handler path file data value key name version license copyright
include define static void char unsigned long size_t malloc free printf sizeof buffer length offset`)

// epoch is the modification time of every entry.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Write writes a tar of about size bytes of file content to w, generated
// from seed. The same seed and size give the same bytes.
func Write(w io.Writer, seed uint64, size int64) error {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	tw := tar.NewWriter(w)
	dirs := []string{"usr", "usr/lib", "usr/share", "usr/bin", "etc"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	buf := make([]byte, 0, 1<<20)
	var written int64
	for i := 0; written < size; i++ {
		if i%40 == 0 {
			d := fmt.Sprintf("%s/pkg%03d", dirs[1+r.IntN(3)], i/40)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
			dirs = append(dirs, d)
		}
		// Log-normal sizes: median about 3 KiB, a long tail to a few MiB.
		n := int(math.Exp(r.NormFloat64()*1.8 + 8))
		n = min(n, 4<<20, int(size-written)+1)
		buf = fill(r, buf[:0], n)
		name := fmt.Sprintf("%s/file%05d", dirs[len(dirs)-1], i)
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(buf)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(buf); err != nil {
			return err
		}
		written += int64(len(buf))
	}
	return tw.Close()
}

// fill appends n bytes of one of three kinds of content to buf.
func fill(r *rand.Rand, buf []byte, n int) []byte {
	switch k := r.IntN(10); {
	case k < 5: // text
		for len(buf) < n {
			line := r.IntN(12) + 1
			for j := 0; j < line; j++ {
				buf = append(buf, words[r.IntN(len(words))]...)
				buf = append(buf, ' ')
			}
			buf = append(buf, '\n')
		}
	case k < 9: // binary with structure: short random runs and repeats
		for len(buf) < n {
			if len(buf) > 64 && r.IntN(3) > 0 {
				off := r.IntN(len(buf) - 32)
				buf = append(buf, buf[off:off+8+r.IntN(24)]...)
			} else {
				for j := 0; j < 16; j++ {
					buf = append(buf, byte(r.UintN(256)))
				}
			}
		}
	default: // incompressible
		for len(buf) < n {
			buf = append(buf, byte(r.UintN(256)))
		}
	}
	return buf[:n]
}
