package layers_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	tstar "github.com/vbatts/tar-split/archive/tar"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"

	"github.com/coldstart-dev/coldstart/layers"
)

var encAllFormats = []layers.Format{layers.FormatEStargz, layers.FormatZstdChunked, layers.FormatGzip, layers.FormatZstd, layers.FormatZstdChunkedContainerd}

// encTestFile describes one entry of a test tar.
type encTestFile struct {
	name     string
	typ      byte
	body     []byte
	link     string
	mode     int64
	uid, gid int
	uname    string
	xattrs   map[string]string
	mtime    time.Time
	format   tar.Format
}

// encBuildTar writes files as a tar archive.
func encBuildTar(t testing.TB, files []encTestFile) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		h := &tar.Header{
			Name:     f.name,
			Typeflag: f.typ,
			Linkname: f.link,
			Mode:     f.mode,
			Uid:      f.uid,
			Gid:      f.gid,
			Uname:    f.uname,
			ModTime:  f.mtime,
			Format:   f.format,
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
		}
		if f.typ == tar.TypeReg {
			h.Size = int64(len(f.body))
		}
		if f.typ == tar.TypeChar {
			h.Devmajor, h.Devminor = 1, 3
		}
		for k, v := range f.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("writing test tar header %q: %v", f.name, err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatalf("writing test tar body %q: %v", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encPseudoRandom returns n deterministic bytes.
func encPseudoRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// encTextLike returns n deterministic bytes of compressible text.
func encTextLike(seed uint64, n int) []byte {
	words := strings.Fields("the quick brown fox jumps over lazy dog layer image container start cold fast zstd gzip chunk table of contents")
	r := rand.New(rand.NewPCG(seed, 7))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// encSampleFiles is a layer with every kind of entry Encode supports.
func encSampleFiles() []encTestFile {
	long := strings.Repeat("very-long-directory-name/", 6) + "file-with-a-long-name.txt"
	return []encTestFile{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "a/", typ: tar.TypeDir, mode: 0o755},
		{name: "a/x.txt", typ: tar.TypeReg, body: encTextLike(1, 3000)},
		{name: "a/empty", typ: tar.TypeReg},
		{name: "b/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000, uname: "user"},
		{name: "b/y.txt", typ: tar.TypeReg, body: []byte("hello\n"), uid: 1000, gid: 1000, uname: "user"},
		{name: "b/big.bin", typ: tar.TypeReg, body: append(encPseudoRandom(2, 150_000), encTextLike(3, 100_000)...)},
		{name: "b/link", typ: tar.TypeSymlink, link: "y.txt", mode: 0o777},
		{name: "b/hard", typ: tar.TypeLink, link: "a/x.txt"},
		{name: "c/", typ: tar.TypeDir, mode: 0o755},
		{name: "c/attr", typ: tar.TypeReg, body: []byte("xattr"), xattrs: map[string]string{"user.key": "value", "security.capability": "\x01\x00\x00\x02"}},
		{name: "c/nano", typ: tar.TypeReg, body: []byte("ns"), mtime: time.Date(2023, 1, 2, 3, 4, 5, 123456789, time.UTC), format: tar.FormatPAX},
		{name: "c/dev", typ: tar.TypeChar, mode: 0o666},
		{name: "c/fifo", typ: tar.TypeFifo},
		{name: "c/ünïcode ✓", typ: tar.TypeReg, body: []byte("utf-8")},
		{name: "c/" + long, typ: tar.TypeReg, body: encTextLike(4, 700)},
		{name: "c/exact", typ: tar.TypeReg, body: encTextLike(5, 64<<10)},
	}
}

// encOpts are the options most tests use: a small chunk size, so that the
// sample has files of several chunks.
func encOpts(f layers.Format) layers.EncodeOptions {
	return layers.EncodeOptions{Format: f, ChunkSize: 64 << 10}
}

func encode(t testing.TB, in []byte, opt layers.EncodeOptions) ([]byte, *layers.Encoded) {
	t.Helper()
	var out bytes.Buffer
	res, err := layers.Encode(context.Background(), io.NewSectionReader(bytes.NewReader(in), 0, int64(len(in))), &out, opt)
	if err != nil {
		t.Fatalf("Encode(%s): %v", opt.Format, err)
	}
	return out.Bytes(), res
}

// encDecompress returns the uncompressed stream of a blob.
func encDecompress(t testing.TB, f layers.Format, blob []byte) []byte {
	t.Helper()
	var r io.Reader
	switch f {
	case layers.FormatEStargz, layers.FormatGzip:
		zr, err := gzip.NewReader(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	default:
		zr, err := zstd.NewReader(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decompressing %s output: %v", f, err)
	}
	return b
}

// encTarEntry is what the round-trip compares of an entry.
type encTarEntry struct {
	Name, Linkname     string
	Type               byte
	Mode               int64
	UID, GID           int
	Uname              string
	ModTime            time.Time
	Devmajor, Devminor int64
	Xattrs             map[string]string
	Body               string
}

func encReadTar(t testing.TB, b []byte) []encTarEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []encTarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		e := encTarEntry{Name: h.Name, Linkname: h.Linkname, Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid,
			Uname: h.Uname, ModTime: h.ModTime.UTC(), Devmajor: h.Devmajor, Devminor: h.Devminor, Body: string(body)}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[x] = v
			}
		}
		out = append(out, e)
	}
}

func encSha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func encIsMeta(name string) bool {
	switch name {
	case estargz.TOCTarName, estargz.PrefetchLandmark, estargz.NoPrefetchLandmark:
		return true
	}
	return false
}

// TestEncodeRoundTrip: every format decompresses to the input's entries and
// reports the digests and sizes of what it wrote.
func TestEncodeRoundTrip(t *testing.T) {
	in := encBuildTar(t, encSampleFiles())
	want := encReadTar(t, in)
	for _, f := range encAllFormats {
		t.Run(f.String(), func(t *testing.T) {
			blob, res := encode(t, in, encOpts(f))
			u := encDecompress(t, f, blob)
			if got := encSha(blob); res.Digest != got || res.Size != int64(len(blob)) {
				t.Errorf("Digest, Size = %s, %d; the output has %s, %d", res.Digest, res.Size, got, len(blob))
			}
			if got := encSha(u); res.DiffID != got || res.UncompressedSize != int64(len(u)) {
				t.Errorf("DiffID, UncompressedSize = %s, %d; the output decompresses to %s, %d", res.DiffID, res.UncompressedSize, got, len(u))
			}
			if res.MediaType != f.MediaType() || res.Format != f {
				t.Errorf("MediaType, Format = %s, %s", res.MediaType, res.Format)
			}
			var got []encTarEntry
			for _, e := range encReadTar(t, u) {
				if !(f.Lazy() && encIsMeta(e.Name)) {
					got = append(got, e)
				}
			}
			if !f.Lazy() {
				if !bytes.Equal(u, in) {
					t.Fatalf("plain %s does not decompress to the input tar", f)
				}
				if res.Annotations != nil || res.TOCDigest != (v1.Hash{}) {
					t.Errorf("plain format has annotations %v or TOC digest %s", res.Annotations, res.TOCDigest)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("entries differ (-input +output):\n%s", diff)
			}
		})
	}
}

// encFileBodies maps the regular files of a test layer to their contents.
func encFileBodies(files []encTestFile) map[string][]byte {
	m := map[string][]byte{}
	for _, f := range files {
		if f.typ == tar.TypeReg {
			m[strings.TrimPrefix(f.name, "./")] = f.body
		}
	}
	return m
}

// encVerifyLazy opens a lazy blob the way stargz-snapshotter does, verifies
// the TOC digest and every chunk, and reads back every file.
func encVerifyLazy(t *testing.T, blob []byte, res *layers.Encoded, bodies map[string][]byte) *estargz.Reader {
	t.Helper()
	return encCheckLazy(t, blob, res, bodies, true)
}

// encCheckLazy is encVerifyLazy, optionally without the chunk verification
// (which estargz refuses when files share a gzip member).
func encCheckLazy(t *testing.T, blob []byte, res *layers.Encoded, bodies map[string][]byte, verify bool) *estargz.Reader {
	t.Helper()
	var opts []estargz.OpenOption
	if res.Format == layers.FormatZstdChunked || res.Format == layers.FormatZstdChunkedContainerd {
		opts = append(opts, estargz.WithDecompressors(new(zstdchunked.Decompressor)))
	}
	r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))), opts...)
	if err != nil {
		t.Fatalf("estargz.Open: %v", err)
	}
	tocDigest, err := digestParse(res.TOCDigest)
	if err != nil {
		t.Fatal(err)
	}
	if r.TOCDigest() != tocDigest {
		t.Fatalf("TOC digest %s, Encode reported %s", r.TOCDigest(), tocDigest)
	}
	var v estargz.TOCEntryVerifier
	if verify {
		if v, err = r.VerifyTOC(tocDigest); err != nil {
			t.Fatalf("VerifyTOC: %v", err)
		}
	}
	for name, body := range bodies {
		e, ok := r.Lookup(name)
		if !ok {
			t.Errorf("%q is not in the TOC", name)
			continue
		}
		if e.Size != int64(len(body)) {
			t.Errorf("%q: TOC size %d, want %d", name, e.Size, len(body))
		}
		if want := encSha(body).String(); e.Digest != want {
			t.Errorf("%q: TOC digest %s, want %s", name, e.Digest, want)
		}
		fr, err := r.OpenFile(name)
		if err != nil {
			t.Errorf("OpenFile(%q): %v", name, err)
			continue
		}
		got := make([]byte, len(body))
		if _, err := fr.ReadAt(got, 0); err != nil && err != io.EOF {
			t.Errorf("reading %q: %v", name, err)
		}
		if !bytes.Equal(got, body) {
			t.Errorf("%q: lazily read content differs", name)
		}
		for off := int64(0); off < int64(len(body)); {
			ce, ok := r.ChunkEntryForOffset(name, off)
			if !ok {
				t.Fatalf("%q: no chunk at offset %d", name, off)
			}
			if want := encSha(body[ce.ChunkOffset : ce.ChunkOffset+ce.ChunkSize]).String(); ce.ChunkDigest != want {
				t.Errorf("%q: chunk at %d has digest %s, want %s", name, off, ce.ChunkDigest, want)
			}
			off = ce.ChunkOffset + ce.ChunkSize
			if v == nil {
				continue
			}
			cv, err := v.Verifier(ce)
			if err != nil {
				t.Fatalf("%q: verifier of chunk at %d: %v", name, off, err)
			}
			cv.Write(body[ce.ChunkOffset : ce.ChunkOffset+ce.ChunkSize])
			if !cv.Verified() {
				t.Errorf("%q: chunk at %d does not verify", name, ce.ChunkOffset)
			}
		}
	}
	return r
}

func digestParse(h v1.Hash) (digest.Digest, error) {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return "", fmt.Errorf("bad TOC digest %q", h)
	}
	return digest.Digest(h.String()), nil
}

func TestEncodeEStargzOpens(t *testing.T) {
	files := encSampleFiles()
	in := encBuildTar(t, files)
	blob, res := encode(t, in, encOpts(layers.FormatEStargz))
	r := encVerifyLazy(t, blob, res, encFileBodies(files))

	if res.MediaType != types.OCILayer {
		t.Errorf("media type %s", res.MediaType)
	}
	wantAnn := map[string]string{
		estargz.TOCJSONDigestAnnotation:         res.TOCDigest.String(),
		estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(res.UncompressedSize, 10),
	}
	if diff := cmp.Diff(wantAnn, res.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	// Metadata as stargz-snapshotter sees it.
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f.name, "./"), "/")
		e, ok := r.Lookup(name)
		if !ok {
			t.Errorf("%q missing from the TOC", name)
			continue
		}
		if name == "" {
			continue
		}
		want := f.mode
		if want == 0 {
			want = 0o644
		}
		if f.typ != tar.TypeLink && (e.Mode != want || e.UID != f.uid || e.GID != f.gid) {
			t.Errorf("%q: mode/uid/gid %o/%d/%d, want %o/%d/%d", name, e.Mode, e.UID, e.GID, want, f.uid, f.gid)
		}
		if f.uname != "" && e.Uname != f.uname {
			t.Errorf("%q: user name %q, want %q", name, e.Uname, f.uname)
		}
		if f.typ == tar.TypeSymlink && e.LinkName != f.link {
			t.Errorf("%q: link %q, want %q", name, e.LinkName, f.link)
		}
		for k, v := range f.xattrs {
			if string(e.Xattrs[k]) != v {
				t.Errorf("%q: xattr %s = %q, want %q", name, k, e.Xattrs[k], v)
			}
		}
		mt := f.mtime
		if mt.IsZero() {
			mt = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
		}
		if !e.ModTime().Equal(mt) {
			t.Errorf("%q: mtime %v, want %v", name, e.ModTime(), mt)
		}
	}
	if e, ok := r.Lookup("b/hard"); !ok || e.Type != "reg" || e.NumLink != 2 {
		t.Errorf("hard link b/hard resolves to %+v", e)
	}
}

// TestEncodeEStargzMatchesBuild compares the TOC with the one estargz.Build
// writes for the same tar: same entries, types, sizes, file and chunk
// digests, chunking and metadata.
func TestEncodeEStargzMatchesBuild(t *testing.T) {
	files := encSampleFiles()
	in := encBuildTar(t, files)
	prio := []string{"c/attr", "b/hard"}
	opt := encOpts(layers.FormatEStargz)
	opt.Prioritized = prio
	blob, _ := encode(t, in, opt)
	ref, err := estargz.Build(io.NewSectionReader(bytes.NewReader(in), 0, int64(len(in))),
		estargz.WithChunkSize(opt.ChunkSize), estargz.WithPrioritizedFiles(prio))
	if err != nil {
		t.Fatal(err)
	}
	refBlob, err := io.ReadAll(ref)
	ref.Close()
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Name, Type, LinkName, Digest, ChunkDigest string
		Size, Mode, ChunkOffset, ChunkSize        int64
		UID, GID                                  int
		Uname                                     string
		Xattrs                                    map[string][]byte
	}
	toc := func(b []byte) []entry {
		r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b))))
		if err != nil {
			t.Fatal(err)
		}
		var out []entry
		var walk func(string, *estargz.TOCEntry)
		seen := map[string]bool{}
		walk = func(name string, e *estargz.TOCEntry) {
			if seen[name] {
				return
			}
			seen[name] = true
			ent := entry{Name: name, Type: e.Type, LinkName: e.LinkName, Digest: e.Digest, ChunkDigest: e.ChunkDigest,
				Size: e.Size, Mode: e.Mode, UID: e.UID, GID: e.GID, Uname: e.Uname, Xattrs: e.Xattrs}
			if len(e.Xattrs) == 0 {
				ent.Xattrs = nil
			}
			out = append(out, ent)
			if e.Type == "reg" {
				for off := e.ChunkSize; off < e.Size; {
					ce, _ := r.ChunkEntryForOffset(name, off)
					out = append(out, entry{Name: name, Type: "chunk", ChunkOffset: ce.ChunkOffset, ChunkSize: ce.ChunkSize, ChunkDigest: ce.ChunkDigest})
					off = ce.ChunkOffset + ce.ChunkSize
				}
			}
			e.ForeachChild(func(base string, c *estargz.TOCEntry) bool {
				walk(strings.TrimPrefix(name+"/"+base, "/"), c)
				return true
			})
		}
		root, _ := r.Lookup("")
		walk("", root)
		return out
	}
	got, want := toc(blob), toc(refBlob)
	less := func(a, b entry) bool {
		return a.Name+a.Type+fmt.Sprint(a.ChunkOffset) < b.Name+b.Type+fmt.Sprint(b.ChunkOffset)
	}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(less)); diff != "" {
		t.Errorf("TOC differs from estargz.Build's (-Build +Encode):\n%s", diff)
	}
	// Same order of entries in the stream, too.
	names := func(b []byte) []string {
		var n []string
		for _, e := range encReadTar(t, encDecompress(t, layers.FormatEStargz, b)) {
			n = append(n, e.Name)
		}
		return n
	}
	if diff := cmp.Diff(names(refBlob), names(blob)); diff != "" {
		t.Errorf("entry order differs from estargz.Build's (-Build +Encode):\n%s", diff)
	}
}

// encZstdChunkedTOC is the part of the TOC containers/storage reads.
type encZstdChunkedTOC struct {
	Version int `json:"version"`
	Entries []struct {
		Type        string     `json:"type"`
		Name        string     `json:"name"`
		Size        int64      `json:"size"`
		ModTime     *time.Time `json:"modtime"`
		AccessTime  *time.Time `json:"accesstime"`
		ChangeTime  *time.Time `json:"changetime"`
		Digest      string     `json:"digest"`
		Offset      int64      `json:"offset"`
		EndOffset   int64      `json:"endOffset"`
		ChunkSize   int64      `json:"chunkSize"`
		ChunkOffset int64      `json:"chunkOffset"`
		ChunkDigest string     `json:"chunkDigest"`
	} `json:"entries"`
	TarSplitDigest string `json:"tarSplitDigest"`
}

type encMapGetter map[string][]byte

func (m encMapGetter) Get(name string) (io.ReadCloser, error) {
	b, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("no file %q", name)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// encPosition parses an "a:b:c[:d]" annotation.
func encPosition(t *testing.T, s string, n int) []int64 {
	t.Helper()
	parts := strings.Split(s, ":")
	if len(parts) != n {
		t.Fatalf("position %q has %d fields, want %d", s, len(parts), n)
	}
	var out []int64
	for _, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestEncodeZstdChunked(t *testing.T) {
	files := encSampleFiles()
	in := encBuildTar(t, files)
	blob, res := encode(t, in, encOpts(layers.FormatZstdChunked))
	bodies := encFileBodies(files)
	encVerifyLazy(t, blob, res, bodies)
	if res.MediaType != types.OCILayerZStd {
		t.Errorf("media type %s", res.MediaType)
	}
	ann := res.Annotations
	if _, ok := ann[estargz.TOCJSONDigestAnnotation]; ok {
		t.Errorf("zstd:chunked carries %s, which containers/storage rejects next to the zstd:chunked checksum", estargz.TOCJSONDigestAnnotation)
	}
	if got := ann[estargz.StoreUncompressedSizeAnnotation]; got != strconv.FormatInt(res.UncompressedSize, 10) {
		t.Errorf("uncompressed size annotation %q", got)
	}

	// The manifest as containers/storage finds it: through the annotations.
	pos := encPosition(t, ann["io.github.containers.zstd-chunked.manifest-position"], 4)
	if pos[3] != 1 {
		t.Errorf("manifest type %d", pos[3])
	}
	ctoc := blob[pos[0] : pos[0]+pos[1]]
	if got := encSha(ctoc).String(); ann["io.github.containers.zstd-chunked.manifest-checksum"] != got ||
		ann[zstdchunked.ManifestChecksumAnnotation] != got {
		t.Errorf("manifest checksum annotations %v, want %s", ann, got)
	}
	if ann[zstdchunked.ManifestPositionAnnotation] != ann["io.github.containers.zstd-chunked.manifest-position"] {
		t.Errorf("manifest position annotations differ: %v", ann)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tocJSON, err := dec.DecodeAll(ctoc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(tocJSON)) != pos[2] || encSha(tocJSON) != res.TOCDigest {
		t.Errorf("TOC JSON: %d bytes, digest %s; want %d, %s", len(tocJSON), encSha(tocJSON), pos[2], res.TOCDigest)
	}
	var toc encZstdChunkedTOC
	if err := json.Unmarshal(tocJSON, &toc); err != nil {
		t.Fatalf("the TOC does not parse as containers/storage's: %v", err)
	}
	// containers/storage makes every TOC entry of a zstd:chunked layer a
	// file (it skips eStargz's metadata entries in eStargz layers only).
	for _, e := range toc.Entries {
		if encIsMeta(e.Name) {
			t.Errorf("the TOC has %q, which would be a file in every container", e.Name)
		}
	}

	// Each file's data from [offset, endOffset) alone, as a partial pull reads it.
	for _, e := range toc.Entries {
		if e.Type != "reg" || e.Size == 0 || encIsMeta(e.Name) {
			continue
		}
		zr, err := zstd.NewReader(bytes.NewReader(blob[e.Offset:e.EndOffset]))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.LimitReader(zr, e.Size))
		zr.Close()
		if err != nil {
			t.Fatalf("%q: reading [%d, %d): %v", e.Name, e.Offset, e.EndOffset, err)
		}
		if !bytes.Equal(got, bodies[e.Name]) || encSha(got).String() != e.Digest {
			t.Errorf("%q: [offset, endOffset) does not hold the file", e.Name)
		}
	}

	// The tar-split rebuilds the uncompressed stream byte for byte.
	ts := encPosition(t, ann["io.github.containers.zstd-chunked.tarsplit-position"], 3)
	cts := blob[ts[0] : ts[0]+ts[1]]
	if got := encSha(cts).String(); toc.TarSplitDigest != got {
		t.Errorf("tarSplitDigest %s, want %s", toc.TarSplitDigest, got)
	}
	tsJSON, err := dec.DecodeAll(cts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(tsJSON)) != ts[2] {
		t.Errorf("tar-split is %d bytes, annotation says %d", len(tsJSON), ts[2])
	}
	getter := encMapGetter{}
	for k, v := range bodies {
		getter[k] = v
	}
	var rebuilt bytes.Buffer
	if err := asm.WriteOutputTarStream(getter, storage.NewJSONUnpacker(bytes.NewReader(tsJSON)), &rebuilt); err != nil {
		t.Fatalf("rebuilding the tar from tar-split: %v", err)
	}
	u := encDecompress(t, layers.FormatZstdChunked, blob)
	if !bytes.Equal(rebuilt.Bytes(), u) {
		t.Errorf("tar-split rebuilds %d bytes that differ from the %d-byte stream", rebuilt.Len(), len(u))
	}
	// Every tar header in the tar-split has a TOC entry of the same name.
	tocNames := map[string]bool{}
	for _, e := range toc.Entries {
		if e.Type != "chunk" {
			tocNames[e.Name] = true
		}
	}
	n := 0
	err = asm.IterateHeaders(storage.NewJSONUnpacker(bytes.NewReader(tsJSON)), func(h *tstar.Header) error {
		n++
		if !tocNames[h.Name] {
			return fmt.Errorf("tar-split entry %q is not in the TOC", h.Name)
		}
		return nil
	})
	if err != nil || n != len(tocNames) {
		t.Errorf("tar-split headers: %d of %d TOC entries, %v", n, len(tocNames), err)
	}
}

// TestEncodePrioritized: prioritized entries lead, in order, after their
// parents and hard link targets, then, in eStargz only, the landmark.
func TestEncodePrioritized(t *testing.T) {
	in := encBuildTar(t, encSampleFiles())
	for _, f := range []layers.Format{layers.FormatEStargz, layers.FormatZstdChunked} {
		t.Run(f.String(), func(t *testing.T) {
			opt := encOpts(f)
			opt.Prioritized = []string{"/b/y.txt", "not/there", "./b/hard", "c/attr"}
			blob, res := encode(t, in, opt)
			var names []string
			for _, e := range encReadTar(t, encDecompress(t, f, blob)) {
				names = append(names, e.Name)
			}
			want := []string{"./", "b/", "b/y.txt", "a/", "a/x.txt", "b/hard", "c/", "c/attr"}
			if f == layers.FormatEStargz {
				want = append(want, estargz.PrefetchLandmark)
			}
			if diff := cmp.Diff(want, names[:len(want)]); diff != "" {
				t.Errorf("leading entries (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"not/there"}, res.MissingPrioritized); diff != "" {
				t.Errorf("missing (-want +got):\n%s", diff)
			}
			for _, n := range names[len(want):] {
				if n == estargz.NoPrefetchLandmark || n == estargz.PrefetchLandmark {
					t.Errorf("second landmark %q", n)
				}
			}
			// The rest keeps archive order.
			var rest []string
			for _, e := range encReadTar(t, in) {
				if !strings.Contains(strings.Join(want, "\n")+"\n", e.Name+"\n") {
					rest = append(rest, e.Name)
				}
			}
			tail := names[len(want):]
			if f == layers.FormatEStargz {
				tail = tail[:len(tail)-1] // the TOC
			}
			if diff := cmp.Diff(rest, tail); diff != "" {
				t.Errorf("remaining entries (-want +got):\n%s", diff)
			}
			encVerifyLazy(t, blob, res, encFileBodies(encSampleFiles()))

			wantFirst := estargz.NoPrefetchLandmark
			if f == layers.FormatZstdChunked {
				wantFirst = "./" // the input's first entry
			}
			opt.Prioritized = nil
			blob, _ = encode(t, in, opt)
			if first := encReadTar(t, encDecompress(t, f, blob))[0].Name; first != wantFirst {
				t.Errorf("without prioritized files the layer starts with %q, want %q", first, wantFirst)
			}
			opt.Prioritized = []string{"nothing/here"}
			blob, _ = encode(t, in, opt)
			if first := encReadTar(t, encDecompress(t, f, blob))[0].Name; first != wantFirst {
				t.Errorf("when no prioritized file is found the layer starts with %q, want %q", first, wantFirst)
			}
		})
	}
}

// encZstdTOC reads the TOC of a zstd:chunked blob through its annotations.
func encZstdTOC(t *testing.T, blob []byte, ann map[string]string) encZstdChunkedTOC {
	t.Helper()
	pos := encPosition(t, ann["io.github.containers.zstd-chunked.manifest-position"], 4)
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tocJSON, err := dec.DecodeAll(blob[pos[0]:pos[0]+pos[1]], nil)
	if err != nil {
		t.Fatal(err)
	}
	var toc encZstdChunkedTOC
	if err := json.Unmarshal(tocJSON, &toc); err != nil {
		t.Fatal(err)
	}
	return toc
}

// TestEncodeZstdChunkedPrefetch: in place of a landmark, zstd:chunked says
// where the prioritized files end in the annotation stargz-snapshotter
// takes as its prefetch size: every prioritized file's data lies before it,
// every other file's after it, and it is 0 when nothing is prioritized.
func TestEncodeZstdChunkedPrefetch(t *testing.T) {
	const key = "containerd.io/snapshot/remote/stargz.prefetch"
	in := encBuildTar(t, encSampleFiles())
	for _, tc := range []struct {
		prioritized []string
		zero        bool
	}{
		{prioritized: []string{"/b/y.txt", "c/attr", "b/big.bin"}},
		{prioritized: []string{"a/x.txt"}},
		{prioritized: nil, zero: true},
		{prioritized: []string{"not/there"}, zero: true},
	} {
		opt := encOpts(layers.FormatZstdChunked)
		opt.Prioritized = tc.prioritized
		blob, res := encode(t, in, opt)
		got, err := strconv.ParseInt(res.Annotations[key], 10, 64)
		if err != nil {
			t.Fatalf("%v: %s = %q: %v", tc.prioritized, key, res.Annotations[key], err)
		}
		if tc.zero {
			if got != 0 {
				t.Errorf("%v: %s = %d, want 0", tc.prioritized, key, got)
			}
			continue
		}
		want := map[string]bool{}
		for _, n := range tc.prioritized {
			want[strings.TrimPrefix(n, "/")] = true
		}
		firstOther := int64(-1)
		for _, e := range encZstdTOC(t, blob, res.Annotations).Entries {
			if (e.Type != "reg" && e.Type != "chunk") || e.Offset == 0 {
				continue
			}
			switch {
			case want[e.Name] && e.EndOffset > got:
				t.Errorf("%v: %s [%d, %d) ends after the prefetch range [0, %d)", tc.prioritized, e.Name, e.Offset, e.EndOffset, got)
			case !want[e.Name] && e.Offset < got:
				t.Errorf("%v: %s at %d is inside the prefetch range [0, %d)", tc.prioritized, e.Name, e.Offset, got)
			case !want[e.Name] && firstOther < 0:
				firstOther = e.Offset
			}
		}
		if firstOther != got {
			t.Errorf("%v: prefetch range ends at %d, the first other file starts at %d", tc.prioritized, got, firstOther)
		}
	}
}

// TestEncodeDeterministic: the bytes depend neither on GOMAXPROCS nor on
// the number of workers.
func TestEncodeDeterministic(t *testing.T) {
	files := encSampleFiles()
	for i := range 40 {
		files = append(files, encTestFile{name: fmt.Sprintf("d/f%03d", i), typ: tar.TypeReg, body: encTextLike(uint64(i), 100+i*997)})
	}
	files = append(files, encTestFile{name: "d/large", typ: tar.TypeReg, body: encPseudoRandom(9, 3<<20)})
	in := encBuildTar(t, files)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, f := range encAllFormats {
		t.Run(f.String(), func(t *testing.T) {
			var first []byte
			for _, procs := range []int{1, 2, 8} {
				for _, workers := range []int{0, 1, 3} {
					runtime.GOMAXPROCS(procs)
					opt := encOpts(f)
					opt.Workers = workers
					opt.Prioritized = []string{"d/f010", "a/x.txt"}
					blob, res := encode(t, in, opt)
					if first == nil {
						first = blob
						u := encDecompress(t, f, blob)
						if encSha(u) != res.DiffID || !f.Lazy() && !bytes.Equal(u, in) {
							t.Fatalf("the output does not decompress to what it should")
						}
					} else if !bytes.Equal(first, blob) {
						t.Fatalf("GOMAXPROCS=%d workers=%d: output differs", procs, workers)
					}
				}
			}
		})
	}
}

// encCountFiles counts the files under dir.
func encCountFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestEncodeCancel(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var files []encTestFile
	for i := range 64 {
		files = append(files, encTestFile{name: fmt.Sprintf("f%02d", i), typ: tar.TypeReg, body: encPseudoRandom(uint64(i), 256<<10)})
	}
	in := encBuildTar(t, files)
	src := io.NewSectionReader(bytes.NewReader(in), 0, int64(len(in)))
	for _, f := range encAllFormats {
		t.Run(f.String(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := layers.Encode(ctx, src, io.Discard, layers.EncodeOptions{Format: f}); !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled before: err = %v, want context.Canceled", err)
			}
			// Cancel from the first progress report, mid-encode.
			ctx, cancel = context.WithCancel(context.Background())
			defer cancel()
			var out bytes.Buffer
			_, err := layers.Encode(ctx, src, &out, layers.EncodeOptions{Format: f, Progress: func(int64) { cancel() }})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled during: err = %v, want context.Canceled", err)
			}
			if n := encCountFiles(t, tmp); n != 0 {
				t.Errorf("%d files left in TMPDIR", n)
			}
		})
	}
}

func TestEncodeProgress(t *testing.T) {
	in := encBuildTar(t, encSampleFiles())
	for _, f := range encAllFormats {
		var sum int64
		opt := encOpts(f)
		opt.Progress = func(n int64) {
			if n <= 0 {
				t.Errorf("%s: progress %d", f, n)
			}
			sum += n
		}
		encode(t, in, opt)
		if sum != int64(len(in)) {
			t.Errorf("%s: progress adds up to %d, want %d", f, sum, len(in))
		}
	}
}

func TestEncodeOptionsRejected(t *testing.T) {
	in := encBuildTar(t, encSampleFiles())
	src := io.NewSectionReader(bytes.NewReader(in), 0, int64(len(in)))
	for _, opt := range []layers.EncodeOptions{
		{Format: layers.Format(9)},
		{Format: layers.FormatGzip, Level: 10},
		{Format: layers.FormatEStargz, Level: -1},
		{Format: layers.FormatZstd, Level: 23},
		{ChunkSize: -1},
		{ChunkSize: layers.MaxChunkSize + 1},
		{Workers: -1},
	} {
		if _, err := layers.Encode(context.Background(), src, io.Discard, opt); err == nil {
			t.Errorf("Encode accepted %+v", opt)
		}
	}
}

func TestEncodeRejectsInput(t *testing.T) {
	in := encBuildTar(t, encSampleFiles())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(in)
	zw.Close()
	var zs bytes.Buffer
	ze, _ := zstd.NewWriter(&zs)
	ze.Write(in)
	ze.Close()
	// (A PAX global header is accepted: see TestEncodeGlobalHeaders.)
	for name, b := range map[string][]byte{"gzip": gz.Bytes(), "zstd": zs.Bytes(), "garbage": bytes.Repeat([]byte("not a tar"), 100)} {
		for _, f := range []layers.Format{layers.FormatEStargz, layers.FormatZstdChunked} {
			_, err := layers.Encode(context.Background(), io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b))), io.Discard, layers.EncodeOptions{Format: f})
			if !errors.Is(err, layers.ErrNotTar) {
				t.Errorf("%s input as %s: err = %v, want ErrNotTar", name, f, err)
			}
		}
	}
}

// TestEncodeDuplicates: the last of entries with the same cleaned name wins.
func TestEncodeDuplicates(t *testing.T) {
	in := encBuildTar(t, []encTestFile{
		{name: "a", typ: tar.TypeReg, body: []byte("old")},
		{name: "b", typ: tar.TypeReg, body: []byte("b")},
		{name: "./a", typ: tar.TypeReg, body: []byte("new")},
		{name: estargz.TOCTarName, typ: tar.TypeReg, body: []byte("{}")},
		{name: estargz.PrefetchLandmark, typ: tar.TypeReg, body: []byte{0xf}},
	})
	for _, f := range []layers.Format{layers.FormatEStargz, layers.FormatZstdChunked} {
		blob, res := encode(t, in, encOpts(f))
		var got []string
		for _, e := range encReadTar(t, encDecompress(t, f, blob)) {
			got = append(got, e.Name+"="+e.Body)
		}
		want := []string{"b=b", "./a=new"}
		if f == layers.FormatEStargz {
			got = got[:len(got)-1]
			want = append([]string{estargz.NoPrefetchLandmark + "=\x0f"}, want...)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", f, diff)
		}
		encVerifyLazy(t, blob, res, map[string][]byte{"a": []byte("new"), "b": []byte("b")})
	}
}

// TestEncodeGlobalHeaders: PAX global headers (git archive writes one
// first) are archive metadata: the lazy formats leave them out and keep
// every entry, wherever they are in the tar; a link to the first of two
// copies of a name keeps that copy's content.
func TestEncodeGlobalHeaders(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	global := func() {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header",
			PAXRecords: map[string]string{"comment": "0123456789abcdef0123456789abcdef01234567"}}); err != nil {
			t.Fatal(err)
		}
	}
	file := func(name, body string) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(body)), Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	global()
	file("a", "first copy")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: "link", Linkname: "a", Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	global()
	file("a", "second copy")
	file("b", "b")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []layers.Format{layers.FormatEStargz, layers.FormatZstdChunked} {
		blob, res := encode(t, b.Bytes(), encOpts(f))
		encVerifyLazy(t, blob, res, map[string][]byte{"a": []byte("second copy"), "link": []byte("first copy"), "b": []byte("b")})
	}
}

// encTOCJSON extracts the TOC JSON of an eStargz blob.
func encTOCJSON(t *testing.T, blob []byte) []byte {
	t.Helper()
	for _, e := range encReadTar(t, encDecompress(t, layers.FormatEStargz, blob)) {
		if e.Name == estargz.TOCTarName {
			return []byte(e.Body)
		}
	}
	t.Fatal("no TOC")
	return nil
}

func TestEncodeEmpty(t *testing.T) {
	for name, in := range map[string][]byte{"no bytes": nil, "empty tar": encBuildTar(t, nil)} {
		for _, f := range encAllFormats {
			blob, res := encode(t, in, encOpts(f))
			u := encDecompress(t, f, blob)
			if encSha(u) != res.DiffID {
				t.Errorf("%s as %s: DiffID mismatch", name, f)
			}
			if f.Lazy() {
				encVerifyLazy(t, blob, res, nil)
			}
		}
	}
}

func TestFormatNames(t *testing.T) {
	for _, f := range encAllFormats {
		p, err := layers.ParseFormat(strings.ToUpper(f.String()))
		if err != nil || p != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f.String(), p, err)
		}
		b, err := f.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back layers.Format
		if err := back.UnmarshalText(b); err != nil || back != f {
			t.Errorf("text round trip of %s: %v, %v", f, back, err)
		}
	}
	if p, err := layers.ParseFormat("zstdchunked"); err != nil || p != layers.FormatZstdChunked {
		t.Errorf("zstdchunked: %v, %v", p, err)
	}
	if _, err := layers.ParseFormat("lz4"); err == nil {
		t.Error("lz4 parsed")
	}
	if _, err := layers.Format(17).MarshalText(); err == nil {
		t.Error("Format(7) marshalled")
	}
	var zero layers.EncodeOptions
	if zero.Format != layers.FormatEStargz || !layers.FormatEStargz.Lazy() || layers.FormatGzip.Lazy() {
		t.Error("the zero format is not eStargz")
	}
}

// TestEncodePlainLevels: plain gzip of several blocks round-trips at every
// level, and zstd at a few.
func TestEncodePlainLevels(t *testing.T) {
	in := append(encTextLike(11, 1<<20), encPseudoRandom(12, 1<<20+12345)...)
	in = append(in, encTextLike(13, 300_000)...)
	for level := 1; level <= 9; level++ {
		blob, res := encode(t, in, layers.EncodeOptions{Format: layers.FormatGzip, Level: level})
		if u := encDecompress(t, layers.FormatGzip, blob); !bytes.Equal(u, in) || res.DiffID != encSha(in) {
			t.Errorf("gzip level %d does not round-trip", level)
		}
	}
	for _, level := range []int{1, 3, 9, 19} {
		blob, res := encode(t, in, layers.EncodeOptions{Format: layers.FormatZstd, Level: level})
		if u := encDecompress(t, layers.FormatZstd, blob); !bytes.Equal(u, in) || res.DiffID != encSha(in) {
			t.Errorf("zstd level %d does not round-trip", level)
		}
	}
}

// TestEncodeZstdLargeDeterministic: plain zstd splits inputs above its job
// size (16 MiB at level 1, 32 MiB above) across goroutines; the bytes must
// not depend on how many.
func TestEncodeZstdLargeDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("40 MB input")
	}
	in := append(encTextLike(21, 20<<20), encPseudoRandom(22, 20<<20)...)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var first []byte
	for _, c := range []struct{ procs, workers int }{{1, 1}, {2, 0}, {8, 16}} {
		runtime.GOMAXPROCS(c.procs)
		blob, _ := encode(t, in, layers.EncodeOptions{Format: layers.FormatZstd, Level: 1, Workers: c.workers})
		if first == nil {
			first = blob
			if !bytes.Equal(encDecompress(t, layers.FormatZstd, blob), in) {
				t.Fatal("zstd does not round-trip")
			}
		} else if !bytes.Equal(first, blob) {
			t.Fatalf("GOMAXPROCS=%d workers=%d: output differs", c.procs, c.workers)
		}
	}
}

type encFailingWriter struct{ after int }

var errEncWrite = errors.New("disk full")

func (w *encFailingWriter) Write(p []byte) (int, error) {
	if w.after < len(p) {
		n := w.after
		w.after = 0
		return n, errEncWrite
	}
	w.after -= len(p)
	return len(p), nil
}

func TestEncodeWriteError(t *testing.T) {
	in := encBuildTar(t, encSampleFiles())
	src := io.NewSectionReader(bytes.NewReader(in), 0, int64(len(in)))
	for _, f := range encAllFormats {
		for _, after := range []int{0, 1000, 100_000} {
			_, err := layers.Encode(context.Background(), src, &encFailingWriter{after: after}, encOpts(f))
			if !errors.Is(err, errEncWrite) {
				t.Errorf("%s, failing after %d bytes: err = %v", f, after, err)
			}
		}
	}
}

// TestEncodeStartupLevel: the start-up files' chunks (prioritized, or
// named OnDemand) are compressed at StartupLevel, the rest at Level; the
// tar stream and every file stay the same.
func TestEncodeStartupLevel(t *testing.T) {
	files := []encTestFile{
		{name: "p/", typ: tar.TypeDir, mode: 0o755},
		{name: "p/prio.txt", typ: tar.TypeReg, body: encTextLike(11, 300_000)},
		{name: "s/", typ: tar.TypeDir, mode: 0o755},
		{name: "s/ondemand.txt", typ: tar.TypeReg, body: encTextLike(12, 300_000)},
		{name: "r/", typ: tar.TypeDir, mode: 0o755},
		{name: "r/rest.txt", typ: tar.TypeReg, body: encTextLike(13, 300_000)},
	}
	in := encBuildTar(t, files)
	cases := []struct {
		f            layers.Format
		weak, strong int
		keepOrder    bool
	}{
		{layers.FormatEStargz, 1, 9, false},
		{layers.FormatZstdChunked, 1, 19, false},
		{layers.FormatZstdChunkedContainerd, 1, 19, false},
		{layers.FormatZstdChunkedContainerd, 1, 19, true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/keepOrder=%v", c.f, c.keepOrder), func(t *testing.T) {
			opt := encOpts(c.f)
			opt.Level, opt.KeepOrder = c.weak, c.keepOrder
			plain, plainRes := encode(t, in, opt)
			opt.StartupLevel = c.strong
			same, _ := encode(t, in, opt)
			if !bytes.Equal(plain, same) {
				t.Errorf("without start-up files, StartupLevel changed the blob")
			}
			opt.StartupLevel = 0
			opt.Prioritized = []string{"p/prio.txt"}
			weak, weakRes := encode(t, in, opt)
			opt.StartupLevel = c.strong
			strong, strongRes := encode(t, in, opt)
			opt.OnDemand = []string{"/s/ondemand.txt"}
			both, bothRes := encode(t, in, opt)
			for _, r := range []*layers.Encoded{weakRes, strongRes, bothRes} {
				if c.keepOrder && r.DiffID != plainRes.DiffID {
					t.Errorf("DiffID %s, want the input stream's %s", r.DiffID, plainRes.DiffID)
				}
			}
			// eStargz's stream holds its TOC, which holds compressed offsets.
			if c.f != layers.FormatEStargz && (strongRes.DiffID != weakRes.DiffID || bothRes.DiffID != weakRes.DiffID) {
				t.Errorf("the tar stream changed with the level: %s, %s, %s", weakRes.DiffID, strongRes.DiffID, bothRes.DiffID)
			}
			if !(len(weak) > len(strong) && len(strong) > len(both)) {
				t.Errorf("sizes %d (start-up at level %d), %d (prioritized at %d), %d (and the on-demand file): want each smaller",
					len(weak), c.weak, len(strong), c.strong, len(both))
			}
			bodies := encFileBodies(files)
			encVerifyLazy(t, strong, strongRes, bodies)
			encVerifyLazy(t, both, bothRes, bodies)
		})
	}
	for _, opt := range []layers.EncodeOptions{
		{Format: layers.FormatZstdChunked, StartupLevel: 23},
		{Format: layers.FormatEStargz, StartupLevel: 10},
		{Format: layers.FormatEStargz, StartupLevel: -1},
	} {
		if _, err := layers.Encode(context.Background(), io.NewSectionReader(bytes.NewReader(in), 0, int64(len(in))), io.Discard, opt); err == nil {
			t.Errorf("Encode accepted %+v", opt)
		}
	}
}

// TestEncodeConcurrentPools: Encode calls running at once share the
// process's compressors (at Level and at StartupLevel) and still write
// exactly what each writes alone, with jobs of many start-up segments each.
func TestEncodeConcurrentPools(t *testing.T) {
	var files []encTestFile
	var prio []string
	for i := range 24 {
		name := fmt.Sprintf("f/%02d", i)
		files = append(files, encTestFile{name: name, typ: tar.TypeReg, body: encTextLike(uint64(100+i), 40_000)})
		if i%2 == 0 {
			prio = append(prio, name)
		}
	}
	in := encBuildTar(t, files)
	opts := []layers.EncodeOptions{
		{Format: layers.FormatZstdChunkedContainerd, ChunkSize: 4096, StartupLevel: 7, Prioritized: prio},
		{Format: layers.FormatZstdChunked, ChunkSize: 8192, StartupLevel: 19, OnDemand: prio},
		{Format: layers.FormatEStargz, ChunkSize: 4096, StartupLevel: 9, Prioritized: prio},
		{Format: layers.FormatZstdChunkedContainerd, ChunkSize: 4096, KeepOrder: true, StartupLevel: 7, Prioritized: prio},
	}
	want := make([][]byte, len(opts))
	for i, o := range opts {
		want[i], _ = encode(t, in, o)
	}
	const rounds = 3
	got := make([][]byte, len(opts)*rounds)
	errs := make([]error, len(got))
	var wg sync.WaitGroup
	for k := range got {
		wg.Go(func() {
			var out bytes.Buffer
			_, errs[k] = layers.Encode(context.Background(), io.NewSectionReader(bytes.NewReader(in), 0, int64(len(in))), &out, opts[k%len(opts)])
			got[k] = out.Bytes()
		})
	}
	wg.Wait()
	for k := range got {
		if errs[k] != nil {
			t.Fatalf("encode %d: %v", k, errs[k])
		}
		if !bytes.Equal(got[k], want[k%len(opts)]) {
			t.Errorf("encode %d (%s) at once with the others wrote other bytes than alone", k, opts[k%len(opts)].Format)
		}
	}
}
