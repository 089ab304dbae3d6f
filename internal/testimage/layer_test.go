package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/klauspost/compress/zstd"
)

type hdrSummary struct {
	Name     string
	Type     byte
	Mode     int64
	UID, GID int
	Link     string
	Size     int64
	MTime    time.Time
	PAX      map[string]string
	Content  string
}

func readHeaders(t *testing.T, b []byte) []hdrSummary {
	t.Helper()
	var out []hdrSummary
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, hdrSummary{h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, h.Size, h.ModTime.UTC(), h.PAXRecords, string(c)})
	}
}

func TestLayerTar(t *testing.T) {
	mt := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	l := Layer{
		Dir("etc", 0o755),
		File("etc/a", "content", Mode(0o640), Owner(1, 2), Xattr("user.x", "y"), MTime(mt)),
		Symlink("lib", "usr/lib"),
		Hardlink("etc/b", "etc/a"),
		Whiteout("etc/old"),
		Whiteout("./top"),
		Opaque("var/cache/"),
		Opaque("."),
		Char("dev/null", 1, 3),
		Block("dev/sda", 8, 0),
		FIFO("run/p"),
		Raw(tar.Header{Typeflag: tar.TypeReg, Name: "raw", Size: 2, Mode: 0o600}, []byte("hi")),
	}
	got := readHeaders(t, l.Tar())
	want := []hdrSummary{
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o755, MTime: Epoch},
		{Name: "etc/a", Type: tar.TypeReg, Mode: 0o640, UID: 1, GID: 2, Size: 7, MTime: mt, PAX: map[string]string{"SCHILY.xattr.user.x": "y"}, Content: "content"},
		{Name: "lib", Type: tar.TypeSymlink, Mode: 0o777, Link: "usr/lib", MTime: Epoch},
		{Name: "etc/b", Type: tar.TypeLink, Mode: 0o644, Link: "etc/a", MTime: Epoch},
		{Name: "etc/.wh.old", Type: tar.TypeReg, Mode: 0o644, MTime: Epoch},
		{Name: "./.wh.top", Type: tar.TypeReg, Mode: 0o644, MTime: Epoch},
		{Name: "var/cache/.wh..wh..opq", Type: tar.TypeReg, Mode: 0o644, MTime: Epoch},
		{Name: ".wh..wh..opq", Type: tar.TypeReg, Mode: 0o644, MTime: Epoch},
		{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, MTime: Epoch},
		{Name: "dev/sda", Type: tar.TypeBlock, Mode: 0o660, MTime: Epoch},
		{Name: "run/p", Type: tar.TypeFifo, Mode: 0o644, MTime: Epoch},
		{Name: "raw", Type: tar.TypeReg, Mode: 0o600, Size: 2, MTime: time.Unix(0, 0).UTC(), Content: "hi"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tar headers (-want +got):\n%s", diff)
	}
	if !bytes.Equal(l.Tar(), l.Tar()) {
		t.Error("Tar is not deterministic")
	}
}

func TestWithParents(t *testing.T) {
	l := Layer{
		File("./a/b/c", "x"),
		Dir("a/d", 0o700),
		File("a/d/e", "y"),
		Whiteout("f/g"),
		File("top", "z"),
	}
	var names []string
	for _, h := range readHeaders(t, l.Tar(WithParents())) {
		names = append(names, h.Name)
	}
	want := []string{"a/", "a/b/", "./a/b/c", "a/d/", "a/d/e", "f/", "f/.wh.g", "top"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	var plain []string
	for _, h := range readHeaders(t, l.Tar()) {
		plain = append(plain, h.Name)
	}
	if diff := cmp.Diff([]string{"./a/b/c", "a/d/", "a/d/e", "f/.wh.g", "top"}, plain); diff != "" {
		t.Errorf("without WithParents (-want +got):\n%s", diff)
	}
}

func TestTarPanicsOnBadRaw(t *testing.T) {
	l := Layer{Raw(tar.Header{Typeflag: tar.TypeReg, Name: "x", Size: 10}, []byte("short"))}
	if err := l.WriteTar(io.Discard); err == nil {
		t.Error("WriteTar of a short entry succeeded")
	}
	defer func() {
		if recover() == nil {
			t.Error("Tar did not panic")
		}
	}()
	l.Tar()
}

func TestCompressed(t *testing.T) {
	l := Layer{Dir("d", 0o755), File("d/f", strings.Repeat("compress me ", 1000))}
	raw := l.Tar()
	for _, tc := range []struct {
		c      compression.Compression
		mt     types.MediaType
		decomp func([]byte) ([]byte, error)
	}{
		{compression.None, types.OCIUncompressedLayer, func(b []byte) ([]byte, error) { return b, nil }},
		{compression.GZip, types.OCILayer, func(b []byte) ([]byte, error) {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(zr)
		}},
		{compression.ZStd, types.OCILayerZStd, func(b []byte) ([]byte, error) {
			zr, err := zstd.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			defer zr.Close()
			return io.ReadAll(zr)
		}},
	} {
		t.Run(string(tc.c), func(t *testing.T) {
			layer, err := l.Compressed(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			// ggcr's validate reads layers through gzip only.
			if err := validate.Layer(layer); tc.c == compression.GZip && err != nil {
				t.Errorf("validate.Layer: %v", err)
			}
			mt, _ := layer.MediaType()
			if mt != tc.mt {
				t.Errorf("media type %s, want %s", mt, tc.mt)
			}
			comp := readAll(t, layer.Compressed)
			if tc.c != compression.None && len(comp) >= len(raw) {
				t.Errorf("compressed %d bytes into %d", len(raw), len(comp))
			}
			back, err := tc.decomp(comp)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, raw) {
				t.Error("decompressed bytes differ from Tar()")
			}
			if !bytes.Equal(readAll(t, layer.Uncompressed), raw) {
				t.Error("Uncompressed differs from Tar()")
			}
			again, err := l.Compressed(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			d1, _ := layer.Digest()
			d2, _ := again.Digest()
			if d1 != d2 {
				t.Errorf("digests differ between runs: %s %s", d1, d2)
			}
			diffID, _ := layer.DiffID()
			if want, _, _ := v1.SHA256(bytes.NewReader(raw)); diffID != want {
				t.Errorf("DiffID %s, want %s", diffID, want)
			}
		})
	}

	docker, err := l.Compressed(compression.GZip, WithMediaType(types.DockerLayer), WithLevel(gzip.BestSpeed))
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := docker.MediaType(); mt != types.DockerLayer {
		t.Errorf("WithMediaType: got %s", mt)
	}
	if _, err := l.Compressed("brotli"); err == nil {
		t.Error("unknown compression accepted")
	}
	if _, err := LayerFromTar([]byte("not a tar"), compression.None); err != nil {
		t.Errorf("LayerFromTar: %v", err)
	}
}

func readAll(t *testing.T, open func() (io.ReadCloser, error)) []byte {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
