package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/demo"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var (
	demoOnce sync.Once
	demoImg  v1.Image
	demoErr  error
)

// demoLayout writes the demo image (built once per run) into a new OCI
// layout.
func demoLayout(t *testing.T) string {
	t.Helper()
	// The filler files 16 times smaller: the CLI tests need the demo's
	// shape (waste, a start-up set, a real binary), not its 42 MiB.
	demoOnce.Do(func() { demoImg, demoErr = demo.Build(context.Background(), demo.WithScale(16)) })
	if demoErr != nil {
		t.Fatal(demoErr)
	}
	dir := filepath.Join(t.TempDir(), "src")
	if err := testimage.WriteOCI(dir, "", demoImg); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestOptimizeToRealRegistry: the output written to Debian's docker-registry
// is read back by skopeo inspect and by estargz.Open, and verifies.
func TestOptimizeToRealRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo image and starts a registry")
	}
	reg := registrytest.StartDistribution(t)
	src := demoLayout(t)
	for _, to := range []string{"estargz", "zstdchunked"} {
		t.Run(to, func(t *testing.T) {
			dst := reg.Ref("demo:" + to)
			out, stderr, code := run(t, "optimize", "--to", to, "--format", "json", "oci:"+src, dst)
			if code != 0 {
				t.Fatalf("optimize: exit %d: %s", code, stderr)
			}
			var res struct {
				Digest string `json:"digest"`
				Layers []struct {
					InputDigest, OutputDigest, Action, Reason string
				} `json:"layers"`
				BytesBefore, BytesAfter, RemovedBytes int64
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("json: %v\n%s", err, out)
			}
			if res.Digest == "" || len(res.Layers) == 0 || res.RemovedBytes == 0 || res.BytesAfter >= res.BytesBefore {
				t.Errorf("unexpected result: %s", out)
			}
			if _, stderr, code := run(t, "verify", "oci:"+src, dst); code != 0 {
				t.Fatalf("verify: exit %d: %s", code, stderr)
			}
			skopeoInspect(t, dst, res.Digest)
			// estargz opens every layer straight from the registry.
			ref, err := name.ParseReference(dst, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(ref)
			if err != nil {
				t.Fatal(err)
			}
			ls, _ := img.Layers()
			for _, l := range ls {
				rc, err := l.Compressed()
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				mt, _ := l.MediaType()
				var opts []estargz.OpenOption
				if mt == types.OCILayerZStd {
					opts = append(opts, zstdOpenOption())
				}
				if _, err := estargz.Open(io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b))), opts...); err != nil {
					t.Errorf("estargz.Open(%s layer): %v", mt, err)
				}
			}
		})
	}
}

func skopeoInspect(t *testing.T, ref, wantDigest string) {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		registrytest.SkipOrFail(t, "skopeo not installed (apt-get install skopeo)")
	}
	cmd := exec.Command("skopeo", "inspect", "--tls-verify=false", "docker://"+ref)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	var info struct {
		Digest string
		Layers []string
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("skopeo output: %v\n%s", err, out)
	}
	if info.Digest != wantDigest || len(info.Layers) == 0 {
		t.Errorf("skopeo sees digest %s with %d layers, want %s", info.Digest, len(info.Layers), wantDigest)
	}
}

// verifyArchive checks a docker archive of optimized eStargz layers against
// its source: the same filesystem in every view, and the one thing a docker
// archive cannot hold missing: the TOC digest annotation of every eStargz
// layer. Optimizing the archive again puts the annotations back.
func verifyArchive(t *testing.T, src, archive string) {
	t.Helper()
	out, stderr, code := run(t, "verify", "--format", "json", src, archive)
	if code != 1 {
		t.Fatalf("verify of an archive of eStargz layers: exit %d, want 1 (the annotations are gone): %s %s", code, out, stderr)
	}
	var v struct {
		Images []struct{ Differences []string }
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("verify output: %v\n%s", err, out)
	}
	for _, iv := range v.Images {
		for _, d := range iv.Differences {
			if !strings.Contains(d, "without the containerd.io/snapshot/stargz/toc.digest annotation") {
				t.Errorf("verify of the archive: %s", d)
			}
		}
	}
	again := "oci:" + filepath.Join(t.TempDir(), "again")
	if _, stderr, code := run(t, "optimize", archive, again); code != 0 {
		t.Fatalf("optimizing the archive again: exit %d: %s", code, stderr)
	}
	if out, stderr, code := run(t, "verify", src, again); code != 0 {
		t.Errorf("verify after optimizing the archive again: exit %d: %s %s", code, out, stderr)
	}
}

// TestOptimizeDestinations: DST may be an OCI layout or a docker archive;
// a failed run leaves DST as it was.
func TestOptimizeDestinations(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo image")
	}
	src := demoLayout(t)
	archive := filepath.Join(t.TempDir(), "out.tar")
	if _, stderr, code := run(t, "optimize", "oci:"+src, "docker-archive:"+archive); code != 0 {
		t.Fatalf("optimize to archive: exit %d: %s", code, stderr)
	} else if !strings.Contains(stderr, "a docker archive drops layer annotations") {
		t.Errorf("no warning that the archive drops annotations: %q", stderr)
	}
	verifyArchive(t, "oci:"+src, "docker-archive:"+archive)
	// A failing optimize (the source layout loses a blob) leaves an existing
	// destination byte-identical and creates no new one.
	before, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	blobs, _ := filepath.Glob(filepath.Join(src, "blobs", "sha256", "*"))
	var biggest string
	var size int64
	for _, b := range blobs {
		if fi, err := os.Stat(b); err == nil && fi.Size() > size {
			biggest, size = b, fi.Size()
		}
	}
	if err := os.Truncate(biggest, size/2); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "optimize", "oci:"+src, "docker-archive:"+archive)
	if code == 0 {
		t.Fatal("optimize of a broken source succeeded")
	}
	if !strings.Contains(stderr, filepath.Base(biggest)) {
		t.Errorf("error %q does not name the broken blob", stderr)
	}
	after, _ := os.ReadFile(archive)
	if !bytes.Equal(before, after) {
		t.Error("failed run changed the destination archive")
	}
	fresh := filepath.Join(t.TempDir(), "new")
	if _, _, code := run(t, "optimize", "oci:"+src, "oci:"+fresh); code == 0 {
		t.Fatal("optimize of a broken source succeeded")
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("failed run created %s", fresh)
	}
}
