package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// needBuilder skips (or, with COLDSTART_REQUIRE_TOOLS=1, fails) tests that
// build images, saying why. Building the bench images is make bench's
// work (minutes, hundreds of MB in benchmarks/.work): they run with
// COLDSTART_BENCH_BUILD=1, as make bench-quick sets it.
func needBuilder(t *testing.T) {
	t.Helper()
	if os.Getenv("COLDSTART_BENCH_BUILD") != "1" {
		t.Skip("builds real images from the Debian mirror (minutes): run by make bench-quick, or set COLDSTART_BENCH_BUILD=1")
	}
	if testing.Short() {
		t.Skip("builds real images from the Debian mirror (slow); skipped with -short")
	}
	if os.Geteuid() != 0 {
		registrytest.SkipOrFail(t, "building images needs root (chroot, overlayfs, namespaces)")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		registrytest.SkipOrFail(t, "debootstrap not installed (apt-get install debootstrap)")
	}
}

// records collects log messages.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }
func (r *records) has(msg string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.msgs, msg)
}

// TestBuild builds the shell image for real (the debootstrap base comes
// from the default cache, made there on first use) and checks the layout.
func TestBuild(t *testing.T) {
	needBuilder(t)
	ctx := context.Background()
	var out bytes.Buffer
	dir, r, err := Image(ctx, "shell", WithRebuild(true), WithOutput(&out))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "shell" || !strings.HasSuffix(dir, "shell-"+imageKey(r.Key, baseKey((&options{}).baseOf(r)))) {
		t.Errorf("layout %s for recipe %s key %s", dir, r.Name, r.Key)
	}
	if !strings.Contains(out.String(), "== shell step 1: RUN /bin/sh -c apt-get update") {
		t.Errorf("step output not written:\n%.500s", out.String())
	}

	ref, err := imageref.Parse("oci:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := imageref.Read(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	img := a.Image
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1+len(r.Steps) {
		t.Fatalf("%d layers, want the base and one per step (%d)", len(layers), 1+len(r.Steps))
	}
	whiteouts := 0
	for _, l := range layers {
		mt, _ := l.MediaType()
		if mt != "application/vnd.oci.image.layer.v1.tar+gzip" {
			t.Errorf("layer media type %s", mt)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(filepath.Base(h.Name), whiteoutPrefix) {
				whiteouts++
			}
		}
		rc.Close()
	}
	if whiteouts == 0 {
		t.Error("no whiteouts, though a step deletes documentation of the base")
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(r.Config.Entrypoint, cf.Config.Entrypoint); d != "" {
		t.Errorf("entrypoint: %s", d)
	}
	if cf.Config.WorkingDir != r.Config.WorkingDir || !slices.Contains(cf.Config.Env, "PORT=8090") || !slices.Contains(cf.Config.Env, defaultEnv[0]) {
		t.Errorf("config %+v", cf.Config)
	}
	if _, ok := cf.Config.ExposedPorts["8090/tcp"]; !ok || cf.Config.Cmd != nil {
		t.Errorf("exposed ports %v cmd %v", cf.Config.ExposedPorts, cf.Config.Cmd)
	}
	if len(cf.History) != len(layers) || cf.History[3].CreatedBy != "COPY --chmod=0755 bin /app/bin" || !strings.HasPrefix(cf.History[0].CreatedBy, "debootstrap --variant=minbase bookworm ") {
		t.Errorf("history %+v", cf.History)
	}

	// The base layer is the base image's, byte for byte, and the manifest
	// names it.
	baseDir, err := BaseImage(ctx, "shell")
	if err != nil {
		t.Fatal(err)
	}
	bref, _ := imageref.Parse("oci:" + baseDir)
	ba, err := imageref.Read(ctx, bref)
	if err != nil {
		t.Fatal(err)
	}
	bl, _ := ba.Image.Layers()
	bd, _ := bl[0].Digest()
	if d, _ := layers[0].Digest(); len(bl) != 1 || d != bd {
		t.Errorf("bottom layer %s, base layer %s (of %d)", d, bd, len(bl))
	}
	m, _ := img.Manifest()
	if bdig, _ := ba.Image.Digest(); m.Annotations["org.opencontainers.image.base.digest"] != bdig.String() {
		t.Errorf("annotations %v, base digest %s", m.Annotations, bdig)
	}

	info, err := ReadInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Layers) != len(layers) || info.Duration <= 0 {
		t.Errorf("info %+v", info)
	}
	for i, l := range layers {
		d, _ := l.Digest()
		sz, _ := l.Size()
		if info.Layers[i].Digest != d || info.Layers[i].Size != sz {
			t.Errorf("info layer %d: %+v, image has %s %d", i, info.Layers[i], d, sz)
		}
	}

	// Unchanged recipe: from the cache, same layout.
	rec := &records{}
	again, _, err := Image(ctx, "shell", WithLogger(slog.New(rec)))
	if err != nil {
		t.Fatal(err)
	}
	if again != dir || !rec.has("image cached") || rec.has("building image") {
		t.Errorf("second build: %s (first %s), log %v", again, dir, rec.msgs)
	}

	// And it runs.
	res, err := Verify(ctx, dir, r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Output, "ready") || res.Ready <= 0 {
		t.Errorf("verify: %+v", res)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "tmp", "*shell-*"))
	if len(left) != 0 {
		t.Errorf("temporary trees left: %v", left)
	}
}

// Recipes that fail say where: a failing step names the step and shows its
// output; an image that never gets ready is reported with its output.
func TestBuildFailures(t *testing.T) {
	needBuilder(t)
	ctx := context.Background()
	fsys := fstest.MapFS{
		"badstep/recipe.json": {Data: []byte(`{
  "steps": [{"run": "echo first > /first"}, {"run": "echo about to fail; exit 3"}],
  "config": {"entrypoint": ["true"]},
  "ready": {"line": "never"}
}`)},
		"exits/recipe.json": {Data: []byte(`{
  "steps": [
    {"copy": "run.sh", "to": "/usr/local/bin/", "mode": "0755"},
    {"run": "mkdir -p /data && echo hello > /data/greeting && rm /etc/motd"},
    {"run": "grep -q fake-ca \"$NODE_EXTRA_CA_CERTS\" && grep -q fake-ca \"$npm_config_cafile\" && ! touch /mnt/x 2>/dev/null && echo seen > /ca-seen"}
  ],
  "config": {"entrypoint": ["run.sh"], "cmd": ["arg1"], "workingDir": "/data", "user": "nobody", "env": ["GREETING=hi"]},
  "ready": {"line": "^never$", "timeout": "20s"}
}`)},
		"exits/run.sh": {Data: []byte("#!/bin/sh\necho \"$GREETING $(id -un) in $(pwd) with $1: $(cat greeting)\"\nexit 4\n")},
	}
	_, _, err := Image(ctx, "badstep", WithRecipes(fsys), WithRebuild(true))
	if !errors.Is(err, ErrStepFailed) || !strings.Contains(err.Error(), "step 2") || !strings.Contains(err.Error(), "about to fail") {
		t.Errorf("failing step: %v", err)
	}

	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nfake-ca\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, r, err := Image(ctx, "exits", WithRecipes(fsys), WithRebuild(true), WithBuildCA(ca))
	if err != nil {
		t.Fatal(err)
	}
	defer removeTree(dir)
	_, err = Verify(ctx, dir, r)
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "hi nobody in /data with arg1: hello") {
		t.Errorf("exiting container: %v", err)
	}
	// The image has the copied script and a whiteout for /etc/motd.
	ref, _ := imageref.Parse("oci:" + dir)
	a, err := imageref.Read(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := a.Image.Layers()
	names := func(l v1.Layer) map[string]*tar.Header {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		out := map[string]*tar.Header{}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				return out
			}
			out[h.Name] = h
		}
	}
	if h := names(layers[1])["usr/local/bin/run.sh"]; h == nil || h.Mode != 0o755 || h.Uid != 0 || !h.ModTime.Equal(contextTime) {
		t.Errorf("copied script: %+v", h)
	}
	if h := names(layers[2])["etc/.wh.motd"]; h == nil {
		t.Error("no whiteout for /etc/motd")
	}
	// The build CA was there, read-only, and is not in the image.
	caLayer := names(layers[3])
	if caLayer["ca-seen"] == nil {
		t.Errorf("the CA step left %v", caLayer)
	}
	for i, l := range layers[1:] {
		for name := range names(l) {
			if strings.HasPrefix(name, "mnt/") {
				t.Errorf("layer %d holds %s", i+1, name)
			}
		}
	}
}
