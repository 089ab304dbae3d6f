package imageref

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestArchiveRoundTrip(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, 1, plat("linux/amd64"))

	tagged := filepath.Join(dir, "tagged.tar")
	mustWrite(t, "docker-archive:"+tagged+":app:1.0", &Artifact{Image: img})
	for _, ref := range []string{"docker-archive:" + tagged, "docker-archive:" + tagged + ":app:1.0", "docker-archive:" + tagged + ":index.docker.io/library/app:1.0"} {
		got := mustRead(t, ref)
		if err := validate.Image(got.Image); err != nil {
			t.Fatalf("%s: validate.Image: %v", ref, err)
		}
		if d := digestOf(t, got.Image); d != digestOf(t, img) {
			t.Errorf("%s: digest %s, want %s", ref, d, digestOf(t, img))
		}
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(tagged) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != "app:1.0" {
		t.Errorf("manifest.json = %+v, want one image tagged app:1.0", m)
	}

	untagged := filepath.Join(dir, "untagged.tar")
	mustWrite(t, "docker-archive:"+untagged, &Artifact{Image: img})
	if d := digestOf(t, mustRead(t, "docker-archive:"+untagged).Image); d != digestOf(t, img) {
		t.Errorf("untagged: digest %s, want %s", d, digestOf(t, img))
	}
	if _, err := tryRead("docker-archive:" + untagged + ":app:1.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("tag in untagged archive: got %v, want ErrNotFound", err)
	}

	// Same image, same bytes.
	again := filepath.Join(dir, "again.tar")
	mustWrite(t, "docker-archive:"+again+":app:1.0", &Artifact{Image: img})
	a, _ := os.ReadFile(tagged)
	b, _ := os.ReadFile(again)
	if !equalBytes(a, b) {
		t.Error("two writes of one image differ")
	}
	if fi, err := os.Stat(tagged); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("archive mode = %v, %v; want 0644", fi.Mode(), err)
	}
}

func TestArchiveMultiImage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "multi.tar")
	a, b := testImage(t, 1, plat("linux/amd64")), testImage(t, 2, plat("linux/amd64"))
	ta, _ := name.NewTag("one:1")
	tb, _ := name.NewTag("two:2")
	if err := tarball.MultiWriteToFile(p, map[name.Tag]v1.Image{ta: a, tb: b}); err != nil {
		t.Fatal(err)
	}
	_, err := tryRead("docker-archive:" + p)
	if !errors.Is(err, ErrAmbiguous) || !contains(err.Error(), "one:1") || !contains(err.Error(), "two:2") {
		t.Errorf("untagged read of two images: %v", err)
	}
	if d := digestOf(t, mustRead(t, "docker-archive:"+p+":two:2").Image); d != digestOf(t, b) {
		t.Errorf("two:2 = %s, want %s", d, digestOf(t, b))
	}
	if _, err := tryRead("docker-archive:" + p + ":three:3"); !errors.Is(err, ErrNotFound) || !contains(err.Error(), "one:1") {
		t.Errorf("missing tag: %v", err)
	}
}

func TestArchiveReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := tryRead("docker-archive:" + filepath.Join(dir, "nope.tar")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := tryRead("docker-archive:" + dir); err == nil || !contains(err.Error(), "oci:"+dir) {
		t.Errorf("directory: %v (want a hint to use oci:)", err)
	}
	junk := filepath.Join(dir, "junk.tar")
	os.WriteFile(junk, []byte("not a tar"), 0o644)
	if _, err := tryRead("docker-archive:" + junk); err == nil || !contains(err.Error(), "manifest.json") {
		t.Errorf("junk: %v", err)
	}
}

func TestArchiveIndexNeedsPlatform(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.tar")
	tree := newTestTree(t)
	err := tryWrite("docker-archive:"+p, &Artifact{Index: tree.idx})
	if !errors.Is(err, ErrIndexNotSupported) || !contains(err.Error(), "linux/arm64") || !contains(err.Error(), "platform") {
		t.Errorf("got %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("archive created anyway: %v", err)
	}
	mustWrite(t, "docker-archive:"+p, &Artifact{Index: tree.idx}, WithPlatforms(spec(t, "linux/arm64")))
	if d := digestOf(t, mustRead(t, "docker-archive:"+p).Image); d != digestOf(t, tree.images["linux/arm64"]) {
		t.Errorf("digest %s, want the arm64 image", d)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want just the archive", len(entries))
	}
}

func TestArchiveFailedWriteLeavesFileUntouched(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "img.tar")
	mustWrite(t, "docker-archive:"+p+":app:1", &Artifact{Image: testImage(t, 1, plat("linux/amd64"))})
	snap := snapshot(t, dir)

	bad, _ := imageWithFailingLayer(t, 80, func(l v1.Layer) *failingLayer { return &failingLayer{Layer: l} })
	if err := tryWrite("docker-archive:"+p+":app:1", &Artifact{Image: bad}); !errors.Is(err, errInjected) {
		t.Fatalf("got %v, want the injected failure", err)
	}
	assertUnchanged(t, dir, snap)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, _ := imageWithFailingLayer(t, 90, func(l v1.Layer) *failingLayer {
		return &failingLayer{Layer: l, onHalf: cancel, keepGoing: true}
	})
	if err := tryWriteCtx(ctx, "docker-archive:"+p+":app:1", &Artifact{Image: slow}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	assertUnchanged(t, dir, snap)

	// A new file is not created by a failed write.
	if err := tryWrite("docker-archive:"+filepath.Join(dir, "new.tar"), &Artifact{Image: bad}); !errors.Is(err, errInjected) {
		t.Fatalf("got %v", err)
	}
	assertUnchanged(t, dir, snap)

	if err := tryWrite("docker-archive:"+dir, &Artifact{Image: bad}); err == nil {
		t.Error("archive over a directory accepted")
	}
}
