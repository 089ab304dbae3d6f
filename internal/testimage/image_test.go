package testimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func mustLayer(t *testing.T, l Layer, c compression.Compression) v1.Layer {
	t.Helper()
	v, err := l.Compressed(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func testImage(t *testing.T, content string) v1.Image {
	t.Helper()
	img, err := Image(v1.Config{
		Entrypoint: []string{"/app"},
		Cmd:        []string{"--serve"},
		Env:        []string{"PATH=/usr/bin:/bin"},
	},
		mustLayer(t, Layer{Dir("etc", 0o755), File("etc/a", "a")}, compression.GZip),
		mustLayer(t, Layer{File("app", content, Mode(0o755))}, compression.GZip),
	)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestImage(t *testing.T) {
	img := testImage(t, "binary")
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Equal(Epoch) {
		t.Errorf("platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
	}
	if diff := cmp.Diff([]string{"/app"}, cf.Config.Entrypoint); diff != "" {
		t.Error(diff)
	}
	ls, _ := img.Layers()
	if len(cf.RootFS.DiffIDs) != 2 || len(cf.History) != 2 {
		t.Fatalf("diff_ids %v history %v", cf.RootFS.DiffIDs, cf.History)
	}
	for i, l := range ls {
		d, _ := l.DiffID()
		if cf.RootFS.DiffIDs[i] != d {
			t.Errorf("diff_id %d = %s, want %s", i, cf.RootFS.DiffIDs[i], d)
		}
		if cf.History[i].CreatedBy == "" || cf.History[i].EmptyLayer {
			t.Errorf("history %d = %+v", i, cf.History[i])
		}
	}
	mt, _ := img.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s", mt)
	}
	m, _ := img.Manifest()
	if m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("config media type %s", m.Config.MediaType)
	}
	d1, _ := img.Digest()
	d2, _ := testImage(t, "binary").Digest()
	if d1 != d2 {
		t.Errorf("same image built twice: %s != %s", d1, d2)
	}
	d3, _ := testImage(t, "other").Digest()
	if d1 == d3 {
		t.Error("different content, same digest")
	}

	tree, err := ApplyImage(img)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"app", "etc", "etc/a"}, tree.Paths()); diff != "" {
		t.Error(diff)
	}
}

func TestImageFromHistory(t *testing.T) {
	img, err := ImageFrom(v1.ConfigFile{Architecture: "arm64", Config: v1.Config{User: "app"}},
		mutate.Addendum{Layer: mustLayer(t, Layer{File("a", "a")}, compression.ZStd), History: v1.History{CreatedBy: "COPY a /"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if cf.Architecture != "arm64" || cf.OS != "linux" || cf.Config.User != "app" {
		t.Errorf("config %+v", cf)
	}
	if len(cf.History) != 1 || cf.History[0].CreatedBy != "COPY a /" || !cf.History[0].Created.Equal(Epoch) {
		t.Errorf("history %+v", cf.History)
	}
	ls, _ := img.Layers()
	if mt, _ := ls[0].MediaType(); mt != types.OCILayerZStd {
		t.Errorf("layer media type %s", mt)
	}
}

func TestIndexAndWriteOCI(t *testing.T) {
	idx, err := Index(map[string]v1.Image{
		"linux/arm64/v8": testImage(t, "arm"),
		"linux/amd64":    testImage(t, "amd"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("validate.Index: %v", err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("%d manifests", len(im.Manifests))
	}
	var plats []string
	for _, d := range im.Manifests {
		plats = append(plats, d.Platform.String())
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if got := cf.Platform().String(); got != d.Platform.String() {
			t.Errorf("config platform %s under descriptor %s", got, d.Platform)
		}
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64/v8"}, plats); diff != "" {
		t.Errorf("platform order (-want +got):\n%s", diff)
	}
	if _, err := Index(map[string]v1.Image{"": testImage(t, "x")}); err == nil {
		t.Error("empty platform accepted")
	}

	dir := filepath.Join(t.TempDir(), "layout")
	if err := WriteOCI(dir, "multi", idx); err != nil {
		t.Fatal(err)
	}
	img := testImage(t, "single")
	if err := WriteOCI(dir, "single", img); err != nil {
		t.Fatal(err)
	}
	// Rewriting a tag replaces its entry.
	img2 := testImage(t, "single v2")
	if err := WriteOCI(dir, "single", img2); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	rm, _ := root.IndexManifest()
	tags := map[string]v1.Hash{}
	for _, d := range rm.Manifests {
		tags[d.Annotations[RefNameAnnotation]] = d.Digest
	}
	wantIdx, _ := idx.Digest()
	wantImg, _ := img2.Digest()
	if len(rm.Manifests) != 2 || tags["multi"] != wantIdx || tags["single"] != wantImg {
		t.Errorf("index.json manifests %+v", rm.Manifests)
	}
	back, err := root.Image(wantImg)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(back); err != nil {
		t.Errorf("validate.Image of the written image: %v", err)
	}

	if err := WriteOCI(t.TempDir(), "", "not an image"); err == nil || !strings.Contains(err.Error(), "v1.Image or v1.ImageIndex") {
		t.Errorf("WriteOCI of a string: %v", err)
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "index.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteOCI(bad, "x", img); err == nil {
		t.Error("WriteOCI over a broken layout succeeded")
	}
}

func TestWriteOCIDeterministic(t *testing.T) {
	write := func() map[string]string {
		dir := t.TempDir()
		if err := WriteOCI(dir, "latest", testImage(t, "same")); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{}
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			files[rel] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return files
	}
	if diff := cmp.Diff(write(), write()); diff != "" {
		t.Errorf("two layouts differ:\n%s", diff)
	}
}
