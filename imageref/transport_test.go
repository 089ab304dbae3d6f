package imageref

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/faultproxy"
	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/stream"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRedactURL(t *testing.T) {
	u, _ := url.Parse("https://user:pw@reg.example/v2/app/blobs/uploads/x?_state=secret&digest=sha256%3Aab&X-Amz-Signature=sig")
	got := redactURL(u)
	for _, bad := range []string{"secret", "sig", "user", "pw@"} {
		if strings.Contains(got, bad) {
			t.Errorf("%s still shows %q", got, bad)
		}
	}
	if !strings.Contains(got, "digest=sha256%3Aab") {
		t.Errorf("%s lost the digest", got)
	}
}

func TestSecretsScrub(t *testing.T) {
	var s secrets
	if s.scrub("nothing") != "nothing" || !s.empty() {
		t.Fatal("empty set scrubs")
	}
	basic := base64.StdEncoding.EncodeToString([]byte("alice:s3cret-pw"))
	s.learn("Basic " + basic)
	s.learn("Bearer tok-123456")
	s.learn("Bearer ab") // too short to scrub without mangling text
	msg := fmt.Sprintf("auth %s for alice:s3cret-pw, password s3cret-pw, token tok-123456, ab", basic)
	got := s.scrub(msg)
	for _, bad := range []string{basic, "s3cret-pw", "tok-123456"} {
		if strings.Contains(got, bad) {
			t.Errorf("%q still shows %q", got, bad)
		}
	}
	if !strings.HasSuffix(got, ", ab") {
		t.Errorf("short string scrubbed: %q", got)
	}
	err := s.scrubError(fmt.Errorf("wrapped: %w", errors.New("token tok-123456 refused")))
	if strings.Contains(err.Error(), "tok-123456") || errors.Unwrap(err) == nil {
		t.Errorf("scrubError: %v", err)
	}
	plain := errors.New("harmless")
	if s.scrubError(plain) != plain {
		t.Error("an error without secrets was rewrapped")
	}
}

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&transport.Error{StatusCode: 503}, true},
		{&transport.Error{StatusCode: 429}, true},
		{&transport.Error{StatusCode: 500}, true},
		{&transport.Error{StatusCode: 404}, false},
		{&transport.Error{StatusCode: 401}, false},
		{&transport.Error{StatusCode: 400, Errors: []transport.Diagnostic{{Code: transport.UnknownErrorCode}}}, false},
		{&url.Error{Op: "Get", URL: "x", Err: syscall.ECONNRESET}, true},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), true},
		{syscall.EPIPE, true},
		{&stallError{d: time.Second}, true},
		{&url.Error{Op: "Get", URL: "x", Err: context.Canceled}, false},
		{context.DeadlineExceeded, false},
		{errors.New("manifest invalid"), false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestRetryOptions(t *testing.T) {
	for _, opt := range []Option{
		WithRetry(Retry{Attempts: 0}),
		WithRetry(Retry{Attempts: 2, Wait: -1}),
		WithStallTimeout(-time.Second),
	} {
		if _, err := makeOptions([]Option{opt}); err == nil {
			t.Error("bad option accepted")
		}
	}
	o, err := makeOptions(nil)
	if err != nil || o.retry != DefaultRetry || o.stall != DefaultStallTimeout {
		t.Errorf("defaults: %+v %v", o, err)
	}
	if got := DefaultRetry.wait(1) + DefaultRetry.wait(2) + DefaultRetry.wait(3); got != 7*time.Second {
		t.Errorf("default waits add up to %s, want 7s", got)
	}
}

func TestResumableNames(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "http://r/v2/a/b/blobs/sha256:00ff", nil)
	resp := &http.Response{StatusCode: 200, ContentLength: 10}
	if got := resumable(req, resp); got != "blob sha256:00ff" {
		t.Errorf("blob: %q", got)
	}
	// A redirect to storage keeps the blob's name.
	storage := httptest.NewRequest(http.MethodGet, "http://s3/bucket/data?sig=x", nil)
	storage.Response = &http.Response{Request: req}
	if got := resumable(storage, resp); got != "blob sha256:00ff" {
		t.Errorf("redirected blob: %q", got)
	}
	if got := resumable(httptest.NewRequest(http.MethodGet, "http://r/v2/a/manifests/v1", nil), resp); got != "manifest a:v1" {
		t.Errorf("manifest: %q", got)
	}
	if got := resumable(httptest.NewRequest(http.MethodHead, "http://r/v2/a/manifests/v1", nil), resp); got != "" {
		t.Errorf("HEAD: %q", got)
	}
}

func testTransport(stall time.Duration) *registryTransport {
	o, _ := makeOptions([]Option{WithRetry(Retry{Attempts: 3, Wait: time.Millisecond}), WithStallTimeout(stall)})
	return &registryTransport{base: http.DefaultTransport, retry: o.retry, stall: o.stall, logger: o.logger, secrets: o.secrets}
}

// The watchdog abandons a response that stops, but not a caller that is
// slow to read, nor a request body whose source is slow.
func TestStallWatch(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "10")
		_, _ = w.Write([]byte("01234"))
		w.(http.Flusher).Flush()
		if r.URL.Path == "/stop" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = w.Write([]byte("56789"))
	}))
	defer srv.Close()
	defer close(release)
	rt := testTransport(100 * time.Millisecond)
	client := &http.Client{Transport: rt}

	resp, err := client.Get(srv.URL + "/stop")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	var se *stallError
	if !errors.As(err, &se) || !retryable(err) {
		t.Fatalf("stopped response: %v, want a stallError", err)
	}

	resp, err = client.Get(srv.URL + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the caller is busy; the registry is not stalled
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(rest) != "56789" {
		t.Fatalf("slow reader: %q, %v", rest, err)
	}

	body := &slowReader{r: strings.NewReader("payload"), delay: 300 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/ok", body)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("slow request body source: %v", err)
	}
	resp.Body.Close()
}

type slowReader struct {
	r     io.Reader
	delay time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.delay)
	return s.r.Read(p)
}

// A download that breaks resumes with a Range request, or, when the server
// ignores Range, by skipping what was read; the bytes come out whole.
func TestResumeDownload(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	for _, ranges := range []bool{true, false} {
		t.Run(fmt.Sprintf("ranges=%v", ranges), func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				if !ranges {
					r.Header.Del("Range")
				}
				if n <= 2 { // break the first two answers after 10000 bytes
					w.Header().Set("Content-Length", fmt.Sprint(len(content)))
					start := 0
					if rg := r.Header.Get("Range"); rg != "" {
						_, _ = fmt.Sscanf(rg, "bytes=%d-", &start)
						w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(content)-1, len(content)))
						w.Header().Set("Content-Length", fmt.Sprint(len(content)-start))
						w.WriteHeader(http.StatusPartialContent)
					}
					_, _ = w.Write(content[start : start+10000])
					w.(http.Flusher).Flush()
					conn, _, _ := http.NewResponseController(w).Hijack()
					conn.(*net.TCPConn).SetLinger(0)
					conn.Close()
					return
				}
				http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(content))
			}))
			defer srv.Close()
			client := &http.Client{Transport: testTransport(0)}
			resp, err := client.Get(srv.URL + "/v2/app/blobs/sha256:00ff")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, content) {
				t.Fatalf("got %d bytes, not the content", len(got))
			}
			if calls.Load() != 3 {
				t.Errorf("%d requests, want 3", calls.Load())
			}
		})
	}
}

// All blobs go before any manifest, child manifests before the index, the
// tag last; a second write after a failure at the tag uploads nothing again.
func TestRemotePushPhases(t *testing.T) {
	reg := registrytest.New(t)
	p := faultproxy.New(t, reg.Host)
	tree := newTestTree(t)
	p.Inject(faultproxy.Rule{Kind: faultproxy.KindManifestPut, Path: regexpMust(`/manifests/v1$`), Times: faultproxy.Always, Fault: faultproxy.Status(http.StatusForbidden)})
	err := tryWrite(p.Ref("tree:v1"), &Artifact{Index: tree.idx}, fastRetry)
	if err == nil || !contains(err.Error(), "as tag v1") || !contains(err.Error(), digestOf(t, tree.idx).String()) {
		t.Fatalf("got %v, want the tag PUT to fail", err)
	}
	reqs := p.Requests()
	lastBlob, firstManifest := -1, len(reqs)
	for i, r := range reqs {
		switch r.Kind {
		case faultproxy.KindBlobPut, faultproxy.KindBlobPatch, faultproxy.KindBlobPost:
			lastBlob = i
		case faultproxy.KindManifestPut:
			firstManifest = min(firstManifest, i)
		}
	}
	if lastBlob < 0 || lastBlob > firstManifest {
		t.Errorf("blob upload (request %d) after a manifest PUT (request %d)", lastBlob, firstManifest)
	}
	// 7 images and the nested index went in; the tag did not.
	if got := p.Count(faultproxy.KindManifestPut); got != 9 {
		t.Errorf("%d manifest PUTs, want 8 children and the refused tag", got)
	}
	if reqs[len(reqs)-1].Kind != faultproxy.KindManifestPut || reqs[len(reqs)-1].Target != "v1" {
		t.Errorf("last request %v, want the tag", reqs[len(reqs)-1])
	}

	p.ClearRules()
	p.ResetCounts()
	mustWrite(t, p.Ref("tree:v1"), &Artifact{Index: tree.idx}, fastRetry)
	if n := p.Count(faultproxy.KindBlobPost, faultproxy.KindBlobPatch, faultproxy.KindBlobPut); n != 0 {
		t.Errorf("second write uploaded blobs again: %v", p.Requests())
	}
	if n := p.Count(faultproxy.KindManifestPut); n != 1 {
		t.Errorf("second write PUT %d manifests, want only the tag", n)
	}
	if d := digestOf(t, mustRead(t, reg.Ref("tree:v1")).Index); d != digestOf(t, tree.idx) {
		t.Errorf("tag digest %s", d)
	}
}

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// An image with a streaming layer (digest unknown until uploaded) is pushed
// in ggcr's order.
func TestRemoteStreamingLayer(t *testing.T) {
	reg := registrytest.New(t)
	img, err := mutate.AppendLayers(empty.Image, stream.NewLayer(io.NopCloser(bytes.NewReader(bytes.Repeat([]byte{0}, 10240)))))
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, reg.Ref("stream:v1"), &Artifact{Image: img})
	if _, err := tryRead(reg.Ref("stream:v1")); err != nil {
		t.Fatal(err)
	}
}
