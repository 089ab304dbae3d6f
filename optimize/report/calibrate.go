package report

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/coldstart-dev/coldstart/internal/corpus"
	"github.com/coldstart-dev/coldstart/internal/lazypull"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// CalibrationCorpusBytes is the size of the generated layer whose
// decompression and hashing Calibrate times.
const CalibrationCorpusBytes = 16 << 20

// Sizes of what Calibrate generates; variables so that tests can make them
// small.
var (
	calibrationCorpusBytes = int64(CalibrationCorpusBytes)
	// calibrationBigFiles and calibrationBigFileBytes make the tar that
	// times unpacking per byte; calibrationSmallFiles the one that times it
	// per entry.
	calibrationBigFiles     = 4
	calibrationBigFileBytes = 4 << 20
	calibrationSmallFiles   = 2000
	// calibrationRuns: each figure is the median of this many runs.
	calibrationRuns = 3
)

// Calibrate measures Rates on this machine: it times gzip and zstd
// decompression and sha256 of a generated corpus (internal/corpus, the
// same code that builds benchmark layers), unpacking a tar of large files
// and one of small files (lazypull.Unpack, the code a measured start runs)
// to split the unpack cost into a per-byte and a per-entry part, and
// opening the TOC of an eStargz layer of many files. The registry's time
// per request is not a property of the machine, and the node-side costs
// (every rate but the decompression, sha256, unpack and TOC rates it
// measures) need a container runtime and a lazy snapshotter: they stay as
// WithRates (or DefaultRates) set them. Each
// figure is the median of three runs. It takes a few seconds and writes only below the
// temporary directory (WithTempDir), which it cleans up.
func Calibrate(ctx context.Context, opts ...Option) (Rates, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return Rates{}, err
	}
	// The node-side costs need a container runtime and a lazy snapshotter:
	// they stay as set (benchmarks/realstack measures them).
	r := o.rates
	r.Calibrated = true
	var tarBuf bytes.Buffer
	if err := corpus.Write(&tarBuf, 1, calibrationCorpusBytes); err != nil {
		return r, fmt.Errorf("calibrating: generating the corpus: %w", err)
	}
	raw := tarBuf.Bytes()

	var gz bytes.Buffer
	gw, _ := gzip.NewWriterLevel(&gz, 6)
	if _, err := gw.Write(raw); err != nil {
		return r, err
	}
	if err := gw.Close(); err != nil {
		return r, err
	}
	var zs bytes.Buffer
	zw, err := zstd.NewWriter(&zs, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return r, err
	}
	if _, err := zw.Write(raw); err != nil {
		return r, err
	}
	if err := zw.Close(); err != nil {
		return r, err
	}
	decompress := func(blob []byte) func() error {
		return func() error {
			rc, _, err := layers.Decompress(bytes.NewReader(blob))
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc)
			return err
		}
	}
	t, err := best(ctx, decompress(gz.Bytes()))
	if err != nil {
		return r, fmt.Errorf("calibrating gzip: %w", err)
	}
	r.GzipDecompress = float64(len(raw)) / t
	if t, err = best(ctx, decompress(zs.Bytes())); err != nil {
		return r, fmt.Errorf("calibrating zstd: %w", err)
	}
	r.ZstdDecompress = float64(len(raw)) / t
	if t, err = best(ctx, func() error { sha256.Sum256(raw); return nil }); err != nil {
		return r, err
	}
	r.Verify = float64(len(raw)) / t

	big, bigBytes, bigEntries := calibrationTar(calibrationBigFiles, calibrationBigFileBytes, raw)
	small, smallBytes, smallEntries := calibrationTar(calibrationSmallFiles, 64, raw)
	tBig, err := bestUnpack(ctx, o.tempDir, big)
	if err != nil {
		return r, fmt.Errorf("calibrating unpack: %w", err)
	}
	tSmall, err := bestUnpack(ctx, o.tempDir, small)
	if err != nil {
		return r, fmt.Errorf("calibrating unpack: %w", err)
	}
	o.logger.Debug("calibration unpack", "big", tBig, "bigBytes", bigBytes, "bigEntries", bigEntries, "small", tSmall, "smallBytes", smallBytes, "smallEntries", smallEntries)
	// tBig = bigBytes/Unpack + bigEntries*UnpackEntry, and the same for
	// small: two equations, two unknowns.
	det := float64(bigBytes)*float64(smallEntries) - float64(smallBytes)*float64(bigEntries)
	perByte := (tBig*float64(smallEntries) - tSmall*float64(bigEntries)) / det
	perEntry := (float64(bigBytes)*tSmall - float64(smallBytes)*tBig) / det
	perByte = max(perByte, tBig/float64(bigBytes)/4)
	r.Unpack = 1 / perByte
	r.UnpackEntry = max(perEntry, 0)

	var enc bytes.Buffer
	if _, err := layers.Encode(ctx, io.NewSectionReader(bytes.NewReader(small), 0, int64(len(small))), &enc, layers.EncodeOptions{}); err != nil {
		return r, fmt.Errorf("calibrating TOC: %w", err)
	}
	blob := enc.Bytes()
	if t, err = best(ctx, func() error {
		_, err := lazypull.OpenTOC(bytes.NewReader(blob), int64(len(blob)))
		return err
	}); err != nil {
		return r, fmt.Errorf("calibrating TOC: %w", err)
	}
	r.TOCEntry = t / float64(smallEntries)
	o.logger.Debug("calibrated", "gzip", r.GzipDecompress, "zstd", r.ZstdDecompress, "verify", r.Verify,
		"unpack", r.Unpack, "unpackEntry", r.UnpackEntry, "tocEntry", r.TOCEntry)
	if err := r.Validate(); err != nil {
		return r, fmt.Errorf("calibrating: implausible rates: %w", err)
	}
	return r, nil
}

// calibrationTar builds a tar of n files of size bytes each (content cut
// from src) in directories of 100, and returns it with its content bytes
// and entry count.
func calibrationTar(n, size int, src []byte) ([]byte, int64, int) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	entries := 0
	epoch := time.Unix(1700000000, 0)
	for i := range n {
		if i%100 == 0 {
			_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("d%03d/", i/100), Mode: 0o755, ModTime: epoch})
			entries++
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("d%03d/f%05d", i/100, i), Mode: 0o644, Size: int64(size), ModTime: epoch})
		off := (i * 7919) % len(src)
		for left := size; left > 0; {
			n := min(left, len(src)-off)
			_, _ = tw.Write(src[off : off+n])
			left -= n
			off = 0
		}
		entries++
	}
	_ = tw.Close()
	return b.Bytes(), int64(b.Len()), entries
}

// best runs fn calibrationRuns times and returns the median time, in
// seconds.
func best(ctx context.Context, fn func() error) (float64, error) {
	return bestTimed(ctx, func() (time.Duration, error) {
		start := time.Now()
		err := fn()
		return time.Since(start), err
	})
}

// bestTimed runs fn, which times itself, calibrationRuns times and returns
// the median time, in seconds: on a machine shared with other work the
// median says more about what a pull will meet than the best run does.
func bestTimed(ctx context.Context, fn func() (time.Duration, error)) (float64, error) {
	var ts []float64
	for range calibrationRuns {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		d, err := fn()
		if err != nil {
			return 0, err
		}
		ts = append(ts, d.Seconds())
	}
	slices.Sort(ts)
	return max(ts[len(ts)/2], 1e-9), nil
}

// bestUnpack times lazypull.Unpack of tarBytes into a fresh directory;
// creating and removing the directory is not timed.
func bestUnpack(ctx context.Context, tempDir string, tarBytes []byte) (float64, error) {
	return bestTimed(ctx, func() (time.Duration, error) {
		dir, err := os.MkdirTemp(tempDir, "coldstart-calibrate-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		root, err := os.OpenRoot(dir)
		if err != nil {
			return 0, err
		}
		defer root.Close()
		start := time.Now()
		_, err = lazypull.Unpack(ctx, root, bytes.NewReader(tarBytes))
		return time.Since(start), err
	})
}
