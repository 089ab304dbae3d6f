package estargzfmt

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/coldstart-dev/coldstart/layers/lazy"
)

// TestBlobOpens builds an eStargz blob from a Compressor and a Closer the
// way the encoder does, one gzip member per entry (a directory first, so
// that no file's data starts at offset 0), and reads it with
// estargz's own reader: the footer points at the TOC, the TOC verifies
// against the digest Close returns, every file reads back, the TOC is
// exactly an estargz.JTOC (no zstd:chunked field leaks into it) and the
// stream Close extends hashes to the blob's DiffID.
func TestBlobOpens(t *testing.T) {
	files := map[string]string{"etc/motd": "hello\n", "usr/bin/app": strings.Repeat("app ", 3000), "empty": ""}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, name := range []string{"etc/", "etc/motd", "usr/bin/app", "empty"} {
		h := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[name])),
			ModTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
		if strings.HasSuffix(name, "/") {
			h.Typeflag = tar.TypeDir
		}
		tw.WriteHeader(h)
		io.WriteString(tw, files[name])
	}
	tw.Flush() // no end of archive: the Closer ends it

	f := Format{}
	comp, c := f.NewCompressor(6), f.NewCloser(6)
	stream := lazy.NewStream()
	var blob bytes.Buffer
	var toc []*lazy.TOCEntry
	tr := tar.NewReader(bytes.NewReader(layer.Bytes()))
	raw := layer.Bytes()
	var pos int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrLen := int64(512)
		end := pos + hdrLen + h.Size + (512-h.Size%512)%512
		w, err := comp.Writer(&blob)
		if err != nil {
			t.Fatal(err)
		}
		off := int64(blob.Len())
		w.Write(raw[pos:end])
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		stream.Write(raw[pos:end])
		c.Write(raw[pos:end])
		if h.Typeflag == tar.TypeDir {
			toc = append(toc, &lazy.TOCEntry{TOCEntry: estargz.TOCEntry{Name: h.Name, Type: "dir", Mode: 0o755}})
			pos = end
			continue
		}
		sum := sha256.Sum256([]byte(files[h.Name]))
		e := &lazy.TOCEntry{
			TOCEntry: estargz.TOCEntry{Name: h.Name, Type: "reg", Size: h.Size, Mode: 0o644,
				Digest: fmt.Sprintf("sha256:%x", sum)},
			AccessTime: "2024-01-02T00:00:00Z", EndOffset: 99, // zstd:chunked only
		}
		if h.Size > 0 {
			e.Offset, e.InnerOffset, e.ChunkDigest = off, hdrLen, e.Digest
		}
		toc = append(toc, e)
		pos = end
	}
	payload := int64(blob.Len())
	tocDigest, ann, err := c.Close(&blob, &lazy.Tail{Payload: payload, TOC: toc, Stream: stream})
	if err != nil {
		t.Fatal(err)
	}

	sr := io.NewSectionReader(bytes.NewReader(blob.Bytes()), 0, int64(blob.Len()))
	r, err := estargz.Open(sr)
	if err != nil {
		t.Fatal(err)
	}
	dgst, err := digest.Parse(tocDigest.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.VerifyTOC(dgst); err != nil {
		t.Fatalf("VerifyTOC(%s): %v", dgst, err)
	}
	if tocOff, _, err := estargz.OpenFooter(sr); err != nil || tocOff != payload {
		t.Errorf("footer: TOC at %d, %v; want %d", tocOff, err, payload)
	}
	for name, body := range files {
		fr, err := r.OpenFile(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(io.NewSectionReader(fr, 0, int64(len(body))+1))
		if err != nil || string(got) != body {
			t.Errorf("%s reads %q, %v; want %q", name, got, err, body)
		}
	}

	// The whole blob is one gzip stream: its tar, the TOC entry included,
	// is the stream Close extended.
	zr, err := gzip.NewReader(bytes.NewReader(blob.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	tarBytes, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if diff := lazy.SHA256Hash(sha256Sum(tarBytes)); diff != stream.Digest() || int64(len(tarBytes)) != stream.Size() {
		t.Errorf("blob's tar: %s, %d bytes; stream: %s, %d bytes", diff, len(tarBytes), stream.Digest(), stream.Size())
	}
	want := map[string]string{
		estargz.TOCJSONDigestAnnotation:         tocDigest.String(),
		estargz.StoreUncompressedSizeAnnotation: fmt.Sprint(len(tarBytes)),
	}
	if fmt.Sprint(ann) != fmt.Sprint(want) {
		t.Errorf("annotations %v, want %v", ann, want)
	}

	// The TOC is the tar's last entry and nothing but an estargz.JTOC.
	var tocJSON []byte
	ttr := tar.NewReader(bytes.NewReader(tarBytes))
	for {
		h, err := ttr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tocJSON = nil
		if h.Name == estargz.TOCTarName {
			tocJSON, _ = io.ReadAll(ttr)
		}
	}
	if tocJSON == nil {
		t.Fatal("the TOC is not the tar's last entry")
	}
	var jtoc estargz.JTOC
	if err := json.Unmarshal(tocJSON, &jtoc); err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(&jtoc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, tocJSON) {
		t.Errorf("the TOC is not estargz.JTOC's JSON:\n got  %s\n JTOC %s", tocJSON, again)
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// TestAnnotations: eStargz annotations come from the TOC digest and the
// size alone; without a TOC digest there are none to give.
func TestAnnotations(t *testing.T) {
	toc := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	a, err := Format{}.Annotations(nil, toc, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if a[estargz.TOCJSONDigestAnnotation] != toc.String() || a[estargz.StoreUncompressedSizeAnnotation] != "4096" || len(a) != 2 {
		t.Errorf("annotations %v", a)
	}
	if _, err := (Format{}).Annotations(nil, v1.Hash{}, 4096); !errors.Is(err, lazy.ErrCorrupt) {
		t.Errorf("no TOC digest: got %v, want an error wrapping lazy.ErrCorrupt", err)
	}
}
