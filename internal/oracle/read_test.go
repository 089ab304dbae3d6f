package oracle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/oracle"
	ti "github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const testdata = "../../testdata"

// pax makes Go's tar writer keep nanoseconds (it rounds times to seconds
// unless asked for PAX or GNU).
func pax(h *tar.Header) { h.Format = tar.FormatPAX }

func TestReadLayerEntries(t *testing.T) {
	l := ti.Layer{
		ti.Raw(tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "c0ffee"}}, nil),
		ti.Dir("./etc/", 0o755),
		ti.File("etc/passwd", "root\n", ti.Mode(0o4640), ti.Owner(0, 42), ti.Xattr("user.k", "v"), ti.MTime(time.Unix(1700000000, 5).UTC()), pax),
		ti.Symlink("bin", "usr/bin"),
		ti.Hardlink("etc/pw", "./etc/passwd"),
		ti.Char("dev/null", 1, 3),
		ti.Whiteout("var/old"),
		ti.Opaque("var/cache"),
		ti.File("var/.wh..wh.plnk", ""),
		ti.File(strings.Repeat("n", 130), "long"),
	}
	got, err := oracle.ReadLayer(bytes.NewReader(l.Tar()))
	if err != nil {
		t.Fatal(err)
	}
	want := []oracle.Entry{
		{Index: 0, Name: "pax_global_header", Path: "pax_global_header", Type: oracle.TypeGlobalHeader, Typeflag: 'g'},
		{Index: 1, Name: "./etc/", Path: "etc", Type: oracle.TypeDir, Typeflag: '5', Mode: 0o755, ModTime: ti.Epoch},
		{Index: 2, Name: "etc/passwd", Path: "etc/passwd", Type: oracle.TypeFile, Typeflag: '0', Mode: 0o4640, GID: 42,
			ModTime: time.Unix(1700000000, 5), Size: 5, Digest: sha256.Sum256([]byte("root\n")), Xattrs: map[string]string{"user.k": "v"}},
		{Index: 3, Name: "bin", Path: "bin", Type: oracle.TypeSymlink, Typeflag: '2', Mode: 0o777, ModTime: ti.Epoch, Linkname: "usr/bin"},
		{Index: 4, Name: "etc/pw", Path: "etc/pw", Type: oracle.TypeHardlink, Typeflag: '1', Mode: 0o644, ModTime: ti.Epoch, Linkname: "etc/passwd"},
		{Index: 5, Name: "dev/null", Path: "dev/null", Type: oracle.TypeChar, Typeflag: '3', Mode: 0o666, ModTime: ti.Epoch, Devmajor: 1, Devminor: 3},
		{Index: 6, Name: "var/.wh.old", Path: "var/old", Type: oracle.TypeWhiteout, Typeflag: '0', Mode: 0o644, ModTime: ti.Epoch, Digest: sha256.Sum256(nil)},
		{Index: 7, Name: "var/cache/.wh..wh..opq", Path: "var/cache", Type: oracle.TypeOpaque, Typeflag: '0', Mode: 0o644, ModTime: ti.Epoch, Digest: sha256.Sum256(nil)},
		{Index: 8, Name: "var/.wh..wh.plnk", Path: "var/.wh..wh.plnk", Type: oracle.TypeReserved, Typeflag: '0', Mode: 0o644, ModTime: ti.Epoch, Digest: sha256.Sum256(nil)},
		{Index: 9, Name: strings.Repeat("n", 130), Path: strings.Repeat("n", 130), Type: oracle.TypeFile, Typeflag: '0', Mode: 0o644, ModTime: ti.Epoch,
			Size: 4, Digest: sha256.Sum256([]byte("long"))},
	}
	// Markers carry no content; ReadLayer does not hash them.
	for i := range want {
		if want[i].Type.IsMarker() {
			want[i].Digest = oracle.Digest{}
		}
	}
	if diff := cmp.Diff(want, got.Entries, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if got.Bytes != int64(len(l.Tar())) {
		t.Errorf("Bytes = %d, want %d", got.Bytes, len(l.Tar()))
	}
}

func TestReadBlobSniffs(t *testing.T) {
	l := ti.Random(newRand(3), ti.RandomOptions{Layers: 1})[0]
	raw := l.Tar()
	want, err := oracle.ReadLayer(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []compression.Compression{compression.None, compression.GZip, compression.ZStd} {
		b, err := ti.Compress(raw, c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := oracle.ReadBlob(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-plain +got):\n%s", c, diff)
		}
	}
}

func TestReadBadLayers(t *testing.T) {
	for _, tc := range []struct {
		file, tar string
		err       string
	}{
		{file: "bad-dotdot.tar", err: `entry 1 (../etc/passwd): name "../etc/passwd" climbs out of the root`},
		{file: "bad-truncated.tar", err: "entry 8 (usr/lib/libfoo.so.1): reading content"},
		{file: "bad-corrupt.tar.gz", err: "checksum"},
		{file: "bad-truncated.tar.zst", err: "bad layer"},
		{file: "bad-notatar.bin", err: "not a tar"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(testdata, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = oracle.ReadBlob(bytes.NewReader(b))
			if err == nil || !errors.Is(err, oracle.ErrBadLayer) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an ErrBadLayer with %q", err, tc.err)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		layer ti.Layer
		err   string
	}{
		{"dotdot deep", ti.Layer{ti.File("a/../../x", "")}, `entry 0 (a/../../x): name "a/../../x" climbs out of the root`},
		{"absolute dotdot", ti.Layer{ti.File("/../x", "")}, `climbs out of the root`},
		{"hard link escape", ti.Layer{ti.File("f", ""), ti.Hardlink("h", "../f")}, `entry 1 (h): hard link target: name "../f" climbs out`},
		{"empty whiteout", ti.Layer{ti.File("d/.wh.", "")}, `entry 0 (d/.wh.): whiteout "d/.wh." names no file`},
		{"empty", ti.Layer{}, "not a tar"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := oracle.ReadLayer(bytes.NewReader(tc.layer.Tar()))
			if tc.name == "empty" {
				_, err = oracle.ReadLayer(bytes.NewReader(nil))
			}
			if err == nil || !errors.Is(err, oracle.ErrBadLayer) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an ErrBadLayer with %q", err, tc.err)
			}
		})
	}
	// bad-absolute.tar is accepted: containerd takes names from the root.
	b, err := os.ReadFile(filepath.Join(testdata, "bad-absolute.tar"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := oracle.ReadLayer(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range l.Entries {
		paths = append(paths, e.Path)
	}
	if diff := cmp.Diff([]string{"etc", "etc/passwd"}, paths); diff != "" {
		t.Errorf("bad-absolute.tar paths (-want +got):\n%s", diff)
	}
}

// bigLayer streams a tar holding one file of n pseudo-random bytes
// (without holding it) and then a small file.
func bigLayer(n int64) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Size: n, Mode: 0o644})
		if err == nil {
			_, err = io.CopyN(tw, randReader(1), n)
		}
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "small", Mode: 0o644})
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// TestReadLayerStreams checks that memory does not grow with content: a
// 64 MiB file is read with a few hundred KiB of allocations.
func TestReadLayerStreams(t *testing.T) {
	const size = 64 << 20
	r := bigLayer(size)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	l, err := oracle.ReadLayer(r)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 2 || l.Entries[0].Size != size {
		t.Fatalf("entries %+v", l.Entries)
	}
	// The pipe writer allocates too (its rand source, tar writer): the
	// bound is far below the content size all the same.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("reading a %d-byte layer allocated %d bytes", size, alloc)
	}
}

func TestReadImage(t *testing.T) {
	ls := ti.Random(newRand(5), ti.RandomOptions{Layers: 5})
	var openers []oracle.Opener
	var want []*oracle.Layer
	for _, l := range ls {
		gz, err := ti.Compress(l.Tar(), compression.GZip)
		if err != nil {
			t.Fatal(err)
		}
		openers = append(openers, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz)), nil })
		x, err := oracle.ReadLayer(bytes.NewReader(l.Tar()))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, x)
	}
	got, err := oracle.ReadImage(context.Background(), openers, 3)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	bad := append([]oracle.Opener(nil), openers...)
	bad[3] = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("not a tar at all")), nil }
	if _, err := oracle.ReadImage(context.Background(), bad, 2); err == nil || !strings.Contains(err.Error(), "reading layer 3") {
		t.Errorf("got %v, want an error about layer 3", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := []oracle.Opener{func() (io.ReadCloser, error) { return io.NopCloser(bigLayer(1 << 30)), nil }}
	if _, err := oracle.ReadImage(ctx, slow, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestReadV1Image(t *testing.T) {
	ls := ti.Random(newRand(8), ti.RandomOptions{Layers: 3})
	var v1ls []v1.Layer
	for _, l := range ls {
		x, err := l.Compressed(compression.ZStd)
		if err != nil {
			t.Fatal(err)
		}
		v1ls = append(v1ls, x)
	}
	img, err := ti.Image(v1.Config{}, v1ls...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := oracle.ReadV1Image(context.Background(), img, 2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(readLayers(t, ls...), got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
