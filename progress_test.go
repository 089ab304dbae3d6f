package coldstart_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coldstart-dev/coldstart"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/optimize"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestProgress: Optimize reports, per layer numbered as the result numbers
// them, the compressed bytes read of the source (pull), the tar bytes
// encoded (convert) and the compressed bytes written (push), whatever the
// destination; the output is the same with progress as without.
func TestProgress(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var adds []mutate.Addendum
	for i, l := range []testimage.Layer{
		{testimage.Dir("data", 0o755), testimage.File("data/a", strings.Repeat("a", 300_000)), testimage.File("data/gone", strings.Repeat("g", 100_000))},
		{testimage.Whiteout("data/gone"), testimage.File("data/b", strings.Repeat("b", 50_000))},
	} {
		cl, err := l.Compressed(compression.GZip)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		adds = append(adds, mutate.Addendum{Layer: cl})
	}
	img, err := testimage.ImageFrom(v1.ConfigFile{Config: v1.Config{Entrypoint: []string{"/data/a"}}}, adds...)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	if err := testimage.WriteOCI(src, "", img); err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	reg := registrytest.New(t)
	quiet, err := coldstart.Optimize(ctx, "oci:"+src, "oci:"+filepath.Join(dir, "quiet"), coldstart.WithCompare(false))
	if err != nil {
		t.Fatal(err)
	}
	quiet.Close()
	for _, dst := range []string{"oci:" + filepath.Join(dir, "out"), reg.Ref("app:esgz"), "docker-archive:" + filepath.Join(dir, "out.tar")} {
		t.Run(dst[:strings.IndexAny(dst, ":")], func(t *testing.T) {
			var mu sync.Mutex
			last := map[optimize.Phase]map[int]optimize.Progress{}
			res, err := coldstart.Optimize(ctx, "oci:"+src, dst, coldstart.WithCompare(false), coldstart.WithOptimizeOptions(optimize.WithCache(nil)),
				coldstart.WithProgress(func(p optimize.Progress) {
					mu.Lock()
					defer mu.Unlock()
					if last[p.Phase] == nil {
						last[p.Phase] = map[int]optimize.Progress{}
					}
					if prev, ok := last[p.Phase][p.Layer]; ok && p.Done < prev.Done {
						t.Errorf("%s layer %d went back from %d to %d bytes", p.Phase, p.Layer, prev.Done, p.Done)
					}
					last[p.Phase][p.Layer] = p
				}))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Close()
			if res.Digest != quiet.Digest {
				t.Errorf("output %s with progress, %s without", res.Digest, quiet.Digest)
			}
			layers := res.Images[0].Layers
			for i, l := range layers {
				in, _ := ls[i].Size()
				pull, conv, push := last[optimize.PhasePull][i], last[optimize.PhaseConvert][i], last[optimize.PhasePush][i]
				if pull.Done != in || pull.Total != in || pull.Digest != l.InputDigest {
					t.Errorf("layer %d: pull %+v, want %d of %d compressed bytes of %s", i, pull, in, in, l.InputDigest)
				}
				if conv.Total <= 0 || conv.Done != conv.Total || conv.Digest != l.InputDigest {
					t.Errorf("layer %d: convert %+v, want every tar byte", i, conv)
				}
				if push.Done != l.SizeAfter || push.Total != l.SizeAfter || push.Digest != l.OutputDigest {
					t.Errorf("layer %d: push %+v, want %d compressed bytes of %s", i, push, l.SizeAfter, l.OutputDigest)
				}
			}
			for phase, m := range last {
				if len(m) != len(layers) {
					t.Errorf("%s reported for layers %v, want 0..%d", phase, m, len(layers)-1)
				}
			}
		})
	}
}
