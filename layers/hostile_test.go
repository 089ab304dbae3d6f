package layers_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/layers"
)

// rawTar writes headers and contents as given, without the checks the
// testimage builder makes.
func rawTar(t *testing.T, entries ...func(*tar.Writer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := e(tw); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func file(name, content string) func(*tar.Writer) error {
	return func(tw *tar.Writer) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content))}); err != nil {
			return err
		}
		_, err := tw.Write([]byte(content))
		return err
	}
}

func TestHostileEntries(t *testing.T) {
	ctx := context.Background()
	t.Run("NUL in a name", func(t *testing.T) {
		if _, err := layers.CleanPath("etc/pass\x00wd"); !errors.Is(err, layers.ErrUnsafePath) {
			t.Fatalf("err = %v, want ErrUnsafePath", err)
		}
		b := paxTar("path", "a\x00b", "x", "")
		if _, err := layers.IndexReader(ctx, bytes.NewReader(b)); err == nil {
			t.Fatal("a name with NUL was accepted")
		}
	})
	t.Run("invalid UTF-8 names are legal", func(t *testing.T) {
		name := "data/caf\xe9.txt"
		idx, err := layers.IndexReader(ctx, bytes.NewReader(rawTar(t, file(name, "bytes"))))
		if err != nil {
			t.Fatal(err)
		}
		if idx.Entries[0].Path != name {
			t.Fatalf("path %q, want %q", idx.Entries[0].Path, name)
		}
	})
	t.Run("hard link out of the root", func(t *testing.T) {
		b := rawTar(t, func(tw *tar.Writer) error {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: "x", Linkname: "../../etc/shadow"})
		})
		if _, err := layers.IndexReader(ctx, bytes.NewReader(b)); !errors.Is(err, layers.ErrUnsafePath) {
			t.Fatalf("err = %v, want ErrUnsafePath", err)
		}
	})
	t.Run("PAX size that lies", func(t *testing.T) {
		content := strings.Repeat("x", 100)
		if _, err := layers.IndexReader(ctx, bytes.NewReader(paxTar("comment", "honest", "a", content))); err != nil {
			t.Fatal(err)
		}
		// The PAX record claims far more content than the archive holds.
		_, err := layers.IndexReader(ctx, bytes.NewReader(paxTar("size", "1048576", "a", content)))
		if !errors.Is(err, layers.ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
	t.Run("decompression bomb", func(t *testing.T) {
		// 256 MiB of zeros in one file: about 250 KiB of gzip.
		var blob bytes.Buffer
		zw := gzip.NewWriter(&blob)
		tw := tar.NewWriter(zw)
		const size = 256 << 20
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "zeros", Mode: 0o644, Size: size}); err != nil {
			t.Fatal(err)
		}
		zeros := make([]byte, 1<<20)
		for range size / len(zeros) {
			tw.Write(zeros)
		}
		tw.Close()
		zw.Close()
		_, err := layers.IndexReader(ctx, bytes.NewReader(blob.Bytes()), layers.WithMaxSize(16<<20))
		if !errors.Is(err, layers.ErrLayerTooLarge) {
			t.Fatalf("a %d KiB blob inflating to 256 MiB: err = %v, want ErrLayerTooLarge", blob.Len()>>10, err)
		}
	})
	t.Run("entry flood", func(t *testing.T) {
		var es []func(*tar.Writer) error
		for i := range 50 {
			es = append(es, file(fmt.Sprintf("f%d", i), ""))
		}
		_, err := layers.IndexReader(ctx, bytes.NewReader(rawTar(t, es...)), layers.WithMaxEntries(10))
		if !errors.Is(err, layers.ErrTooManyEntries) {
			t.Fatalf("err = %v, want ErrTooManyEntries", err)
		}
	})
}

// paxTar writes, block by block, a PAX extended header with one record
// followed by a ustar file header and its content: the records are not
// checked the way tar.Writer checks them.
func paxTar(key, value, name, content string) []byte {
	rec := fmt.Sprintf(" %s=%s\n", key, value)
	for n := len(rec); ; n++ {
		if l := len(fmt.Sprint(n)) + len(rec); l == n {
			rec = fmt.Sprint(n) + rec
			break
		}
	}
	var out bytes.Buffer
	out.Write(ustarHeader("PaxHeaders/x", 'x', len(rec)))
	out.Write(pad([]byte(rec)))
	out.Write(ustarHeader(name, '0', len(content)))
	out.Write(pad([]byte(content)))
	out.Write(make([]byte, 1024))
	return out.Bytes()
}

func pad(b []byte) []byte {
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

func ustarHeader(name string, typ byte, size int) []byte {
	h := make([]byte, 512)
	copy(h, name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", size))
	copy(h[136:], "00000000000\x00")
	h[156] = typ
	copy(h[257:], "ustar\x0000")
	copy(h[148:], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	return h
}
