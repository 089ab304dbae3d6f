package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestClassify(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		method, path string
		want         Kind
	}{
		{"GET", "/v2/", KindPing},
		{"GET", "/token", KindToken},
		{"POST", "/token", KindToken},
		{"HEAD", "/v2/a/b/blobs/" + d, KindBlobHead},
		{"GET", "/v2/a/blobs/" + d, KindBlobGet},
		{"DELETE", "/v2/a/blobs/" + d, KindOther},
		{"POST", "/v2/a/blobs/uploads/", KindBlobPost},
		{"PATCH", "/v2/a/blobs/uploads/0a1b-2c", KindBlobPatch},
		{"PUT", "/v2/a/blobs/uploads/0a1b-2c", KindBlobPut},
		{"GET", "/v2/a/blobs/uploads/0a1b-2c", KindOther},
		{"HEAD", "/v2/a/manifests/v1", KindManifestHead},
		{"GET", "/v2/x/y/z/manifests/" + d, KindManifestGet},
		{"PUT", "/v2/a/manifests/latest", KindManifestPut},
		{"DELETE", "/v2/a/manifests/latest", KindOther},
		{"GET", "/v2/a/tags/list", KindOther},
	} {
		if got := classify(tc.method, tc.path); got != tc.want {
			t.Errorf("classify(%s %s) = %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
	if got := target("/v2/a/blobs/uploads/x", "_state=abc&digest=sha256%3A00ff"); got != "sha256:00ff" {
		t.Errorf("commit target %q", got)
	}
	if got := repository("/v2/x/y/manifests/v1"); got != "x/y" {
		t.Errorf("repository %q", got)
	}
}

// setup starts an in-process registry with a proxy in front.
func setup(t *testing.T, opts ...Option) (*registrytest.Server, *Proxy) {
	t.Helper()
	reg := registrytest.New(t)
	return reg, New(t, reg.Host, opts...)
}

func randomImage(t *testing.T, seed int64) v1.Image {
	t.Helper()
	img, err := random.Image(64<<10, 2, random.WithSource(rand.New(rand.NewSource(seed))))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func push(t *testing.T, ref string, img v1.Image, opts ...remote.Option) error {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return remote.Write(r, img, opts...)
}

func get(t *testing.T, ctx context.Context, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return http.DefaultClient.Do(req)
}

func TestForwardAndCount(t *testing.T) {
	reg, p := setup(t)
	img := randomImage(t, 1)
	if err := push(t, p.Ref("app:v1"), img); err != nil {
		t.Fatal(err)
	}
	// 2 layers and a config: one HEAD, POST, PATCH and PUT each; one
	// manifest HEAD (does the tag exist already?) and PUT.
	want := map[Kind]int{KindPing: 1, KindBlobHead: 3, KindBlobPost: 3, KindBlobPatch: 3, KindBlobPut: 3, KindManifestHead: 1, KindManifestPut: 1}
	if diff := cmp.Diff(want, p.Counts()); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if got := p.Count(KindBlobPut, KindManifestPut); got != 4 {
		t.Errorf("Count(blob PUT, manifest PUT) = %d", got)
	}
	// The registry saw the same requests, through the proxy's host.
	if n := len(reg.Requests()); n != len(p.Requests()) {
		t.Errorf("registry saw %d requests, proxy %d", n, len(p.Requests()))
	}
	committed := map[string]bool{}
	for _, r := range p.Requests() {
		if r.Kind == KindBlobPut {
			committed[r.Target] = r.Status == http.StatusCreated
		}
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		if !committed[d.String()] {
			t.Errorf("no committed upload of %s: %v", d, p.Requests())
		}
	}
	// Reading back through the proxy.
	p.ResetCounts()
	r, _ := name.ParseReference(p.Ref("app:v1"))
	got, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := got.Layers()
	rc, err := l[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if p.Count(KindManifestGet) != 1 || p.Count(KindBlobGet) != 1 {
		t.Errorf("counts after a read: %v", p.Counts())
	}
}

func TestNthAndTimes(t *testing.T) {
	_, p := setup(t)
	if err := push(t, p.Ref("app:v1"), randomImage(t, 1)); err != nil {
		t.Fatal(err)
	}
	in := p.Inject(Rule{Kind: KindManifestGet, Nth: 2, Times: 2, Fault: Status(http.StatusServiceUnavailable)})
	other := p.Inject(Rule{Method: http.MethodGet, Path: regexp.MustCompile(`/manifests/v1$`), Nth: 3, Times: Always, Fault: Status(http.StatusBadGateway)})
	var got []int
	for range 5 {
		resp, err := get(t, context.Background(), p.URL+"/v2/app/manifests/v1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got = append(got, resp.StatusCode)
	}
	// The first rule wins on the 2nd and 3rd, the second fires from the 3rd on.
	if diff := cmp.Diff([]int{200, 503, 503, 502, 502}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if in.Hits() != 2 || in.Matched() != 5 || other.Hits() != 3 {
		t.Errorf("hits %d matched %d, other hits %d", in.Hits(), in.Matched(), other.Hits())
	}
	in.Remove()
	other.Remove()
	resp, err := get(t, context.Background(), p.URL+"/v2/app/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after Remove: %d", resp.StatusCode)
	}
	reqs := p.Requests()
	if last := reqs[len(reqs)-2]; last.Fault != "status 502" || last.Status != 502 {
		t.Errorf("recorded %v", last)
	}
}

func TestRetryAfter(t *testing.T) {
	_, p := setup(t)
	p.Inject(Rule{Kind: KindPing, Fault: RetryAfter(http.StatusTooManyRequests, 1500*time.Millisecond)})
	resp, err := get(t, context.Background(), p.URL+"/v2/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || !strings.Contains(string(b), "TOOMANYREQUESTS") {
		t.Errorf("got %d Retry-After %q body %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
}

func TestResetDownload(t *testing.T) {
	_, p := setup(t)
	img := randomImage(t, 2)
	if err := push(t, p.Ref("app:v1"), img); err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	d, _ := ls[0].Digest()
	size, _ := ls[0].Size()
	p.Inject(Rule{Kind: KindBlobGet, Fault: ResetAfter(1000)})
	resp, err := get(t, context.Background(), p.URL+"/v2/app/blobs/"+d.String())
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentLength != size {
		t.Errorf("Content-Length %d, want %d", resp.ContentLength, size)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil || n > 1000 {
		t.Errorf("read %d bytes, err %v; want a failure after at most 1000 bytes", n, err)
	}
	// The next download is whole.
	resp, err = get(t, context.Background(), p.URL+"/v2/app/blobs/"+d.String())
	if err != nil {
		t.Fatal(err)
	}
	n, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Errorf("second read: %d bytes, %v", n, err)
	}
	// The cut download is recorded once its handler returns, which may be
	// after the second download is: look for it, not at a position.
	var cut []Request
	for deadline := time.Now().Add(5 * time.Second); len(cut) == 0 && time.Now().Before(deadline); {
		for _, r := range p.Requests() {
			if r.Fault != "" {
				cut = append(cut, r)
			}
		}
		if len(cut) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(cut) != 1 || cut[0].Status != 0 || cut[0].Fault != "reset after 1000 bytes" || cut[0].Target != d.String() {
		t.Errorf("recorded faults %+v, want the one reset of %s", cut, d)
	}
}

func TestResetUpload(t *testing.T) {
	reg, p := setup(t)
	p.Inject(Rule{Kind: KindBlobPatch, Fault: ResetAfter(4096)})
	img := randomImage(t, 3)
	// ggcr retries the upload of the blob whose PATCH was reset.
	if err := push(t, p.Ref("app:v1"), img); err != nil {
		t.Fatal(err)
	}
	if got := p.Count(KindBlobPatch); got != 4 {
		t.Errorf("%d PATCHes, want 3 and a retry", got)
	}
	var forwarded int
	for _, r := range reg.Requests() {
		if r.Method == http.MethodPatch {
			forwarded++
		}
	}
	if forwarded != 3 {
		t.Errorf("registry saw %d PATCHes; the reset one must not reach it", forwarded)
	}
	// Without retries, the client sees the connection fail.
	p.Inject(Rule{Kind: KindBlobPatch, Fault: ResetAfter(0)})
	err := push(t, p.Ref("other:v1"), randomImage(t, 4), remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	if err == nil {
		t.Fatal("push through a reset succeeded")
	}
}

func TestStall(t *testing.T) {
	_, p := setup(t)
	in := p.Inject(Rule{Kind: KindPing, Times: Always, Fault: Stall(0)})
	// A client that gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := get(t, ctx, p.URL+"/v2/"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled request: %v", err)
	}
	in.Remove()
	// A stall that ends.
	p.Inject(Rule{Kind: KindPing, Fault: Stall(time.Millisecond)})
	resp, err := get(t, context.Background(), p.URL+"/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after a short stall: %d", resp.StatusCode)
	}
	waitFor(t, func() bool { return len(p.Requests()) == 2 })
	if r := p.Requests()[0]; r.Status != 0 || r.Fault != "stall 0s" {
		t.Errorf("abandoned request recorded as %+v", r)
	}
}

func TestStallAfter(t *testing.T) {
	_, p := setup(t)
	img := randomImage(t, 5)
	if err := push(t, p.Ref("app:v1"), img); err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	d, _ := ls[0].Digest()
	p.Inject(Rule{Kind: KindBlobGet, Fault: StallAfter(100, 0)})
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := get(t, ctx, p.URL+"/v2/app/blobs/"+d.String())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("first 100 bytes: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 10))
		done <- err
	}()
	cancel()
	if err := <-done; err == nil {
		t.Error("read past the stall succeeded")
	}
	resp.Body.Close()
}

func TestHold(t *testing.T) {
	reg, p := setup(t)
	g := NewGate()
	p.Inject(Rule{Kind: KindManifestPut, Fault: Hold(g)})
	errc := make(chan error, 1)
	go func() { errc <- push(t, p.Ref("app:v1"), randomImage(t, 6)) }()
	<-g.Reached()
	if r := g.First(); r.Kind != KindManifestPut || r.Target != "v1" {
		t.Errorf("held %+v", r)
	}
	for _, r := range reg.Requests() {
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/manifests/") {
			t.Fatal("held manifest PUT reached the registry")
		}
	}
	g.Release()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	// A held request whose client goes away is dropped.
	g2 := NewGate()
	p.Inject(Rule{Kind: KindManifestPut, Fault: Hold(g2)})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		r, _ := name.ParseReference(p.Ref("app:v2"))
		errc <- remote.Write(r, randomImage(t, 7), remote.WithContext(ctx))
	}()
	<-g2.Reached()
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("canceled push succeeded")
	}
	waitFor(t, func() bool {
		rs := p.Requests()
		return rs[len(rs)-1].Kind == KindManifestPut
	})
	g2.Release()
	if _, err := get(t, context.Background(), reg.URL+"/v2/app/manifests/v2"); err != nil {
		t.Fatal(err)
	}
	for _, r := range reg.Requests() {
		if r.Method == http.MethodPut && strings.HasSuffix(r.Path, "/manifests/v2") {
			t.Error("dropped manifest PUT reached the registry")
		}
	}
}

// Close lets go of held requests.
func TestCloseReleases(t *testing.T) {
	_, p := setup(t)
	g := NewGate()
	p.Inject(Rule{Kind: KindPing, Fault: Hold(g)})
	errc := make(chan error, 1)
	go func() {
		resp, err := get(t, context.Background(), p.URL+"/v2/")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-g.Reached()
	p.Close()
	if err := <-errc; err == nil {
		t.Error("held request answered after Close")
	}
	p.Close()
}

func TestBasicAuth(t *testing.T) {
	_, p := setup(t, WithBasicAuth("alice", "pa55word"))
	img := randomImage(t, 8)
	if err := push(t, p.Ref("app:v1"), img, remote.WithRetryBackoff(remote.Backoff{Steps: 1})); err == nil {
		t.Fatal("anonymous push succeeded")
	}
	resp, err := get(t, context.Background(), p.URL+"/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	auth := remote.WithAuth(&authn.Basic{Username: "alice", Password: "pa55word"})
	if err := push(t, p.Ref("app:v1"), img, auth); err != nil {
		t.Fatal(err)
	}
	// Expire makes the next request fail once; ggcr has nothing to refresh
	// with Basic auth, so the failure is the client's to handle.
	p.Inject(Rule{Kind: KindManifestGet, Fault: Expire()})
	r, _ := name.ParseReference(p.Ref("app:v1"))
	if _, err := remote.Get(r, auth); err == nil {
		t.Error("expired Basic credentials accepted")
	}
	if _, err := remote.Get(r, auth); err != nil {
		t.Error(err)
	}
}

func TestTokenAuth(t *testing.T) {
	_, p := setup(t, WithTokenAuth("bob", "t0ken-pw"))
	img := randomImage(t, 9)
	auth := remote.WithAuth(&authn.Basic{Username: "bob", Password: "t0ken-pw"})
	if err := push(t, p.Ref("app:v1"), img, auth); err != nil {
		t.Fatal(err)
	}
	if len(p.Tokens()) == 0 || p.Count(KindToken) == 0 {
		t.Fatalf("no token issued: %v", p.Requests())
	}
	// Wrong credentials get no token.
	bad := remote.WithAuth(&authn.Basic{Username: "bob", Password: "guess"})
	if err := push(t, p.Ref("app:v2"), img, bad, remote.WithRetryBackoff(remote.Backoff{Steps: 1})); err == nil {
		t.Fatal("push with a wrong password succeeded")
	}
	// An expired token is refreshed.
	before := len(p.Tokens())
	p.Inject(Rule{Kind: KindManifestGet, Fault: Expire()})
	r, _ := name.ParseReference(p.Ref("app:v1"))
	if _, err := remote.Get(r, auth); err != nil {
		t.Fatal(err)
	}
	if n := len(p.Tokens()); n < before+2 { // one for the new transport, one refresh
		t.Errorf("%d tokens issued after expiry, want at least %d", n, before+2)
	}
	// A failing token server.
	p.Inject(Rule{Kind: KindToken, Fault: Status(http.StatusUnauthorized)})
	if _, err := remote.Get(r, auth); err == nil {
		t.Error("request succeeded without a token")
	}
	if _, err := remote.Get(r, auth); err != nil {
		t.Errorf("after one failed token request: %v", err)
	}
	// Tokens by POST (oauth2 password grant form).
	resp, err := http.Post(p.URL+"/token", "application/x-www-form-urlencoded",
		bytes.NewBufferString("grant_type=password&username=bob&password=t0ken-pw&service=faultproxy"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"token":"fpt_`) {
		t.Errorf("POST /token: %d %s", resp.StatusCode, b)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The proxy works in front of Debian's docker-registry too, whose upload
// locations are absolute URLs built from the Host header.
func TestDistribution(t *testing.T) {
	if testing.Short() {
		t.Skip("starts docker-registry")
	}
	reg := registrytest.StartDistribution(t)
	p := New(t, reg.Host)
	p.Inject(Rule{Kind: KindBlobPatch, Fault: ResetAfter(1000)})
	img := randomImage(t, 10)
	if err := push(t, p.Ref("app:v1"), img); err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Requests() {
		if r.Kind == KindOther {
			t.Errorf("unclassified request %v", r)
		}
	}
	if p.Count(KindBlobPut) != 3 {
		t.Errorf("counts %v", p.Counts())
	}
	// Direct, without the proxy.
	r, _ := name.ParseReference(reg.Ref("app:v1"))
	got, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	gd, _ := got.Digest()
	wd, _ := img.Digest()
	if gd != wd {
		t.Errorf("digest %s, want %s", gd, wd)
	}
}
