package imageref

import (
	"context"
	"errors"
	"io"
	"math/rand"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/faultproxy"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// fastRetry keeps the fault tests quick: 4 attempts, 10 ms apart, and
// Retry-After honoured up to 3 s.
var fastRetry = WithRetry(Retry{Attempts: 4, Wait: 10 * time.Millisecond, MaxRetryAfter: 3 * time.Second})

// faultEnv is a real registry (Debian's docker-registry) behind a fault
// proxy.
type faultEnv struct {
	reg   *registrytest.Distribution
	proxy *faultproxy.Proxy
}

func newFaultEnv(t *testing.T, opts ...faultproxy.Option) *faultEnv {
	t.Helper()
	reg := registrytest.StartDistribution(t)
	return &faultEnv{reg: reg, proxy: faultproxy.New(t, reg.Host, opts...)}
}

// direct returns the digest repoTag has on the registry, asked without the
// proxy, or "" when it does not exist.
func (e *faultEnv) direct(t *testing.T, repoTag string) string {
	t.Helper()
	ref, err := name.ParseReference(e.reg.Ref(repoTag))
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

// bigImage is a random image with layers large enough to break in the
// middle of.
func bigImage(t *testing.T, seed int64) v1.Image {
	t.Helper()
	img, err := random.Image(256<<10, 3, random.WithSource(rand.New(rand.NewSource(seed))))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// readAll reads every layer of an image read from the registry, which
// ggcr checks against its digest.
func readAll(a *Artifact) error {
	ls, err := a.Image.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func blobDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var ds []string
	for _, l := range ls {
		d, _ := l.Digest()
		ds = append(ds, d.String())
	}
	cd, _ := img.ConfigName()
	return append(ds, cd.String())
}

// retryWaited reports whether the retry of the request that got a
// Retry-After answer (the next request of its kind for the same target)
// came at least d after it.
func retryWaited(p *faultproxy.Proxy, kind faultproxy.Kind, d time.Duration) bool {
	reqs := p.Requests()
	slices.SortFunc(reqs, func(a, b faultproxy.Request) int { return a.Time.Compare(b.Time) })
	for i, r := range reqs {
		if r.Kind != kind || !strings.Contains(r.Fault, "Retry-After") {
			continue
		}
		for _, next := range reqs[i+1:] {
			if next.Kind == kind && next.Target == r.Target {
				return next.Time.Sub(r.Time) >= d
			}
		}
	}
	return false
}

// TestWriteFaults: transient registry faults during a push are retried and
// the push completes; the proxy's counts show the extra requests.
func TestWriteFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts docker-registry")
	}
	e := newFaultEnv(t)
	p := e.proxy
	const blobs = 4 // 3 layers and a config
	for i, tc := range []struct {
		name  string
		rule  faultproxy.Rule
		kind  faultproxy.Kind
		count int // requests of kind, with the retries
		check func(t *testing.T)
		opts  []Option
	}{
		{name: "500 on an upload", rule: faultproxy.Rule{Kind: faultproxy.KindBlobPatch, Fault: faultproxy.Status(500)},
			kind: faultproxy.KindBlobPatch, count: blobs + 1},
		{name: "502 on a commit", rule: faultproxy.Rule{Kind: faultproxy.KindBlobPut, Nth: 2, Times: 2, Fault: faultproxy.Status(502)},
			kind: faultproxy.KindBlobPut, count: blobs + 2},
		{name: "503 on the manifest", rule: faultproxy.Rule{Kind: faultproxy.KindManifestPut, Fault: faultproxy.Status(503)},
			kind: faultproxy.KindManifestPut, count: 2},
		{name: "429 with Retry-After", rule: faultproxy.Rule{Kind: faultproxy.KindBlobPost, Fault: faultproxy.RetryAfter(429, time.Second)},
			kind: faultproxy.KindBlobPost, count: blobs + 1, opts: []Option{WithJobs(1)},
			check: func(t *testing.T) {
				if !retryWaited(p, faultproxy.KindBlobPost, time.Second) {
					t.Errorf("retry came before the Retry-After second: %v", p.Requests())
				}
			}},
		{name: "reset in the middle of a blob", rule: faultproxy.Rule{Kind: faultproxy.KindBlobPatch, Fault: faultproxy.ResetAfter(100 << 10)},
			kind: faultproxy.KindBlobPatch, count: blobs + 1},
		{name: "stalled commit", rule: faultproxy.Rule{Kind: faultproxy.KindBlobPut, Fault: faultproxy.Stall(0)},
			kind: faultproxy.KindBlobPut, count: blobs + 1},
		{name: "stalled upload", rule: faultproxy.Rule{Kind: faultproxy.KindBlobPatch, Fault: faultproxy.Stall(0)},
			kind: faultproxy.KindBlobPatch, count: blobs + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.ClearRules()
			p.WaitIdle(10 * time.Second)
			p.ResetCounts()
			in := p.Inject(tc.rule)
			img := bigImage(t, int64(100+i))
			repo := "w" + string(rune('a'+i)) + ":v1"
			stall := 5 * time.Second // see TestReadFaults
			if strings.Contains(tc.name, "stall") {
				stall = 500 * time.Millisecond
			}
			mustWrite(t, p.Ref(repo), &Artifact{Image: img}, append([]Option{fastRetry, WithStallTimeout(stall)}, tc.opts...)...)
			if in.Hits() == 0 {
				t.Fatal("fault never applied")
			}
			if got := p.Count(tc.kind); got != tc.count {
				t.Errorf("%d %s requests, want %d:\n%v", got, tc.kind, tc.count, p.Requests())
			}
			if got, want := e.direct(t, repo), digestOf(t, img).String(); got != want {
				t.Errorf("tag is %q, want %s", got, want)
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

// TestWriteFaultsPersistent: when the retries run out, Write fails with an
// error that names the blob or manifest and the cause, and the tag still
// points at the image it pointed at before.
func TestWriteFaultsPersistent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts docker-registry")
	}
	e := newFaultEnv(t)
	p := e.proxy
	old := bigImage(t, 1)
	mustWrite(t, e.reg.Ref("app:v1"), &Artifact{Image: old})
	oldDigest := digestOf(t, old).String()
	for i, tc := range []struct {
		name  string
		rule  faultproxy.Rule
		want  []string // in the error
		tries int      // faulted requests: the attempts
	}{
		{"500 on every upload of a blob", faultproxy.Rule{Kind: faultproxy.KindBlobPatch, Times: faultproxy.Always, Fault: faultproxy.Status(500)},
			[]string{"uploading blob sha256:", "HTTP 500 Internal Server Error", "gave up after 4 attempts"}, 4},
		{"503 on the manifest", faultproxy.Rule{Kind: faultproxy.KindManifestPut, Times: faultproxy.Always, Fault: faultproxy.Status(503)},
			[]string{"uploading manifest sha256:", " as tag v1", "HTTP 503 Service Unavailable", "UNAVAILABLE", "gave up after 4 attempts"}, 4},
		{"429 with Retry-After", faultproxy.Rule{Kind: faultproxy.KindBlobPost, Times: faultproxy.Always, Fault: faultproxy.RetryAfter(429, 0)},
			[]string{"uploading blob sha256:", "429", "TOOMANYREQUESTS"}, 4},
		{"connection reset in every upload", faultproxy.Rule{Kind: faultproxy.KindBlobPatch, Times: faultproxy.Always, Fault: faultproxy.ResetAfter(1000)},
			[]string{"uploading blob sha256:", "connection reset"}, 4},
		{"stalled manifest", faultproxy.Rule{Kind: faultproxy.KindManifestPut, Times: faultproxy.Always, Fault: faultproxy.Stall(0)},
			[]string{"uploading manifest sha256:", "registry stalled: no progress for 300ms", "gave up after 4 attempts"}, 4},
		{"403 is not retried", faultproxy.Rule{Kind: faultproxy.KindBlobPost, Times: faultproxy.Always, Fault: faultproxy.Status(403)},
			[]string{"uploading blob sha256:", "DENIED"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.ClearRules()
			p.WaitIdle(10 * time.Second)
			p.ResetCounts()
			in := p.Inject(tc.rule)
			// A new image each time: blobs uploaded by a failed write are
			// not uploaded again.
			img := bigImage(t, int64(10+i))
			layers := blobDigests(t, img)
			stall := 5 * time.Second // see TestReadFaults
			if strings.Contains(tc.name, "stall") {
				stall = 300 * time.Millisecond
			}
			err := tryWrite(p.Ref("app:v1"), &Artifact{Image: img}, fastRetry, WithStallTimeout(stall), WithJobs(1))
			if err == nil {
				t.Fatal("write succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range append(tc.want, "writing "+p.Ref("app:v1")) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			if strings.HasPrefix(tc.want[0], "uploading manifest") && !contains(msg, "uploading manifest "+digestOf(t, img).String()) {
				t.Errorf("error %q does not name the manifest %s", msg, digestOf(t, img))
			}
			if strings.HasPrefix(tc.want[0], "uploading blob") && !slices.ContainsFunc(layers, func(d string) bool { return strings.Contains(msg, "uploading blob "+d) }) {
				t.Errorf("error %q names none of the image's blobs", msg)
			}
			if in.Hits() != tc.tries {
				t.Errorf("fault applied %d times, want %d attempts:\n%v", in.Hits(), tc.tries, p.Requests())
			}
			if got := e.direct(t, "app:v1"); got != oldDigest {
				t.Errorf("tag moved to %q after a failed write", got)
			}
		})
	}
}

// TestReadFaults: transient faults while reading an image, and its
// layers, are retried; a download broken in the middle resumes where it
// stopped.
func TestReadFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts docker-registry")
	}
	e := newFaultEnv(t)
	p := e.proxy
	img := bigImage(t, 3)
	mustWrite(t, e.reg.Ref("app:v1"), &Artifact{Image: img})
	const layers = 3
	for _, tc := range []struct {
		name  string
		rule  faultproxy.Rule
		kind  faultproxy.Kind
		count int
		check func(t *testing.T)
	}{
		{name: "503 on the manifest", rule: faultproxy.Rule{Kind: faultproxy.KindManifestGet, Times: 2, Fault: faultproxy.Status(503)},
			kind: faultproxy.KindManifestGet, count: 3},
		{name: "500 on a blob", rule: faultproxy.Rule{Kind: faultproxy.KindBlobGet, Nth: 2, Fault: faultproxy.Status(500)},
			kind: faultproxy.KindBlobGet, count: layers + 1},
		{name: "429 with Retry-After", rule: faultproxy.Rule{Kind: faultproxy.KindBlobGet, Fault: faultproxy.RetryAfter(429, time.Second)},
			kind: faultproxy.KindBlobGet, count: layers + 1,
			check: func(t *testing.T) {
				if !retryWaited(p, faultproxy.KindBlobGet, time.Second) {
					t.Errorf("retry came before the Retry-After second: %v", p.Requests())
				}
			}},
		{name: "reset in the middle of a blob", rule: faultproxy.Rule{Kind: faultproxy.KindBlobGet, Times: 2, Fault: faultproxy.ResetAfter(64 << 10)},
			kind: faultproxy.KindBlobGet, count: layers + 2,
			check: func(t *testing.T) { checkResumed(t, p, 2) }},
		{name: "stall in the middle of a blob", rule: faultproxy.Rule{Kind: faultproxy.KindBlobGet, Fault: faultproxy.StallAfter(32<<10, 0)},
			kind: faultproxy.KindBlobGet, count: layers + 1,
			check: func(t *testing.T) { checkResumed(t, p, 1) }},
		{name: "stalled manifest", rule: faultproxy.Rule{Kind: faultproxy.KindManifestGet, Fault: faultproxy.Stall(0)},
			kind: faultproxy.KindManifestGet, count: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.ClearRules()
			p.WaitIdle(10 * time.Second)
			p.ResetCounts()
			in := p.Inject(tc.rule)
			// Only the stall cases need a short stall timeout: on a loaded
			// machine a healthy download can pause for 300 ms, and its
			// retry would add a request the others do not expect.
			stall := 5 * time.Second
			if strings.Contains(tc.name, "stall") {
				stall = 300 * time.Millisecond
			}
			a, err := tryRead(p.Ref("app:v1"), fastRetry, WithStallTimeout(stall))
			if err == nil {
				err = readAll(a)
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.Hits() == 0 {
				t.Fatal("fault never applied")
			}
			if got := p.Count(tc.kind); got != tc.count {
				t.Errorf("%d %s requests, want %d:\n%v", got, tc.kind, tc.count, p.Requests())
			}
			if digestOf(t, a.Image) != digestOf(t, img) {
				t.Error("read a different image")
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
}

// checkResumed checks that n downloads continued with a Range request from
// where the broken one stopped.
func checkResumed(t *testing.T, p *faultproxy.Proxy, n int) {
	t.Helper()
	resumed := 0
	for _, r := range p.Requests() {
		if r.Kind == faultproxy.KindBlobGet && strings.HasPrefix(r.Range, "bytes=") && r.Range != "bytes=0-" {
			if r.Status != http.StatusPartialContent && r.Fault == "" {
				t.Errorf("resumed download answered %d", r.Status)
			}
			resumed++
		}
	}
	if resumed != n {
		t.Errorf("%d resumed downloads, want %d:\n%v", resumed, n, p.Requests())
	}
}

// TestReadFaultsPersistent: reads that keep failing give errors naming the
// manifest or blob and the cause.
func TestReadFaultsPersistent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts docker-registry")
	}
	e := newFaultEnv(t)
	p := e.proxy
	img := bigImage(t, 4)
	mustWrite(t, e.reg.Ref("app:v1"), &Artifact{Image: img})
	ls, _ := img.Layers()
	first, _ := ls[0].Digest()

	p.Inject(faultproxy.Rule{Kind: faultproxy.KindManifestGet, Times: faultproxy.Always, Fault: faultproxy.Status(503)})
	_, err := tryRead(p.Ref("app:v1"), fastRetry)
	if err == nil || !contains(err.Error(), "reading "+p.Ref("app:v1")) || !contains(err.Error(), "/manifests/v1") || !contains(err.Error(), "HTTP 503") || !contains(err.Error(), "gave up after 4 attempts") {
		t.Errorf("manifest error: %v", err)
	}
	if n := p.Count(faultproxy.KindManifestGet); n != 4 {
		t.Errorf("%d manifest GETs, want 4 attempts", n)
	}

	p.ClearRules()
	p.ResetCounts()
	p.Inject(faultproxy.Rule{Kind: faultproxy.KindBlobGet, Times: faultproxy.Always, Fault: faultproxy.ResetAfter(64 << 10)})
	a, err := tryRead(p.Ref("app:v1"), fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := a.Image.LayerByDigest(first)
	rc, err := got.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err == nil {
		t.Fatal("download through a connection that always breaks succeeded")
	}
	t.Log(err)
	for _, w := range []string{"downloading blob " + first.String(), "connection failed after", "(4 attempts)"} {
		if !contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if !retryable(err) {
		t.Error("a broken download should stay classified as a network failure")
	}
}

// TestTokenFaults: the registry wants Bearer tokens from the proxy's token
// server; a token that expires in the middle of a push or a pull is
// refreshed, a refresh that fails once is retried, and a token server that
// refuses gives an error without the password.
func TestTokenFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts docker-registry")
	}
	const user, password = "ci-bot", "Pa55-w0rd-never-shown"
	e := newFaultEnv(t, faultproxy.WithTokenAuth(user, password))
	p := e.proxy
	kc := WithKeychain(staticKeychain{authn.FromConfig(authn.AuthConfig{Username: user, Password: password})})

	// How many tokens does a clean push take?
	mustWrite(t, p.Ref("app:v0"), &Artifact{Image: bigImage(t, 5)}, kc, fastRetry)
	perPush := p.Count(faultproxy.KindToken)
	if perPush == 0 {
		t.Fatal("no token requested")
	}

	p.ResetCounts()
	// The PATCH and the manifest PUT are sent again with a new token: their
	// bodies must be sent again too.
	expirePatch := p.Inject(faultproxy.Rule{Kind: faultproxy.KindBlobPatch, Nth: 2, Fault: faultproxy.Expire()})
	expire := p.Inject(faultproxy.Rule{Kind: faultproxy.KindManifestPut, Fault: faultproxy.Expire()})
	refresh := p.Inject(faultproxy.Rule{Kind: faultproxy.KindToken, Nth: perPush + 2, Fault: faultproxy.Status(503)})
	img := bigImage(t, 6)
	mustWrite(t, p.Ref("app:v1"), &Artifact{Image: img}, kc, fastRetry)
	if expire.Hits() != 1 || refresh.Hits() != 1 || expirePatch.Hits() != 1 {
		t.Errorf("expire hit %d, refresh failure hit %d; want 1 and 1:\n%v", expire.Hits(), refresh.Hits(), p.Requests())
	}
	if got := e.direct(t, "app:v1"); got != digestOf(t, img).String() {
		t.Errorf("tag is %q", got)
	}

	p.ClearRules()
	p.ResetCounts()
	p.Inject(faultproxy.Rule{Kind: faultproxy.KindBlobGet, Nth: 2, Fault: faultproxy.Expire()})
	p.Inject(faultproxy.Rule{Kind: faultproxy.KindToken, Nth: 2, Fault: faultproxy.Status(502)})
	a, err := tryRead(p.Ref("app:v1"), kc, fastRetry)
	if err == nil {
		err = readAll(a)
	}
	if err != nil {
		t.Fatalf("read with an expiring token: %v", err)
	}

	// A token server that refuses: a clear error, no credentials in it.
	p.ClearRules()
	p.Inject(faultproxy.Rule{Kind: faultproxy.KindToken, Times: faultproxy.Always, Fault: faultproxy.Status(401)})
	err = tryWrite(p.Ref("app:v2"), &Artifact{Image: img}, kc, fastRetry)
	if err == nil {
		t.Fatal("write without a token succeeded")
	}
	if !contains(err.Error(), "UNAUTHORIZED") || !contains(err.Error(), "/token") {
		t.Errorf("error %q does not say the token server refused", err)
	}
	checkNoSecrets(t, err.Error(), append(p.Tokens(), password)...)
	if got := e.direct(t, "app:v2"); got != "" {
		t.Errorf("tag app:v2 exists: %s", got)
	}
}

func checkNoSecrets(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("secret %q appears in %q", s, text)
		}
	}
}

// A canceled context is not retried.
func TestCancelNotRetried(t *testing.T) {
	reg := registrytest.New(t)
	p := faultproxy.New(t, reg.Host)
	g := faultproxy.NewGate()
	p.Inject(faultproxy.Rule{Kind: faultproxy.KindManifestPut, Fault: faultproxy.Hold(g)})
	ctx, cancel := context.WithCancel(context.Background())
	ref, _ := Parse(p.Ref("app:v1"))
	errc := make(chan error, 1)
	go func() {
		errc <- Write(ctx, ref, &Artifact{Image: testImage(t, 1, plat("linux/amd64"))}, WithRetry(Retry{Attempts: 4, Wait: 10 * time.Millisecond}))
	}()
	<-g.Reached()
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if n := p.Count(faultproxy.KindManifestPut); n != 1 {
		t.Errorf("%d manifest PUTs after cancellation, want 1", n)
	}
}

// TestExplainStatus: the HTTP status is added to a registry error that
// names only the registry's error code, even when the registry's port
// holds the status's digits.
func TestExplainStatus(t *testing.T) {
	for _, host := range []string{"127.0.0.1:35031", "127.0.0.1:8080"} {
		req, err := http.NewRequest(http.MethodGet, "http://"+host+"/v2/app/manifests/v1", nil)
		if err != nil {
			t.Fatal(err)
		}
		te := &transport.Error{StatusCode: 503, Request: req,
			Errors: []transport.Diagnostic{{Code: transport.UnavailableErrorCode, Message: "down"}}}
		got := (&options{}).explain(te).Error()
		if !contains(got, "HTTP 503 Service Unavailable") {
			t.Errorf("%s: %q does not give the status", host, got)
		}
	}
}
