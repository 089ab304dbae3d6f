package harness

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestCalibrationImage: the calibration image is the base image, its
// layers and history as they are, with a shell that prints "ready" for its
// entrypoint.
func TestCalibrationImage(t *testing.T) {
	ctx := context.Background()
	l := static.NewLayer(testimage.Layer{testimage.File("bin/sh", "#!")}.Tar(), types.OCIUncompressedLayer)
	base, err := testimage.Image(v1.Config{Cmd: []string{"bash"}, Env: []string{"PATH=/bin"}}, l)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := testimage.WriteOCI(filepath.Join(dir, "base"), "base", base); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cal")
	if err := writeCalibrationImage(ctx, filepath.Join(dir, "base"), out); err != nil {
		t.Fatal(err)
	}
	img, err := readImage(ctx, "oci:"+out)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/bin/sh", "-c", "echo ready"}; !slices.Equal(cf.Config.Entrypoint, want) || cf.Config.Cmd != nil || !slices.Equal(cf.Config.Env, []string{"PATH=/bin"}) {
		t.Errorf("config %+v: want entrypoint %q, no cmd, the base's env", cf.Config, want)
	}
	got, _ := img.Layers()
	want, _ := base.Layers()
	if len(got) != len(want) {
		t.Fatalf("%d layers, want %d", len(got), len(want))
	}
	for i := range got {
		g, _ := got[i].Digest()
		w, _ := want[i].Digest()
		if g != w {
			t.Errorf("layer %d: %s, want the base's %s", i, g, w)
		}
	}
	bcf, _ := base.ConfigFile()
	if !slices.EqualFunc(cf.History, bcf.History, func(a, b v1.History) bool { return a.CreatedBy == b.CreatedBy && a.EmptyLayer == b.EmptyLayer }) {
		t.Errorf("history %+v, want the base's %+v", cf.History, bcf.History)
	}
}
