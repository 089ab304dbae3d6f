package corpus

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"io"
	"testing"
)

func TestDeterministicAndValid(t *testing.T) {
	var a, b bytes.Buffer
	if err := Write(&a, 7, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, 7, 1<<20); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(a.Bytes()) != sha256.Sum256(b.Bytes()) {
		t.Fatal("same seed gave different bytes")
	}
	tr := tar.NewReader(&a)
	var files int
	var content int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			files++
			n, _ := io.Copy(io.Discard, tr)
			content += n
		}
	}
	if files < 10 || content < 1<<20 {
		t.Fatalf("got %d files, %d bytes; want a realistic corpus of at least 1 MiB", files, content)
	}
}
