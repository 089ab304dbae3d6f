package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/imageref"
	"github.com/coldstart-dev/coldstart/internal/faultproxy"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// copyImage copies an image between two references with the library.
func copyImage(t *testing.T, from, to string) {
	t.Helper()
	src, err := imageref.Parse(from)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := imageref.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	a, err := imageref.Read(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if err := imageref.Write(context.Background(), dst, a); err != nil {
		t.Fatal(err)
	}
}

// imageLayers reads ref (a single image) with the library and returns its
// layer digests.
func imageLayers(t *testing.T, ref string) []string {
	t.Helper()
	r, err := imageref.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	a, err := imageref.Read(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := a.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var ds []string
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d.String())
	}
	return ds
}

// tagDigest asks the registry directly (not through a proxy) what repoTag
// points at; "" when it does not exist.
func tagDigest(t *testing.T, reg *registrytest.Distribution, repoTag string) string {
	t.Helper()
	ref, err := name.ParseReference(reg.Ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest.String()
}

// jsonDigest returns the output digest of an optimize --format json run.
func jsonDigest(t *testing.T, stdout string) string {
	t.Helper()
	var res struct{ Digest string }
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Digest == "" {
		t.Fatalf("optimize output %q: %v", stdout, err)
	}
	return res.Digest
}

// TestSameDestination: optimize refuses to write over its source unless
// --overwrite is given, whatever the spelling of the destination; with
// --overwrite, the destination ends up holding the optimized image.
func TestSameDestination(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo image")
	}
	src := demoLayout(t)
	dir := filepath.Dir(src)
	if err := os.Symlink(src, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "demo.tar")
	copyImage(t, "oci:"+src, "docker-archive:"+archive+":demo:v1")
	tagged := filepath.Join(dir, "tagged")
	copyImage(t, "oci:"+src, "oci:"+tagged+":v1")

	for _, tc := range []struct{ name, src, dst string }{
		{"registry", "127.0.0.1:9/app:v1", "docker://127.0.0.1:9/app:v1"},
		{"registry default tag", "127.0.0.1:9/app", "127.0.0.1:9/app:latest"},
		{"oci", "oci:" + src, "oci:" + src + "/"},
		{"oci through a link", "oci:" + src, "oci:" + filepath.Join(dir, "link")},
		{"oci relative", "oci:" + src, "oci:" + mustRel(t, src)},
		{"oci untagged read of a tag", "oci:" + tagged, "oci:" + tagged + ":v1"},
		{"docker-archive", "docker-archive:" + archive, "docker-archive:" + archive + ":other:v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, dir)
			_, stderr, code := run(t, "optimize", "--no-cache", tc.src, tc.dst)
			if code != 2 || !strings.Contains(stderr, "is SRC: give --overwrite") {
				t.Errorf("exit %d, stderr %q: want a usage error asking for --overwrite", code, stderr)
			}
			if after := snapshot(t, dir); !bytes.Equal(before, after) {
				t.Error("the refused run changed files")
			}
		})
	}

	// Different tags of one layout are different destinations.
	if _, stderr, code := run(t, "optimize", "--no-cache", "oci:"+tagged+":v1", "oci:"+tagged+":v2"); code != 0 {
		t.Fatalf("v1 -> v2 in one layout: exit %d: %s", code, stderr)
	}

	// With --overwrite the optimized image replaces the source.
	for _, tc := range []struct{ name, ref string }{
		{"oci", "oci:" + tagged + ":v1"},
		{"docker-archive", "docker-archive:" + archive},
	} {
		t.Run("overwrite "+tc.name, func(t *testing.T) {
			old := imageLayers(t, tc.ref)
			out, stderr, code := run(t, "optimize", "--overwrite", "--format", "json", tc.ref, tc.ref)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			// A docker archive stores no manifest, so compare layers.
			var res struct {
				Layers []struct{ OutputDigest, Action string }
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, l := range res.Layers {
				if l.Action != "dropped" { // no layer in the output
					want = append(want, l.OutputDigest)
				}
			}
			if got := imageLayers(t, tc.ref); !slices.Equal(got, want) || slices.Equal(got, old) {
				t.Errorf("%s has layers %v, want the optimized %v (was %v)", tc.ref, got, want, old)
			}
			if strings.HasPrefix(tc.ref, "docker-archive:") {
				verifyArchive(t, "oci:"+src, tc.ref)
			} else if _, stderr, code := run(t, "verify", "oci:"+src, tc.ref); code != 0 {
				t.Errorf("verify against the original: exit %d: %s", code, stderr)
			}
		})
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".demo.tar.tmp-*")); len(tmp) != 0 {
		t.Errorf("temporary archives left: %v", tmp)
	}
}

func mustRel(t *testing.T, p string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	r, err := filepath.Rel(wd, p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// snapshot is every file's path, size and content under dir.
func snapshot(t *testing.T, dir string) []byte {
	t.Helper()
	var b bytes.Buffer
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + "\n")
		if d.Type().IsRegular() {
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestRegistryFaultsFromCLI: optimize rides out transient registry faults
// while reading and writing, and reports a persistent one naming the blob,
// without moving the destination tag.
func TestRegistryFaultsFromCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo image and starts a registry")
	}
	reg := registrytest.StartDistribution(t)
	p := faultproxy.New(t, reg.Host)
	src := demoLayout(t)
	copyImage(t, "oci:"+src, reg.Ref("src:v1"))
	copyImage(t, "oci:"+src, reg.Ref("dst:v1"))

	// A download reset in the middle, a 503 on an upload and one on the
	// manifest: retried, and the run succeeds.
	big := regexp.MustCompile(regexp.QuoteMeta(biggestBlob(t, src)) + "$")
	// The big layer is read more than once (index, profile, rewrite), and a
	// reader may stop early: break up to three of its downloads.
	p.Inject(faultproxy.Rule{Kind: faultproxy.KindBlobGet, Path: big, Times: 3, Fault: faultproxy.ResetAfter(100 << 10)})
	p.Inject(faultproxy.Rule{Kind: faultproxy.KindBlobPatch, Fault: faultproxy.Status(503)})
	p.Inject(faultproxy.Rule{Kind: faultproxy.KindManifestPut, Fault: faultproxy.Status(503)})
	out, stderr, code := run(t, "optimize", "--no-cache", "--format", "json", p.Ref("src:v1"), p.Ref("dst:v1"))
	if code != 0 {
		t.Fatalf("exit %d: %s\n%v", code, stderr, p.Requests())
	}
	want := jsonDigest(t, out)
	if got := tagDigest(t, reg, "dst:v1"); got != want {
		t.Errorf("dst:v1 is %s, want %s", got, want)
	}
	resumed := false
	var bigReqs []faultproxy.Request
	for _, r := range p.Requests() {
		if r.Kind == faultproxy.KindBlobGet && big.MatchString(r.Path) {
			bigReqs = append(bigReqs, r)
			resumed = resumed || (strings.HasPrefix(r.Range, "bytes=") && r.Status == http.StatusPartialContent)
		}
	}
	if !resumed {
		t.Errorf("no broken download was resumed:\n%v", bigReqs)
	}

	// A registry that refuses uploads from the start: refused before any
	// work, in a one-line error that says so.
	p.ClearRules()
	copyImage(t, "oci:"+src, reg.Ref("dst:v2"))
	old := tagDigest(t, reg, "dst:v2")
	p.ResetCounts()
	p.Inject(faultproxy.Rule{Kind: faultproxy.KindBlobPost, Times: faultproxy.Always, Fault: faultproxy.Status(http.StatusForbidden)})
	_, stderr, code = run(t, "optimize", "--no-cache", "--to", "zstd", p.Ref("src:v1"), p.Ref("dst:v2"))
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	for _, w := range []string{"cannot write " + p.Ref("dst:v2"), "DENIED", "HTTP 403"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not say %q", stderr, w)
		}
	}
	if n := p.Count(faultproxy.KindBlobGet); n != 0 {
		t.Errorf("the source was read (%d blob GETs) before the destination was found unwritable", n)
	}

	// A registry that takes the check's upload and refuses the others: a
	// one-line error naming a blob of the output, and the tag stays.
	p.ClearRules()
	p.Inject(faultproxy.Rule{Kind: faultproxy.KindBlobPost, Nth: 2, Times: faultproxy.Always, Fault: faultproxy.Status(http.StatusForbidden)})
	_, stderr, code = run(t, "optimize", "--no-cache", "--to", "zstd", p.Ref("src:v1"), p.Ref("dst:v2"))
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	for _, w := range []string{"writing " + p.Ref("dst:v2"), "uploading blob sha256:", "DENIED", "HTTP 403"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not say %q", stderr, w)
		}
	}
	if n := strings.Count(strings.TrimSpace(stderr), "\n"); n != 0 {
		t.Errorf("want a one-line error, got %d lines", n+1)
	}
	if got := tagDigest(t, reg, "dst:v2"); got != old {
		t.Errorf("dst:v2 moved to %s after a failed run", got)
	}
}

// biggestBlob returns the digest of the biggest blob of a layout.
func biggestBlob(t *testing.T, dir string) string {
	t.Helper()
	blobs, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	var biggest string
	var size int64
	for _, b := range blobs {
		if fi, err := os.Stat(b); err == nil && fi.Size() > size {
			biggest, size = b, fi.Size()
		}
	}
	if biggest == "" {
		t.Fatalf("no blobs in %s", dir)
	}
	return "sha256:" + filepath.Base(biggest)
}

// TestCredentialsNeverShown: with --debug, through failures of every kind,
// neither the password from the Docker config nor any token the registry
// issued appears in the output.
func TestCredentialsNeverShown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo image and starts a registry")
	}
	const user, password = "ci-robot", "Sup3r-S3cret-Passw0rd"
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	reg := registrytest.StartDistribution(t)
	src := demoLayout(t)
	copyImage(t, "oci:"+src, reg.Ref("src:v1"))

	for _, mode := range []string{"basic", "token"} {
		t.Run(mode, func(t *testing.T) {
			opt := faultproxy.WithBasicAuth(user, password)
			if mode == "token" {
				opt = faultproxy.WithTokenAuth(user, password)
			}
			p := faultproxy.New(t, reg.Host, opt)
			cfg := t.TempDir()
			conf := `{"auths":{"` + p.Host + `":{"auth":"` + basic + `"}}}`
			if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("DOCKER_CONFIG", cfg)
			t.Setenv("HOME", t.TempDir())

			var all strings.Builder
			try := func(wantCode int, args ...string) string {
				t.Helper()
				stdout, stderr, code := run(t, append([]string{"--debug"}, args...)...)
				if code != wantCode {
					t.Errorf("%v: exit %d, want %d: %s", args, code, wantCode, stderr)
				}
				all.WriteString(stdout + stderr)
				return stderr
			}

			// Success, with a retried 503 on the way, and, with tokens, tokens
			// that expire (Basic credentials that stop working do not come
			// back; see below).
			p.Inject(faultproxy.Rule{Kind: faultproxy.KindManifestPut, Fault: faultproxy.Status(503)})
			if mode == "token" {
				p.Inject(faultproxy.Rule{Kind: faultproxy.KindBlobGet, Nth: 2, Fault: faultproxy.Expire()})
				p.Inject(faultproxy.Rule{Kind: faultproxy.KindBlobPatch, Nth: 2, Fault: faultproxy.Expire()})
			}
			try(0, "optimize", "--no-cache", p.Ref("src:v1"), p.Ref("dst:v1"))
			if p.Count(faultproxy.KindBlobGet) == 0 {
				t.Fatal("nothing read through the proxy")
			}

			// A registry that refuses the push.
			p.ClearRules()
			p.Inject(faultproxy.Rule{Kind: faultproxy.KindManifestPut, Times: faultproxy.Always, Fault: faultproxy.Status(http.StatusForbidden)})
			stderr := try(1, "optimize", "--no-cache", "--to", "gzip", p.Ref("src:v1"), p.Ref("dst:v2"))
			if !strings.Contains(stderr, "uploading manifest") {
				t.Errorf("error does not name the manifest: %s", stderr)
			}

			// Credentials that stop working in the middle of a read.
			p.ClearRules()
			p.Inject(faultproxy.Rule{Kind: faultproxy.KindBlobGet, Nth: 2, Times: faultproxy.Always, Fault: faultproxy.Expire()})
			if mode == "token" {
				p.Inject(faultproxy.Rule{Kind: faultproxy.KindToken, Nth: 2, Times: faultproxy.Always, Fault: faultproxy.Status(http.StatusUnauthorized)})
			}
			try(1, "analyze", p.Ref("src:v1"))
			try(1, "verify", p.Ref("src:v1"), p.Ref("dst:v1"))

			// Wrong credentials from the start.
			p.ClearRules()
			bad := `{"auths":{"` + p.Host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte(user+":wrong-"+password)) + `"}}}`
			if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(bad), 0o600); err != nil {
				t.Fatal(err)
			}
			stderr = try(1, "analyze", p.Ref("src:v1"))
			if !strings.Contains(stderr, "UNAUTHORIZED") {
				t.Errorf("refused credentials: %s", stderr)
			}

			text := all.String()
			if os.Getenv("COLDSTART_SHOW_OUTPUT") != "" {
				t.Log(text)
			}
			if !strings.Contains(text, "level=DEBUG") {
				t.Error("--debug printed no debug messages")
			}
			secrets := append([]string{password, basic, user + ":" + password, "wrong-" + password}, p.Tokens()...)
			if mode == "token" && len(p.Tokens()) < 3 {
				t.Errorf("only %d tokens issued; the test did not exercise refreshes", len(p.Tokens()))
			}
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("output shows the secret %q:\n%s", s, text)
				}
			}
		})
	}
}
