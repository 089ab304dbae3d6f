package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/coldstart-dev/coldstart/optimize/report"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// run runs the CLI in-process and returns its output and exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globals{stdout: &out, stderr: &errb}
	root := newRootWith(g)
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		errb.WriteString("coldstart: " + message(err) + "\n")
		return out.String(), errb.String(), exitCode(err)
	}
	return out.String(), errb.String(), 0
}

// layoutWith writes an OCI layout whose one image has a layer with exactly
// the bytes blob, of media type mt.
func layoutWith(t *testing.T, blob []byte, mt types.MediaType) (dir string, digest string) {
	t.Helper()
	l := static.NewLayer(blob, mt)
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: l})
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	dir = t.TempDir()
	if err := testimage.WriteOCI(dir, "", img); err != nil {
		t.Fatal(err)
	}
	d, _ := l.Digest()
	return dir, d.String()
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInputsGiveClearErrors(t *testing.T) {
	cases := []struct {
		fixture string
		mt      types.MediaType
		want    string
	}{
		{"bad-corrupt.tar.gz", types.OCILayer, "corrupt"},
		{"bad-truncated.tar.zst", types.OCILayerZStd, "corrupt"},
		{"bad-truncated.tar", types.OCIUncompressedLayer, "truncated"},
		{"bad-notatar.bin", types.OCIUncompressedLayer, "not a tar"},
		{"bad-dotdot.tar", types.OCIUncompressedLayer, "climbs out of the layer root"},
		{"bad-absolute.tar", types.OCIUncompressedLayer, "absolute path"},
		{"base.tar", "application/vnd.example.unknown", "unknown layer media type"},
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			dir, digest := layoutWith(t, fixture(t, tc.fixture), tc.mt)
			_, stderr, code := run(t, "analyze", "oci:"+dir)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 {
				t.Errorf("want a one-line error, got %q", stderr)
			}
			for _, want := range []string{"oci:" + dir, digest, tc.want} {
				if !strings.Contains(stderr, want) {
					t.Errorf("error %q does not name %q", stderr, want)
				}
			}
		})
	}
}

func TestBrokenLayouts(t *testing.T) {
	dir, digest := layoutWith(t, fixture(t, "base.tar"), types.OCIUncompressedLayer)
	blob := filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
	t.Run("digest mismatch", func(t *testing.T) {
		b, _ := os.ReadFile(blob)
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(blob, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := run(t, "analyze", "oci:"+dir)
		if code != 1 || !strings.Contains(stderr, digest) || !strings.Contains(stderr, "digest") {
			t.Errorf("exit %d, stderr %q: want the layer digest and a digest mismatch", code, stderr)
		}
	})
	t.Run("missing blob", func(t *testing.T) {
		if err := os.Remove(blob); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := run(t, "analyze", "oci:"+dir)
		if code != 1 || !strings.Contains(stderr, digest) {
			t.Errorf("exit %d, stderr %q: want the missing digest", code, stderr)
		}
	})
	t.Run("usage", func(t *testing.T) {
		_, stderr, code := run(t, "analyze", "docker-daemon:x")
		if code != 2 || !strings.Contains(stderr, "docker-daemon") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		_, _, code = run(t, "analyze", "--format", "yaml", "oci:"+dir)
		if code != 2 {
			t.Errorf("bad --format: exit %d, want 2", code)
		}
	})
}

// TestLegitimateOddities: what real images contain is not an error.
func TestLegitimateOddities(t *testing.T) {
	for _, name := range []string{"duplicate.tar", "dotslash.tar", "special.tar", "hardlink.tar", "symlink.tar"} {
		t.Run(name, func(t *testing.T) {
			dir, _ := layoutWith(t, fixture(t, name), types.OCIUncompressedLayer)
			out, stderr, code := run(t, "analyze", "--format", "json", "oci:"+dir)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var a struct{ Layers []json.RawMessage }
			if err := json.Unmarshal([]byte(out), &a); err != nil || len(a.Layers) != 1 {
				t.Fatalf("output %q: %v", out, err)
			}
		})
	}
}

// TestAnalyzeJSONWaste: analyze reports exactly the wasted bytes of the
// reference applier, on layered images it has never seen.
func TestAnalyzeJSONWaste(t *testing.T) {
	var tars [][]byte
	var ls []v1.Layer
	for _, name := range []string{"base.tar", "whiteout.tar", "opaque.tar", "overwrite.tar", "chmod.tar", "dir-to-file.tar"} {
		b := fixture(t, name)
		tars = append(tars, b)
		ls = append(ls, static.NewLayer(b, types.OCIUncompressedLayer))
	}
	want, err := testimage.WastedBytes(tars...)
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Image(v1.Config{}, ls...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := testimage.WriteOCI(dir, "app", img); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "analyze", "--format", "json", "oci:"+dir+":app")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var a struct {
		WastedBytes int64   `json:"wastedBytes"`
		TotalSize   int64   `json:"totalSize"`
		Efficiency  float64 `json:"efficiency"`
		Layers      []struct {
			Digest           string `json:"digest"`
			Size             int64  `json:"size"`
			UncompressedSize int64  `json:"uncompressedSize"`
			Files            int    `json:"files"`
			WastedBytes      int64  `json:"wastedBytes"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatal(err)
	}
	if want == 0 || a.WastedBytes != want {
		t.Errorf("wastedBytes = %d, reference %d", a.WastedBytes, want)
	}
	if len(a.Layers) != len(tars) || a.Efficiency <= 0 || a.Efficiency >= 1 || a.TotalSize == 0 {
		t.Errorf("unexpected analysis: %s", out)
	}
}

// TestForeignLayer: a non-distributable layer is reported and left alone.
func TestForeignLayer(t *testing.T) {
	dir, digest := layoutWith(t, fixture(t, "base.tar"), types.OCIRestrictedLayer)
	out, stderr, code := run(t, "analyze", "--format", "json", "oci:"+dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var a struct {
		ForeignLayers int `json:"foreignLayers"`
		Layers        []struct {
			Digest  string `json:"digest"`
			Foreign bool   `json:"foreign"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatal(err)
	}
	if a.ForeignLayers != 1 || len(a.Layers) != 1 || !a.Layers[0].Foreign || a.Layers[0].Digest != digest {
		t.Errorf("foreign layer not reported: %s", out)
	}
	dst := t.TempDir()
	if _, stderr, code := run(t, "optimize", "oci:"+dir, "oci:"+dst); code != 0 {
		t.Fatalf("optimize: exit %d: %s", code, stderr)
	}
}

// TestLimits: a layer past --max-layer-size or --max-entries is a clear
// error that names the layer.
func TestLimits(t *testing.T) {
	dir, digest := layoutWith(t, fixture(t, "base.tar"), types.OCIUncompressedLayer)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-layer-size", "4KiB"}, "too large"},
		{[]string{"--max-entries", "3"}, "too many entries"},
	} {
		_, stderr, code := run(t, append(append([]string{"analyze"}, tc.args...), "oci:"+dir)...)
		if code != 1 || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, digest) {
			t.Errorf("%v: exit %d, stderr %q: want %q naming %s", tc.args, code, stderr, tc.want, digest)
		}
	}
	if _, _, code := run(t, "analyze", "--max-layer-size", "lots", "oci:"+dir); code != 2 {
		t.Errorf("bad --max-layer-size: exit %d, want 2", code)
	}
}

// TestReportRates: --rates takes the model's rates from a file, and names
// the file and the field it cannot use.
func TestReportRates(t *testing.T) {
	dir, _ := layoutWith(t, fixture(t, "base.tar"), types.OCIUncompressedLayer)
	estimate := func(args ...string) (float64, report.Rates) {
		t.Helper()
		out, stderr, code := run(t, append([]string{"report", "--format", "json", "--network", "100Mbit,10ms", "oci:" + dir}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var r report.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r.Estimates[0].FullPullSeconds, r.Rates
	}
	before, _ := estimate()
	f := filepath.Join(t.TempDir(), "node.json")
	if err := os.WriteFile(f, []byte(`{"runtimeStartSeconds": 3, "containerStartSeconds": 3.5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	after, rates := estimate("--rates", f)
	if rates.RuntimeStart != 3 || rates.ContainerStart != 3.5 || rates.LazyMount != report.DefaultRates.LazyMount {
		t.Errorf("rates %+v: want the file's two fields over the defaults", rates)
	}
	if d := after - before; d < 3.5-report.DefaultRates.ContainerStart-0.01 || d > 3.5-report.DefaultRates.ContainerStart+0.01 {
		t.Errorf("full pull %.3f s with --rates, %.3f s without: want the container's start %.2f s longer", after, before, 3.5-report.DefaultRates.ContainerStart)
	}
	if err := os.WriteFile(f, []byte(`{"lazyMountSeconds": -1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "report", "--rates", f, "oci:"+dir)
	if code != 2 || !strings.Contains(stderr, f) || !strings.Contains(stderr, "lazyMountSeconds") {
		t.Errorf("exit %d, stderr %q: want 2, the file and the field named", code, stderr)
	}
}
