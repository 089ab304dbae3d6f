package imageref

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func readIndexJSON(t testing.TB, dir string) *v1.IndexManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		t.Fatal(err)
	}
	return &im
}

// tempFiles lists leftover temporary files under dir.
func tempFiles(t testing.TB, dir string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

func TestLayoutRoundTripImage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "layout") // parents created too
	img := testImage(t, 1, plat("linux/amd64"))
	mustWrite(t, "oci:"+dir+":v1", &Artifact{Image: img})

	got := mustRead(t, "oci:"+dir+":v1")
	if got.IsIndex() {
		t.Fatal("read back an index")
	}
	if err := validate.Image(got.Image); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	if !equalBytes(rawOf(t, got.Image), rawOf(t, img)) {
		t.Error("manifest not byte-identical")
	}
	// Untagged read of a layout with one image.
	if d := digestOf(t, mustRead(t, "oci:"+dir).Image); d != digestOf(t, img) {
		t.Errorf("untagged read: digest %s, want %s", d, digestOf(t, img))
	}
	im := readIndexJSON(t, dir)
	want := []v1.Descriptor{{
		MediaType:   rawMediaType(t, img),
		Size:        int64(len(rawOf(t, img))),
		Digest:      digestOf(t, img),
		Annotations: map[string]string{annotationRefName: "v1"},
	}}
	if diff := cmp.Diff(want, im.Manifests); diff != "" {
		t.Errorf("index.json entries (-want +got):\n%s", diff)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "oci-layout")); err != nil || !strings.Contains(string(b), `"1.0.0"`) {
		t.Errorf("oci-layout = %q, %v", b, err)
	}
	if tf := tempFiles(t, dir); len(tf) > 0 {
		t.Errorf("temporary files left: %v", tf)
	}
	// ggcr's own layout reader agrees.
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	gi, err := lp.Image(digestOf(t, img))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(gi); err != nil {
		t.Errorf("ggcr layout: validate.Image: %v", err)
	}
}

func rawMediaType(t testing.TB, m interface {
	MediaType() (types.MediaType, error)
}) types.MediaType {
	t.Helper()
	mt, err := m.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return mt
}

func TestLayoutRoundTripIndex(t *testing.T) {
	dir := t.TempDir()
	tree := newTestTree(t)
	mustWrite(t, "oci:"+dir+":multi", &Artifact{Index: tree.idx})

	got := mustRead(t, "oci:"+dir+":multi")
	if !got.IsIndex() {
		t.Fatal("read back an image")
	}
	if err := validate.Index(got.Index); err != nil {
		t.Fatalf("validate.Index: %v", err)
	}
	if !equalBytes(rawOf(t, got.Index), rawOf(t, tree.idx)) {
		t.Error("index manifest not byte-identical")
	}

	one := mustRead(t, "oci:"+dir+":multi", WithPlatforms(spec(t, "linux/ppc64le")))
	if one.IsIndex() || digestOf(t, one.Image) != digestOf(t, tree.images["linux/ppc64le"]) {
		t.Errorf("platform read: got %v", one)
	}
	d, err := one.Descriptor()
	if err != nil {
		t.Fatal(err)
	}
	if d.Platform == nil || d.Platform.String() != "linux/ppc64le" {
		t.Errorf("descriptor platform = %v, want linux/ppc64le", d.Platform)
	}

	two := mustRead(t, "oci:"+dir+":multi", WithPlatforms(spec(t, "linux/amd64,linux/arm64")))
	if err := validate.Index(two.Index); err != nil {
		t.Fatalf("validate.Index: %v", err)
	}
	// Writing the selection stores only what it references.
	dir2 := t.TempDir()
	mustWrite(t, "oci:"+dir2, two)
	if digestOf(t, mustRead(t, "oci:"+dir2).Index) != digestOf(t, two.Index) {
		t.Error("selected index round trip changed the digest")
	}
	if _, err := tryRead("oci:"+dir2, WithPlatforms(spec(t, "linux/s390x"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("dropped platform still readable: %v", err)
	}
}

func TestLayoutUpdateKeepsOtherImages(t *testing.T) {
	dir := t.TempDir()
	a, b, c := testImage(t, 1, plat("linux/amd64")), testImage(t, 2, plat("linux/amd64")), testImage(t, 3, plat("linux/amd64"))
	mustWrite(t, "oci:"+dir+":a", &Artifact{Image: a})
	mustWrite(t, "oci:"+dir+":b", &Artifact{Image: b})
	before := readIndexJSON(t, dir)
	mustWrite(t, "oci:"+dir+":a", &Artifact{Image: c})
	after := readIndexJSON(t, dir)

	if len(after.Manifests) != 2 {
		t.Fatalf("index.json has %d entries, want 2", len(after.Manifests))
	}
	if got := after.Manifests[0]; got.Annotations[annotationRefName] != "a" || got.Digest != digestOf(t, c) {
		t.Errorf("first entry = %+v, want tag a -> %s (replaced in place)", got, digestOf(t, c))
	}
	if diff := cmp.Diff(before.Manifests[1], after.Manifests[1]); diff != "" {
		t.Errorf("entry b changed:\n%s", diff)
	}
	if d := digestOf(t, mustRead(t, "oci:"+dir+":b").Image); d != digestOf(t, b) {
		t.Errorf("b = %s, want %s", d, digestOf(t, b))
	}
	// Blobs of the replaced image stay (no garbage collection).
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", digestOf(t, a).Hex)); err != nil {
		t.Errorf("old manifest blob removed: %v", err)
	}

	// Writing the same image under the same tag again changes nothing.
	snap := snapshot(t, dir)
	mustWrite(t, "oci:"+dir+":a", &Artifact{Image: c})
	assertUnchanged(t, dir, snap)

	// Ambiguous untagged read names the tags.
	_, err := tryRead("oci:" + dir)
	if !errors.Is(err, ErrAmbiguous) || !contains(err.Error(), "a, b") || !contains(err.Error(), dir) {
		t.Errorf("untagged read of two images: %v", err)
	}
	_, err = tryRead("oci:" + dir + ":nope")
	if !errors.Is(err, ErrNotFound) || !contains(err.Error(), `"nope"`) {
		t.Errorf("missing tag: %v", err)
	}
}

func TestLayoutUntaggedWrite(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, 1, plat("linux/amd64"))
	mustWrite(t, "oci:"+dir, &Artifact{Image: img})
	mustWrite(t, "oci:"+dir, &Artifact{Image: img})
	im := readIndexJSON(t, dir)
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations != nil {
		t.Fatalf("entries = %+v, want one untagged", im.Manifests)
	}
	other := testImage(t, 2, plat("linux/amd64"))
	mustWrite(t, "oci:"+dir, &Artifact{Image: other})
	if im := readIndexJSON(t, dir); len(im.Manifests) != 2 {
		t.Fatalf("entries = %+v, want two untagged", im.Manifests)
	}
}

func TestLayoutIndexJSONPreserved(t *testing.T) {
	dir := t.TempDir()
	// A layout written by another tool, with members and fields we do not model.
	const foreign = `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":7,"annotations":{"org.opencontainers.image.ref.name":"keep","x":"y"},"x-extra":[1,2]}],"annotations":{"made.by":"other"},"x-top":true}`
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion": "1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	img := testImage(t, 1, plat("linux/amd64"))
	mustWrite(t, "oci:"+dir+":new", &Artifact{Image: img})

	var doc map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var old map[string]any
	json.Unmarshal([]byte(foreign), &old)
	if diff := cmp.Diff(old["manifests"].([]any)[0], doc["manifests"].([]any)[0]); diff != "" {
		t.Errorf("foreign entry changed:\n%s", diff)
	}
	for _, k := range []string{"annotations", "x-top", "schemaVersion"} {
		if diff := cmp.Diff(old[k], doc[k]); diff != "" {
			t.Errorf("member %s changed:\n%s", k, diff)
		}
	}
	if _, ok := doc["mediaType"]; ok {
		t.Error("mediaType added to an existing index.json")
	}
	if n := len(doc["manifests"].([]any)); n != 2 {
		t.Errorf("%d entries, want 2", n)
	}
}

func TestLayoutReadErrors(t *testing.T) {
	root := t.TempDir()

	t.Run("missing directory", func(t *testing.T) {
		p := filepath.Join(root, "nope")
		_, err := tryRead("oci:" + p)
		if !errors.Is(err, fs.ErrNotExist) || !contains(err.Error(), p) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("not a layout", func(t *testing.T) {
		p := filepath.Join(root, "empty")
		os.Mkdir(p, 0o755)
		if _, err := tryRead("oci:" + p); !errors.Is(err, ErrNotLayout) {
			t.Errorf("got %v, want ErrNotLayout", err)
		}
	})
	t.Run("empty layout", func(t *testing.T) {
		p := filepath.Join(root, "nothing")
		os.Mkdir(p, 0o755)
		os.WriteFile(filepath.Join(p, "index.json"), []byte(`{"schemaVersion":2,"manifests":[]}`), 0o644)
		if _, err := tryRead("oci:" + p); !errors.Is(err, ErrNotFound) {
			t.Errorf("got %v, want ErrNotFound", err)
		}
	})

	img := testImage(t, 1, plat("linux/amd64"))
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layerDigest := digestOf(t, layers[1])

	fresh := func(t *testing.T) string {
		p := t.TempDir()
		mustWrite(t, "oci:"+p+":x", &Artifact{Image: img})
		return p
	}

	t.Run("missing layer blob", func(t *testing.T) {
		p := fresh(t)
		os.Remove(filepath.Join(p, "blobs", "sha256", layerDigest.Hex))
		_, err := tryRead("oci:" + p + ":x")
		if !errors.Is(err, ErrMissingBlob) || !contains(err.Error(), layerDigest.String()) || !contains(err.Error(), "layer 2") {
			t.Errorf("got %v; want ErrMissingBlob naming %s", err, layerDigest)
		}
	})
	t.Run("missing manifest blob", func(t *testing.T) {
		p := fresh(t)
		os.Remove(filepath.Join(p, "blobs", "sha256", digestOf(t, img).Hex))
		_, err := tryRead("oci:" + p + ":x")
		if !errors.Is(err, ErrMissingBlob) || !contains(err.Error(), digestOf(t, img).String()) {
			t.Errorf("got %v; want ErrMissingBlob naming the manifest", err)
		}
	})
	t.Run("corrupt manifest", func(t *testing.T) {
		p := fresh(t)
		mp := filepath.Join(p, "blobs", "sha256", digestOf(t, img).Hex)
		b, _ := os.ReadFile(mp)
		b[len(b)-1] = ' '
		os.WriteFile(mp, b, 0o644)
		if _, err := tryRead("oci:" + p + ":x"); !errors.Is(err, ErrDigestMismatch) {
			t.Errorf("got %v, want ErrDigestMismatch", err)
		}
	})
	t.Run("corrupt layer is caught when read", func(t *testing.T) {
		p := fresh(t)
		lp := filepath.Join(p, "blobs", "sha256", layerDigest.Hex)
		b, _ := os.ReadFile(lp)
		b[len(b)/2] ^= 0xff
		os.WriteFile(lp, b, 0o644)
		a := mustRead(t, "oci:"+p+":x") // same size: Read's check passes
		ls, err := a.Image.Layers()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := ls[1].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.Copy(io.Discard, rc); !errors.Is(err, ErrDigestMismatch) || !contains(err.Error(), layerDigest.String()) {
			t.Errorf("got %v, want ErrDigestMismatch naming %s", err, layerDigest)
		}
		// Copying it elsewhere fails too, and leaves nothing behind.
		dst := filepath.Join(t.TempDir(), "copy")
		if err := tryWrite("oci:"+dst, a); !errors.Is(err, ErrDigestMismatch) {
			t.Errorf("copy of corrupt layer: %v", err)
		}
		if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("failed copy left %s: %v %v", dst, err, snapshot(t, dst))
		}
	})
}

func TestLayoutWriteRefusesNonLayoutDirectory(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	snap := snapshot(t, dir)
	err := tryWrite("oci:"+dir, &Artifact{Image: testImage(t, 1, plat("linux/amd64"))})
	if !errors.Is(err, ErrNotLayout) {
		t.Fatalf("got %v, want ErrNotLayout", err)
	}
	assertUnchanged(t, dir, snap)

	file := filepath.Join(dir, "notes.txt")
	if err := tryWrite("oci:"+file, &Artifact{Image: testImage(t, 1, plat("linux/amd64"))}); !errors.Is(err, ErrNotLayout) {
		t.Fatalf("layout over a file: got %v, want ErrNotLayout", err)
	}
}

func TestLayoutFailedWriteLeavesLayoutUntouched(t *testing.T) {
	dir := t.TempDir()
	tree := newTestTree(t)
	mustWrite(t, "oci:"+dir+":a", &Artifact{Index: tree.idx})
	snap := snapshot(t, dir)

	bad, fl := imageWithFailingLayer(t, 50, func(l v1.Layer) *failingLayer { return &failingLayer{Layer: l} })
	for _, tag := range []string{"a", "b"} {
		err := tryWrite("oci:"+dir+":"+tag, &Artifact{Image: bad}, WithJobs(1))
		if !errors.Is(err, errInjected) {
			t.Fatalf("got %v, want the injected failure", err)
		}
		assertUnchanged(t, dir, snap)
	}
	if fl.opened.Load() == 0 {
		t.Fatal("failing layer never read")
	}
	// Inside an index, next to good images whose blobs were written first.
	idx := buildIndex(t, entry{img: testImage(t, 60, plat("linux/arm64")), plat: pp("linux/arm64")}, entry{img: bad, plat: pp("linux/amd64")})
	if err := tryWrite("oci:"+dir+":c", &Artifact{Index: idx}); !errors.Is(err, errInjected) {
		t.Fatalf("got %v, want the injected failure", err)
	}
	assertUnchanged(t, dir, snap)

	// A layout that did not exist does not exist afterwards, parents included.
	parent := filepath.Join(t.TempDir(), "p")
	if err := tryWrite("oci:"+parent+"/q/layout", &Artifact{Image: bad}); !errors.Is(err, errInjected) {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(parent); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed write left %s behind: %v", parent, err)
	}
}

func TestLayoutWriteCancelled(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, "oci:"+dir+":a", &Artifact{Image: testImage(t, 1, plat("linux/amd64"))})
	snap := snapshot(t, dir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	img, _ := imageWithFailingLayer(t, 70, func(l v1.Layer) *failingLayer {
		return &failingLayer{Layer: l, onHalf: cancel, keepGoing: true}
	})
	err := tryWriteCtx(ctx, "oci:"+dir+":a", &Artifact{Image: img})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	assertUnchanged(t, dir, snap)
}

func TestLayoutWriteDeterministic(t *testing.T) {
	tree := newTestTree(t)
	d1, d2 := t.TempDir(), t.TempDir()
	mustWrite(t, "oci:"+d1+":t", &Artifact{Index: tree.idx}, WithJobs(1))
	mustWrite(t, "oci:"+d2+":t", &Artifact{Index: tree.idx}, WithJobs(8))
	if diff := cmp.Diff(snapshot(t, d1), snapshot(t, d2)); diff != "" {
		t.Errorf("layouts differ with different job counts:\n%s", diff)
	}
}

func TestAddToIndexJSON(t *testing.T) {
	h := func(c byte) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(string(c), 64)} }
	desc := func(c byte) v1.Descriptor {
		return v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1, Digest: h(c)}
	}
	tagged := func(c byte, tag string) v1.Descriptor {
		d := desc(c)
		if tag != "" {
			d.Annotations = map[string]string{annotationRefName: tag}
		}
		return d
	}
	build := func(ds ...v1.Descriptor) []byte {
		b, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, Manifests: ds})
		return b
	}
	tests := []struct {
		name    string
		old     []byte
		add     v1.Descriptor
		tag     string
		want    []v1.Descriptor
		changed bool
	}{
		{"new layout", nil, desc('a'), "t", []v1.Descriptor{tagged('a', "t")}, true},
		{"replace in place", build(tagged('a', "x"), tagged('b', "t"), tagged('c', "y")), desc('d'), "t",
			[]v1.Descriptor{tagged('a', "x"), tagged('d', "t"), tagged('c', "y")}, true},
		{"duplicate tags collapse", build(tagged('a', "t"), tagged('b', "x"), tagged('c', "t")), desc('d'), "t",
			[]v1.Descriptor{tagged('d', "t"), tagged('b', "x")}, true},
		{"same entry", build(tagged('a', "t")), desc('a'), "t", []v1.Descriptor{tagged('a', "t")}, false},
		{"untagged appended", build(tagged('a', "t")), desc('a'), "", []v1.Descriptor{tagged('a', "t"), desc('a')}, true},
		{"untagged present", build(desc('a'), tagged('b', "t")), desc('a'), "", []v1.Descriptor{desc('a'), tagged('b', "t")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, changed, err := addToIndexJSON(tt.old, tt.add, tt.tag)
			if err != nil {
				t.Fatal(err)
			}
			if changed != tt.changed {
				t.Errorf("changed = %v, want %v", changed, tt.changed)
			}
			var im v1.IndexManifest
			if err := json.Unmarshal(out, &im); err != nil {
				t.Fatalf("%s: %v", out, err)
			}
			if diff := cmp.Diff(tt.want, im.Manifests); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if im.SchemaVersion != 2 {
				t.Errorf("schemaVersion = %d", im.SchemaVersion)
			}
		})
	}
	if _, _, err := addToIndexJSON([]byte(`{"manifests":{}}`), desc('a'), "t"); err == nil {
		t.Error("malformed index.json accepted")
	}
}

func TestLayoutWriteStreamingLayer(t *testing.T) {
	base := testImage(t, 1, plat("linux/amd64"))
	content := strings.Repeat("streamed layer content ", 4096)
	sl := stream.NewLayer(io.NopCloser(strings.NewReader(tarOf(t, "f", content))))
	img, err := mutate.AppendLayers(base, sl)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mustWrite(t, "oci:"+dir+":s", &Artifact{Image: img})
	got := mustRead(t, "oci:"+dir+":s")
	if err := validate.Image(got.Image); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	if d := digestOf(t, got.Image); d != digestOf(t, img) {
		t.Errorf("digest %s, want %s", d, digestOf(t, img))
	}
	if tf := tempFiles(t, dir); len(tf) > 0 {
		t.Errorf("temporary files left: %v", tf)
	}
}

func TestLayoutRepairsTruncatedBlob(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, 1, plat("linux/amd64"))
	mustWrite(t, "oci:"+dir+":x", &Artifact{Image: img})
	ls, _ := img.Layers()
	p := filepath.Join(dir, "blobs", "sha256", digestOf(t, ls[0]).Hex)
	if err := os.Truncate(p, 10); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, "oci:"+dir+":x", &Artifact{Image: img})
	if err := validate.Image(mustRead(t, "oci:"+dir+":x").Image); err != nil {
		t.Errorf("after rewrite: %v", err)
	}
}

func tarOf(t testing.TB, name, content string) string {
	t.Helper()
	var b strings.Builder
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(content))
	tw.Close()
	return b.String()
}
