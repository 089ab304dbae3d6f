package imageref

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestRemoteRoundTrip(t *testing.T) {
	reg := registrytest.New(t)
	img := testImage(t, 1, plat("linux/amd64"))
	tree := newTestTree(t)

	mustWrite(t, reg.Ref("app:single"), &Artifact{Image: img})
	mustWrite(t, "docker://"+reg.Ref("app:multi"), &Artifact{Index: tree.idx})

	got := mustRead(t, reg.Ref("app:single"))
	if got.IsIndex() || digestOf(t, got.Image) != digestOf(t, img) {
		t.Fatalf("single: got %+v", got)
	}
	if err := validate.Image(got.Image); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	multi := mustRead(t, "docker://"+reg.Ref("app:multi"))
	if !multi.IsIndex() || !equalBytes(rawOf(t, multi.Index), rawOf(t, tree.idx)) {
		t.Fatal("multi: index not byte-identical")
	}
	if err := validate.Index(multi.Index); err != nil {
		t.Fatalf("validate.Index: %v", err)
	}
	byDigest := mustRead(t, reg.Ref("app@"+digestOf(t, tree.idx).String()))
	if digestOf(t, byDigest.Index) != digestOf(t, tree.idx) {
		t.Error("read by digest")
	}

	arm := mustRead(t, reg.Ref("app:multi"), WithPlatforms(spec(t, "linux/arm/v6")))
	if arm.IsIndex() || digestOf(t, arm.Image) != digestOf(t, tree.images["linux/arm/v6"]) {
		t.Error("platform selection from a registry index")
	}
	if _, err := tryRead(reg.Ref("app:single"), WithPlatforms(spec(t, "linux/arm64"))); !errors.Is(err, ErrPlatformMismatch) {
		t.Errorf("mismatching single image: %v", err)
	}
	if _, err := tryRead(reg.Ref("app:missing")); err == nil || !contains(err.Error(), reg.Ref("app:missing")) {
		t.Errorf("missing tag: %v", err)
	}

	// Registry -> layout -> registry keeps the digest.
	dir := t.TempDir()
	mustWrite(t, "oci:"+dir+":m", multi)
	mustWrite(t, reg.Ref("copy:m"), mustRead(t, "oci:"+dir+":m"))
	if d := digestOf(t, mustRead(t, reg.Ref("copy:m")).Index); d != digestOf(t, tree.idx) {
		t.Errorf("copy digest %s, want %s", d, digestOf(t, tree.idx))
	}
	// Registry -> archive.
	tarPath := dir + ".tar"
	mustWrite(t, "docker-archive:"+tarPath+":app:single", got)
	if d := digestOf(t, mustRead(t, "docker-archive:"+tarPath).Image); d != digestOf(t, img) {
		t.Errorf("archive digest %s, want %s", d, digestOf(t, img))
	}

	// A digest destination must match.
	if err := tryWrite(reg.Ref("app@"+digestOf(t, img).String()), &Artifact{Index: tree.idx}); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("digest destination mismatch: %v", err)
	}
	mustWrite(t, reg.Ref("app@"+digestOf(t, img).String()), &Artifact{Image: img})
}

// TestRemoteWriteOrder checks the order ggcr uploads in: every blob of an
// image before its manifest, every child manifest before the index, and the
// tag last.
func TestRemoteWriteOrder(t *testing.T) {
	reg := registrytest.New(t)
	tree := newTestTree(t)
	mustWrite(t, reg.Ref("order:v1"), &Artifact{Index: tree.idx})

	reqs := reg.Requests()
	committed := map[string]int{} // digest -> position of its upload commit or manifest PUT
	for i, r := range reqs {
		switch {
		case r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/"):
			for kv := range strings.SplitSeq(r.Query, "&") {
				if d, ok := strings.CutPrefix(kv, "digest="); ok {
					committed[strings.ReplaceAll(d, "%3A", ":")] = i
				}
			}
		case r.Method == http.MethodPut && strings.Contains(r.Path, "/manifests/"):
			ref := r.Path[strings.LastIndex(r.Path, "/")+1:]
			committed[ref] = i
		}
	}
	pos := func(h v1.Hash) int {
		p, ok := committed[h.String()]
		if !ok {
			t.Fatalf("%s never uploaded; requests:\n%v", h, reqs)
		}
		return p
	}
	manifestPuts := 0
	for _, r := range reqs {
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/manifests/") {
			manifestPuts++
		}
	}
	if manifestPuts != 9 { // 7 images, the nested index by digest, the top index by tag
		t.Errorf("%d manifest PUTs, want 9:\n%v", manifestPuts, reqs)
	}
	tagPos, ok := committed["v1"]
	if !ok {
		t.Fatal("tag never written")
	}
	for i, r := range reqs {
		if r.Method == http.MethodPut && i > tagPos {
			t.Errorf("%s after the tag", r)
		}
	}
	checkImage := func(img v1.Image) {
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		mp := pos(digestOf(t, img))
		for _, d := range append(m.Layers, m.Config) {
			if bp := pos(d.Digest); bp > mp {
				t.Errorf("blob %s uploaded after its manifest %s", d.Digest, digestOf(t, img))
			}
		}
	}
	var checkIndex func(idx v1.ImageIndex, parentPos int)
	checkIndex = func(idx v1.ImageIndex, parentPos int) {
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range im.Manifests {
			if p := pos(d.Digest); p > parentPos {
				t.Errorf("child %s written after its index", d.Digest)
			}
			if d.MediaType.IsIndex() {
				child, _ := idx.ImageIndex(d.Digest)
				checkIndex(child, pos(d.Digest))
			} else {
				img, _ := idx.Image(d.Digest)
				checkImage(img)
			}
		}
	}
	checkIndex(tree.idx, tagPos)
}

// A registry write that fails part way leaves the tag where it was.
func TestRemoteFailedWriteKeepsTag(t *testing.T) {
	var mu sync.Mutex
	failUploads := false
	reg := registrytest.New(t, registrytest.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			fail := failUploads
			mu.Unlock()
			if fail && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
				http.Error(w, "disk full", http.StatusInsufficientStorage)
				return
			}
			next.ServeHTTP(w, r)
		})
	}))
	old := testImage(t, 1, plat("linux/amd64"))
	mustWrite(t, reg.Ref("app:v1"), &Artifact{Image: old})
	mu.Lock()
	failUploads = true
	mu.Unlock()
	err := tryWrite(reg.Ref("app:v1"), &Artifact{Image: testImage(t, 2, plat("linux/amd64"))}, WithJobs(1))
	if err == nil || !contains(err.Error(), reg.Ref("app:v1")) {
		t.Fatalf("got %v, want an error naming the destination", err)
	}
	mu.Lock()
	failUploads = false
	mu.Unlock()
	if d := digestOf(t, mustRead(t, reg.Ref("app:v1")).Image); d != digestOf(t, old) {
		t.Errorf("tag moved to %s after a failed write", d)
	}
}

// WithKeychain credentials and WithUserAgent reach the registry.
func TestRemoteAuthAndUserAgent(t *testing.T) {
	var mu sync.Mutex
	var agents []string
	reg := registrytest.New(t, registrytest.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			agents = append(agents, r.UserAgent())
			mu.Unlock()
			if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "who are you", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}))
	img := testImage(t, 1, plat("linux/amd64"))
	if err := tryWrite(reg.Ref("private:v1"), &Artifact{Image: img}, WithKeychain(authn.NewMultiKeychain())); err == nil {
		t.Fatal("write without credentials succeeded")
	}
	kc := staticKeychain{authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "s3cret"})}
	mustWrite(t, reg.Ref("private:v1"), &Artifact{Image: img}, WithKeychain(kc), WithUserAgent("coldstart-test/1"))
	if d := digestOf(t, mustRead(t, reg.Ref("private:v1"), WithKeychain(kc)).Image); d != digestOf(t, img) {
		t.Errorf("digest %s", d)
	}
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, a := range agents {
		found = found || strings.Contains(a, "coldstart-test/1")
	}
	if !found {
		t.Errorf("user agent not sent; saw %q", agents)
	}
}

type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

// WithInsecure makes a non-local registry name use plain HTTP.
func TestRemoteInsecure(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	// Every connection, whatever the host name, goes to srv.
	rt := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Listener.Addr().String())
	}}
	t.Cleanup(rt.CloseIdleConnections)
	img := testImage(t, 1, plat("linux/amd64"))
	const ref = "registry.test/app:v1"
	if err := tryWrite(ref, &Artifact{Image: img}, WithTransport(rt)); err == nil {
		t.Fatal("HTTPS to a plain HTTP registry succeeded without WithInsecure")
	}
	mustWrite(t, ref, &Artifact{Image: img}, WithTransport(rt), WithInsecure(true))
	if d := digestOf(t, mustRead(t, ref, WithTransport(rt), WithInsecure(true)).Image); d != digestOf(t, img) {
		t.Errorf("digest %s", d)
	}
}

// WithInsecure skips certificate verification on the default transport.
func TestRemoteInsecureTLS(t *testing.T) {
	srv := httptest.NewTLSServer(registry.New())
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	img := testImage(t, 1, plat("linux/amd64"))
	if err := tryWrite(host+"/app:v1", &Artifact{Image: img}); err == nil {
		t.Fatal("self-signed certificate accepted without WithInsecure")
	}
	mustWrite(t, host+"/app:v1", &Artifact{Image: img}, WithInsecure(true))
}

func TestOptionsErrors(t *testing.T) {
	img := &Artifact{Image: testImage(t, 1, plat("linux/amd64"))}
	for name, opt := range map[string]Option{
		"nil keychain":  WithKeychain(nil),
		"nil transport": WithTransport(nil),
		"zero jobs":     WithJobs(0),
	} {
		if err := tryWrite("oci:"+t.TempDir(), img, opt); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if err := Write(context.Background(), Ref{Transport: "ftp"}, img); !errors.Is(err, ErrUnsupportedTransport) {
		t.Errorf("unknown transport: %v", err)
	}
	if _, err := Read(context.Background(), Ref{}); !errors.Is(err, ErrUnsupportedTransport) {
		t.Errorf("zero Ref: %v", err)
	}
	if err := tryWrite("oci:"+t.TempDir(), &Artifact{}); err == nil {
		t.Error("empty artifact accepted")
	}
}

// TestRemoteNotFoundInWords: a tag or digest the registry does not have is
// ErrNotFound, said in words: the registry's diagnostic detail (a JSON
// object, which ggcr prints as a Go map) never shows as "map[...]".
func TestRemoteNotFoundInWords(t *testing.T) {
	// docker-registry's answers, detail included.
	answers := map[string]string{
		"/v2/app/manifests/nope":                              `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}`,
		"/v2/gone/manifests/v1":                               `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"gone"}}]}`,
		"/v2/app/manifests/sha256:" + strings.Repeat("0", 64): `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Name":"app","Revision":"sha256:0"}}]}`,
	}
	reg := registrytest.New(t, registrytest.WithMiddleware(func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if body, ok := answers[r.URL.Path]; ok {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, body)
				return
			}
			h.ServeHTTP(w, r)
		})
	}))
	for ref, want := range map[string]string{
		reg.Ref("app:nope"): `no image tagged "nope" in ` + reg.Ref("app") + " (the registry answered MANIFEST_UNKNOWN, HTTP 404)",
		reg.Ref("gone:v1"):  `no image tagged "v1" in ` + reg.Ref("gone") + " (the registry answered NAME_UNKNOWN, HTTP 404)",
		reg.Ref("app@sha256:" + strings.Repeat("0", 64)): "no image sha256:" + strings.Repeat("0", 64) + " in " + reg.Ref("app"),
	} {
		_, err := tryRead(ref)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", ref, err)
			continue
		}
		if msg := err.Error(); !contains(msg, want) || contains(msg, "map[") {
			t.Errorf("%s: error %q does not say %q, or shows a Go map", ref, msg, want)
		}
	}
	// Other answers keep their words too: the detail is spelled out.
	var te transport.Error
	te.Errors = []transport.Diagnostic{{Code: "DENIED", Message: "requested access to the resource is denied", Detail: map[string]any{"Action": "push", "Name": "app"}}}
	got := reword(&te, &te).Error()
	if want := "DENIED: requested access to the resource is denied (action push, name app)"; !contains(got, want) || contains(got, "map[") {
		t.Errorf("reword: %q, want %q", got, want)
	}
}
