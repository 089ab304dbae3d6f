package zstdchunkedfmt

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"

	"github.com/coldstart-dev/coldstart/layers/lazy"
)

// entryKeys returns the keys of every TOC entry, in the order written.
func entryKeys(t *testing.T, tocJSON []byte) [][]string {
	t.Helper()
	var doc struct{ Entries []json.RawMessage }
	if err := json.Unmarshal(tocJSON, &doc); err != nil {
		t.Fatal(err)
	}
	var all [][]string
	for _, raw := range doc.Entries {
		dec := json.NewDecoder(bytes.NewReader(raw))
		var keys []string
		if _, err := dec.Token(); err != nil { // {
			t.Fatal(err)
		}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k.(string))
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, keys)
	}
	return all
}

// TestTOCFieldOrder: a zstd:chunked TOC entry has estargz's fields in
// estargz's order, access and change times right after the modification
// time (or where it would be) and the end offset right after the offset;
// fields left zero are left out, and no entries at all is null.
func TestTOCFieldOrder(t *testing.T) {
	full := &lazy.TOCEntry{
		TOCEntry: estargz.TOCEntry{
			Name: "a", Type: "reg", Size: 3, ModTime3339: "2024-01-01T00:00:00Z", LinkName: "l",
			Mode: 0o644, UID: 1, GID: 2, Uname: "u", Gname: "g", Offset: 10, InnerOffset: 5,
			DevMajor: 1, DevMinor: 3, Xattrs: map[string][]byte{"user.k": []byte("v")},
			Digest: "sha256:d", ChunkOffset: 1, ChunkSize: 2, ChunkDigest: "sha256:c",
		},
		AccessTime: "2024-01-02T00:00:00Z", ChangeTime: "2024-01-03T00:00:00Z", EndOffset: 20,
	}
	noMtime := &lazy.TOCEntry{
		TOCEntry:   estargz.TOCEntry{Name: "b", Type: "symlink", Size: 0, LinkName: "a"},
		AccessTime: "2024-01-02T00:00:00Z",
	}
	b, err := marshalTOC([]*lazy.TOCEntry{full, noMtime}, "sha256:ts")
	if err != nil {
		t.Fatal(err)
	}
	got := entryKeys(t, b)
	want := [][]string{
		{"name", "type", "size", "modtime", "accesstime", "changetime", "linkName", "mode", "uid", "gid",
			"userName", "groupName", "offset", "endOffset", "innerOffset", "devMajor", "devMinor", "xattrs",
			"digest", "chunkOffset", "chunkSize", "chunkDigest"},
		{"name", "type", "accesstime", "linkName"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("TOC entry keys (-want +got):\n%s", d)
	}
	if !strings.HasSuffix(string(b), `],"tarSplitDigest":"sha256:ts"}`) || !strings.HasPrefix(string(b), `{"version":1,"entries":[`) {
		t.Errorf("TOC document: %s", b)
	}
	// Every field comes through: the TOC decodes into the entries again.
	var back struct{ Entries []*lazy.TOCEntry }
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]*lazy.TOCEntry{full, noMtime}, back.Entries, cmp.AllowUnexported(estargz.TOCEntry{})); d != "" {
		t.Errorf("TOC round trip (-want +got):\n%s", d)
	}
	for _, c := range []struct {
		entries []*lazy.TOCEntry
		want    string
	}{{nil, `"entries":null`}, {[]*lazy.TOCEntry{}, `"entries":[]`}} {
		b, err := marshalTOC(c.entries, "")
		if err != nil || !strings.Contains(string(b), c.want) || strings.Contains(string(b), "tarSplitDigest") {
			t.Errorf("marshalTOC(%#v) = %s, %v; want %s and no tarSplitDigest", c.entries, b, err, c.want)
		}
	}
}

// streamEntry is one entry of a tar stream as the encoder shows it to a
// Closer: header blocks, data and padding.
type streamEntry struct {
	hdr, data, pad []byte
	name           string
}

// streamOf returns a tar stream and its entries; the stream ends with the
// two end-of-archive blocks.
func streamOf(t *testing.T) ([]streamEntry, []byte) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range []struct{ name, body string }{
		{"d/", ""}, {"d/a", "hello"}, {"d/empty", ""}, {"d/big", strings.Repeat("x", 1500)},
		{"d/" + strings.Repeat("long", 40), "pax name"},
	} {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body)), ModTime: mtime}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, f.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	raw := b.Bytes()
	sr := io.NewSectionReader(bytes.NewReader(raw), 0, int64(len(raw)))
	tr := tar.NewReader(sr)
	var entries []streamEntry
	var pos int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		dataOff, _ := sr.Seek(0, io.SeekCurrent)
		end := dataOff + h.Size + (512-h.Size%512)%512
		entries = append(entries, streamEntry{
			hdr: raw[pos:dataOff], data: raw[dataOff : dataOff+h.Size], pad: raw[dataOff+h.Size : end], name: h.Name,
		})
		pos = end
	}
	return entries, raw
}

// TestCloserTarSplit: the tar-split a Closer records, whichever way the
// stream is cut into writes, rebuilds the stream exactly from the files'
// data (as containers/storage rebuilds the tar), and the annotations
// point at the frames that hold the TOC and the tar-split, as Annotations
// reads them back from the blob.
func TestCloserTarSplit(t *testing.T) {
	entries, raw := streamOf(t)
	for _, piece := range []int{1, 7, 512, 1 << 20} {
		t.Run(fmt.Sprint(piece), func(t *testing.T) {
			c := Format{}.NewCloser(3)
			stream := lazy.NewStream()
			write := func(b []byte) {
				for len(b) > 0 {
					n := min(piece, len(b))
					stream.Write(b[:n])
					if _, err := c.Write(b[:n]); err != nil {
						t.Fatal(err)
					}
					b = b[n:]
				}
			}
			for _, e := range entries {
				write(e.hdr)
				if err := c.File(e.name, int64(len(e.data))); err != nil {
					t.Fatal(err)
				}
				write(e.data)
				write(e.pad)
			}
			write(raw[len(raw)-1024:]) // end of archive
			if stream.Size() != int64(len(raw)) {
				t.Fatalf("the test wrote %d bytes of a %d-byte stream", stream.Size(), len(raw))
			}
			const payload = 1000 // where the closer's bytes start in the blob
			var out bytes.Buffer
			toc, ann, err := c.Close(&out, &lazy.Tail{Payload: payload, Prioritized: 123, Stream: stream})
			if err != nil {
				t.Fatal(err)
			}
			if toc.Hex == "" {
				t.Error("no TOC digest")
			}
			if ann[PrefetchSizeAnnotation] != "123" || ann[estargz.StoreUncompressedSizeAnnotation] != fmt.Sprint(len(raw)) {
				t.Errorf("annotations %v", ann)
			}
			blob := append(make([]byte, payload), out.Bytes()...)

			var off, n, ulen int64
			if _, err := fmt.Sscanf(ann[TarSplitPositionAnnotation], "%d:%d:%d", &off, &n, &ulen); err != nil {
				t.Fatal(err)
			}
			if magic := blob[off-8 : off-4]; !bytes.Equal(magic, skippableFrameMagic) || int64(binary.LittleEndian.Uint32(blob[off-4:off])) != n {
				t.Fatalf("no skippable frame of %d bytes before the tar-split at %d", n, off)
			}
			ts, err := zstdDecode(blob[off : off+n])
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(ts)) != ulen {
				t.Errorf("tar-split of %d bytes, annotation says %d", len(ts), ulen)
			}
			files := map[string][]byte{}
			for _, e := range entries {
				files[e.name] = e.data
			}
			getter := getterFunc(func(name string) (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader(files[name])), nil
			})
			rebuilt, err := io.ReadAll(asm.NewOutputTarStream(getter, storage.NewJSONUnpacker(bytes.NewReader(ts))))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rebuilt, raw) {
				t.Errorf("the tar-split rebuilds %d bytes that differ from the %d-byte stream", len(rebuilt), len(raw))
			}

			// The footer, as estargz's reader parses it, and the annotations
			// read back from the blob.
			var d zstdchunked.Decompressor
			if _, tocOff, _, err := d.ParseFooter(blob[len(blob)-zstdchunked.FooterSize:]); err != nil || tocOff != payload+8 {
				t.Errorf("footer: TOC at %d, %v; want %d", tocOff, err, payload+8)
			}
			derived, err := Format{}.Annotations(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))), toc, stream.Size())
			if err != nil {
				t.Fatal(err)
			}
			want := maps.Clone(ann)
			delete(want, PrefetchSizeAnnotation)
			if d := cmp.Diff(want, derived); d != "" {
				t.Errorf("annotations read back (-written +read):\n%s", d)
			}
		})
	}
}

type getterFunc func(string) (io.ReadCloser, error)

func (f getterFunc) Get(name string) (io.ReadCloser, error) { return f(name) }

func zstdDecode(b []byte) ([]byte, error) {
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	return dec.DecodeAll(b, nil)
}

// TestCloserRejectsShortStream: a stream that ends inside a file's data
// is an error, not a tar-split that cannot rebuild it.
func TestCloserRejectsShortStream(t *testing.T) {
	c := Format{}.NewCloser(3)
	if err := c.File("f", 10); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("12345"))
	if _, _, err := c.Close(io.Discard, &lazy.Tail{Stream: lazy.NewStream()}); err == nil {
		t.Error("Close accepted a stream that ends 5 bytes into a 10-byte file")
	}
	c = Format{}.NewCloser(3)
	c.File("f", 10)
	if err := c.File("g", 0); err == nil {
		t.Error("File accepted a new file 10 bytes before the end of the previous one")
	}
}

// TestAnnotationsCorrupt: blobs too short for a footer or with a footer
// that points outside the blob are ErrCorrupt.
func TestAnnotationsCorrupt(t *testing.T) {
	footer := make([]byte, zstdchunked.FooterSize)
	binary.LittleEndian.PutUint64(footer[0:], 1<<40) // TOC offset far out
	binary.LittleEndian.PutUint64(footer[8:], 10)
	binary.LittleEndian.PutUint64(footer[24:], manifestTypeCRFS)
	copy(footer[32:], footerMagic)
	for name, blob := range map[string][]byte{
		"short":          []byte("zstd"),
		"toc outside":    append(make([]byte, 100), footer...),
		"not zstd:chunk": make([]byte, 200),
	} {
		_, err := Format{}.Annotations(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))), v1.Hash{}, 0)
		if !errors.Is(err, lazy.ErrCorrupt) {
			t.Errorf("%s: got %v, want an error wrapping lazy.ErrCorrupt", name, err)
		}
	}
}
