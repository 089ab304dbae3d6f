package layers_test

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"

	"github.com/coldstart-dev/coldstart/internal/corpus"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/layers"
	"github.com/coldstart-dev/coldstart/layers/lazy/estargzfmt"
	"github.com/coldstart-dev/coldstart/layers/lazy/zstdchunkedfmt"
)

var updateEncodeGolden = flag.Bool("update-encode-golden", false, "rewrite testdata/encode.golden from the current encoder")

// encGoldenFile pins what Encode writes: one line per input, options and
// format, with the blob's digest and size, the DiffID, the TOC digest, the
// annotations and the missing prioritized names. Any change to the bytes
// Encode writes shows up here; such a change must come with a new
// EncoderVersion or Format.EncoderVersion (caches of converted layers key on
// them), and the file is then rewritten with
//
//	go test ./layers -run TestEncodeGolden -update-encode-golden
const encGoldenFile = "testdata/encode.golden"

// encGoldenInputs are the layers TestEncodeGolden encodes: the sample layer,
// an empty one, one with access and change times (in -short mode, only
// these three), the committed fixtures, generated corpora (files of many
// chunks at a small chunk size) and random layers with hard links,
// duplicate names, long names, xattrs and special files.
func encGoldenInputs(t *testing.T) []struct {
	name string
	tar  []byte
} {
	var in []struct {
		name string
		tar  []byte
	}
	add := func(name string, b []byte) {
		in = append(in, struct {
			name string
			tar  []byte
		}{name, b})
	}
	add("sample", encBuildTar(t, encSampleFiles()))
	add("empty", make([]byte, 1024))
	add("times", encGoldenTimes(t))
	if testing.Short() {
		return in
	}
	fixtures, err := filepath.Glob("../testdata/*.tar")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fixtures {
		if strings.HasPrefix(filepath.Base(f), "bad-") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		add("fixture/"+filepath.Base(f), b)
	}
	for _, c := range []struct {
		seed uint64
		size int64
	}{{1, 1 << 20}, {2, 3 << 20}} {
		var b bytes.Buffer
		if err := corpus.Write(&b, c.seed, c.size); err != nil {
			t.Fatal(err)
		}
		add(fmt.Sprintf("corpus/%d-%d", c.seed, c.size), b.Bytes())
	}
	for seed := range uint64(2) {
		ls := testimage.Random(rand.New(rand.NewPCG(seed, 11)), testimage.RandomOptions{
			Layers: 3, Specials: true, HardLinks: true, LongNames: true, Xattrs: true,
			MaxFileSize: 200 << 10,
		})
		for i, l := range ls {
			add(fmt.Sprintf("random/%d-%d", seed, i), l.Tar())
		}
	}
	return in
}

// encGoldenTimes is a PAX layer whose entries carry access and change times
// (zstd:chunked's TOC records them), some with the epoch as modification
// time (which the TOC leaves out).
func encGoldenTimes(t *testing.T) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	at := time.Date(2024, 2, 3, 4, 5, 6, 789, time.UTC)
	for i, h := range []*tar.Header{
		{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: at, AccessTime: at, ChangeTime: at},
		{Name: "d/a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, ModTime: time.Unix(0, 0), AccessTime: at, ChangeTime: at.Add(time.Hour)},
		{Name: "d/b", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, ModTime: at, AccessTime: at},
		{Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "a", ModTime: time.Unix(0, 0), ChangeTime: at},
	} {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			fmt.Fprintf(tw, "file%d", i)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encGoldenPrioritized picks start-up lists from a tar: every fifth entry
// from the end backwards (so the order differs from the archive's), with
// "/" and "./" spellings, the first hard link, symlink and directory, and a
// name the layer lacks.
func encGoldenPrioritized(t *testing.T, in []byte) []string {
	tr := tar.NewReader(bytes.NewReader(in))
	var names []string
	var link, sym, dir string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeLink:
			link = cmp.Or(link, h.Name)
		case tar.TypeSymlink:
			sym = cmp.Or(sym, h.Name)
		case tar.TypeDir:
			dir = cmp.Or(dir, h.Name)
		case tar.TypeXGlobalHeader:
			continue
		}
		names = append(names, h.Name)
	}
	var p []string
	for i := len(names) - 1; i >= 0 && len(p) < 40; i -= 5 {
		p = append(p, names[i])
	}
	if len(p) > 1 {
		p[0] = "/" + strings.TrimPrefix(p[0], "./")
		p[1] = "./" + strings.TrimPrefix(p[1], "./")
	}
	for _, n := range []string{link, sym, dir} {
		if n != "" {
			p = append(p, n)
		}
	}
	return append(p, "does/not/exist")
}

func encGoldenLine(name, opts string, f layers.Format, res *layers.Encoded) string {
	keys := make([]string, 0, len(res.Annotations))
	for k := range res.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ann []string
	for _, k := range keys {
		ann = append(ann, k+"="+res.Annotations[k])
	}
	return fmt.Sprintf("%s %s %s: %s %d diff=%s %d toc=%s mt=%s ann=[%s] missing=%q",
		name, opts, f, res.Digest, res.Size, res.DiffID, res.UncompressedSize, res.TOCDigest,
		res.MediaType, strings.Join(ann, " "), res.MissingPrioritized)
}

// TestEncodeGolden encodes every golden input with several option sets in
// every format and compares the results with encGoldenFile.
func TestEncodeGolden(t *testing.T) {
	if testing.Short() && *updateEncodeGolden {
		t.Fatal("-update-encode-golden needs the full input set: drop -short")
	}
	t.Parallel()
	var lines []string
	for _, in := range encGoldenInputs(t) {
		prio := encGoldenPrioritized(t, in.tar)
		opts := []struct {
			name string
			opt  layers.EncodeOptions
		}{
			{"default", layers.EncodeOptions{}},
			{"chunk64k", layers.EncodeOptions{ChunkSize: 64 << 10}},
			{"level-max", layers.EncodeOptions{Level: -1}},
			{"prio", layers.EncodeOptions{Prioritized: prio}},
			{"prio-chunk64k-w1", layers.EncodeOptions{Prioritized: prio, ChunkSize: 64 << 10, Workers: 1}},
			{"prio-missing", layers.EncodeOptions{Prioritized: []string{"nope", "/no/such/file"}}},
		}
		for _, o := range opts {
			for _, f := range encAllFormats {
				opt := o.opt
				opt.Format = f
				if opt.Level == -1 {
					opt.Level = 9
					if f == layers.FormatZstdChunked || f == layers.FormatZstd || f == layers.FormatZstdChunkedContainerd {
						opt.Level = 11
					}
				}
				var out bytes.Buffer
				src := io.NewSectionReader(bytes.NewReader(in.tar), 0, int64(len(in.tar)))
				res, err := layers.Encode(context.Background(), src, &out, opt)
				if err != nil {
					t.Fatalf("%s %s %s: %v", in.name, o.name, f, err)
				}
				if got := encSha(out.Bytes()); got != res.Digest {
					t.Fatalf("%s %s %s: blob hashes to %s, Encoded says %s", in.name, o.name, f, got, res.Digest)
				}
				lines = append(lines, encGoldenLine(in.name, o.name, f, res))
			}
		}
	}
	got := strings.Join(lines, "\n") + "\n"
	if *updateEncodeGolden {
		if err := os.MkdirAll(filepath.Dir(encGoldenFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(encGoldenFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(encGoldenFile)
	if err != nil {
		t.Fatal(err)
	}
	wantLines := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
	if testing.Short() && len(wantLines) > len(lines) {
		wantLines = wantLines[:len(lines)] // the short input set comes first
	}
	if len(wantLines) != len(lines) {
		t.Errorf("%d encodes, %s has %d", len(lines), encGoldenFile, len(wantLines))
	}
	bad := 0
	for i := range min(len(lines), len(wantLines)) {
		if lines[i] != wantLines[i] {
			bad++
			if bad <= 5 {
				t.Errorf("encode %d differs:\n got  %s\n want %s", i, lines[i], wantLines[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d encodes differ from %s: the encoder's output changed", bad, len(lines), encGoldenFile)
	}
}

// TestFormatVersions pins what caches of converted layers key on, with the
// media type and laziness of every format: a change here is a change of
// every cache key.
func TestFormatVersions(t *testing.T) {
	if layers.EncoderVersion != "2" {
		t.Errorf("EncoderVersion = %q", layers.EncoderVersion)
	}
	for _, c := range []struct {
		f       layers.Format
		version string
		mt      string
		lazy    bool
	}{
		{layers.FormatEStargz, "2", "application/vnd.oci.image.layer.v1.tar+gzip", true},
		{layers.FormatZstdChunked, "2+zstd:chunked.2", "application/vnd.oci.image.layer.v1.tar+zstd", true},
		{layers.FormatGzip, "2", "application/vnd.oci.image.layer.v1.tar+gzip", false},
		{layers.FormatZstd, "2", "application/vnd.oci.image.layer.v1.tar+zstd", false},
		{layers.FormatZstdChunkedContainerd, "2+zstd:chunked-containerd.1", "application/vnd.oci.image.layer.v1.tar+zstd", true},
	} {
		if v := c.f.EncoderVersion(); v != c.version {
			t.Errorf("%s: EncoderVersion() = %q, want %q", c.f, v, c.version)
		}
		if mt := string(c.f.MediaType()); mt != c.mt {
			t.Errorf("%s: MediaType() = %q, want %q", c.f, mt, c.mt)
		}
		if c.f.Lazy() != c.lazy {
			t.Errorf("%s: Lazy() = %v", c.f, c.f.Lazy())
		}
	}
	// The format packages name their formats as ParseFormat does.
	for f, s := range map[layers.Format]fmt.Stringer{
		layers.FormatEStargz:     estargzfmt.Format{},
		layers.FormatZstdChunked: zstdchunkedfmt.Format{},

		layers.FormatZstdChunkedContainerd: zstdchunkedfmt.Format{Containerd: true},
	} {
		if f.String() != s.String() {
			t.Errorf("%s is %q in its package", f, s)
		}
	}
}

// TestEncodeTOCFields: the eStargz TOC is exactly estargz.JTOC's JSON
// (decoding it into estargz's types and encoding it again gives the same
// bytes), while the zstd:chunked TOC also records the access and change
// times of the tar headers and where each file's compressed data ends.
func TestEncodeTOCFields(t *testing.T) {
	in := encGoldenTimes(t)
	blob, _ := encode(t, in, encOpts(layers.FormatEStargz))
	tocJSON := encTOCJSON(t, blob)
	var jtoc estargz.JTOC
	if err := json.Unmarshal(tocJSON, &jtoc); err != nil {
		t.Fatal(err)
	}
	if again, err := json.Marshal(&jtoc); err != nil || !bytes.Equal(again, tocJSON) {
		t.Errorf("the eStargz TOC is not estargz.JTOC's JSON (%v):\n got  %s\n JTOC %s", err, tocJSON, again)
	}

	blob, res := encode(t, in, encOpts(layers.FormatZstdChunked))
	at := time.Date(2024, 2, 3, 4, 5, 6, 789, time.UTC)
	want := map[string]struct{ atime, ctime time.Time }{
		"d/":  {at, at},
		"d/a": {at, at.Add(time.Hour)},
		"d/b": {at, time.Time{}},
		"d/l": {time.Time{}, at},
	}
	orZero := func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	}
	toc := encZstdTOC(t, blob, res.Annotations)
	if len(toc.Entries) != len(want) {
		t.Errorf("%d TOC entries, want %d", len(toc.Entries), len(want))
	}
	for _, e := range toc.Entries {
		w, ok := want[e.Name]
		if !ok {
			t.Errorf("unexpected TOC entry %q", e.Name)
			continue
		}
		if a, c := orZero(e.AccessTime), orZero(e.ChangeTime); !a.Equal(w.atime) || !c.Equal(w.ctime) {
			t.Errorf("%s: accesstime %v changetime %v, want %v %v", e.Name, a, c, w.atime, w.ctime)
		}
		if e.Type == "reg" && e.EndOffset <= e.Offset {
			t.Errorf("%s: compressed data [%d, %d)", e.Name, e.Offset, e.EndOffset)
		}
	}
}
