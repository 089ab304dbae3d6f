package imageref

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// retryStatusCodes are the HTTP statuses after which a registry request is
// tried again.
var retryStatusCodes = []int{
	http.StatusRequestTimeout,      // 408
	http.StatusTooManyRequests,     // 429
	http.StatusInternalServerError, // 500
	http.StatusBadGateway,          // 502
	http.StatusServiceUnavailable,  // 503
	http.StatusGatewayTimeout,      // 504
}

// registryTransport sits under ggcr's retry, auth and user-agent layers, on
// every registry connection. It
//   - abandons a request that makes no progress for the stall timeout
//     (a stallError, which is retried);
//   - honours Retry-After on 429 and 503 answers by waiting (up to
//     Retry.MaxRetryAfter) before handing the answer up, so that ggcr's
//     retry comes no earlier than the registry asked;
//   - resumes a blob or manifest download whose connection breaks, with a
//     Range request from the first byte not yet delivered (or, when the
//     registry ignores Range, by skipping what was delivered);
//   - learns the credentials it carries (Authorization headers) so that they
//     can be scrubbed from error bodies, errors and log messages.
//   - gives a request that ggcr's bearer transport sends again after a 401
//     (with a fresh token) a fresh body, from GetBody: ggcr re-sends the
//     same request, whose body the first attempt consumed.
type registryTransport struct {
	base    http.RoundTripper
	retry   Retry
	stall   time.Duration
	logger  *slog.Logger
	secrets *secrets

	// challenged holds requests with a body that were answered 401, until
	// they come again (a 401 that ends the operation leaves its request
	// here; there are few).
	challenged sync.Map // *http.Request -> struct{}
}

func (t *registryTransport) RoundTrip(in *http.Request) (*http.Response, error) {
	req := in
	if hasBody(in) {
		if _, again := t.challenged.LoadAndDelete(in); again {
			if in.GetBody == nil {
				return nil, fmt.Errorf("%s %s: the registry asked for credentials again and the request body cannot be sent twice", in.Method, redactURL(in.URL))
			}
			body, err := in.GetBody()
			if err != nil {
				return nil, err
			}
			req = in.Clone(in.Context())
			req.Body = body
		}
	}
	t.secrets.learn(req.Header.Get("Authorization"))
	resp, err := t.send(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized && hasBody(in) {
		t.challenged.Store(in, struct{}{})
	}
	if resp.StatusCode >= 400 {
		t.scrubBody(resp)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		t.honourRetryAfter(req, resp)
	}
	if what := resumable(req, resp); what != "" {
		resp.Body = &resumingBody{t: t, req: req, body: resp.Body, size: resp.ContentLength, what: what,
			digest: resp.Header.Get("Docker-Content-Digest")}
	}
	return resp, nil
}

// send is one round trip, watched for stalls.
func (t *registryTransport) send(req *http.Request) (*http.Response, error) {
	if t.stall <= 0 {
		return t.base.RoundTrip(req)
	}
	parent := req.Context()
	ctx, cancel := context.WithCancelCause(parent)
	wd := &watchdog{d: t.stall, cancel: cancel}
	out := req.WithContext(ctx)
	if hasBody(req) {
		out.Body = &sendBody{ReadCloser: req.Body, wd: wd}
		if req.GetBody != nil {
			out.GetBody = func() (io.ReadCloser, error) {
				b, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				return &sendBody{ReadCloser: b, wd: wd}, nil
			}
		}
	}
	wd.arm()
	resp, err := t.base.RoundTrip(out)
	wd.responding()
	if err != nil {
		if se := stalled(ctx, parent); se != nil {
			err = se // the http.Client names the request
		}
		cancel(context.Canceled)
		return nil, err
	}
	resp.Body = &watchedBody{ReadCloser: resp.Body, wd: wd, ctx: ctx, parent: parent, cancel: cancel}
	return resp, nil
}

// stallError says a request made no progress for the stall timeout.
type stallError struct{ d time.Duration }

func (e *stallError) Error() string {
	return fmt.Sprintf("registry stalled: no progress for %s (see WithStallTimeout)", e.d)
}
func (e *stallError) Timeout() bool   { return true }
func (e *stallError) Temporary() bool { return true }

// stalled returns the stallError that ended ctx, if the watchdog (and not
// the caller) ended it.
func stalled(ctx, parent context.Context) *stallError {
	var se *stallError
	if parent.Err() == nil && errors.As(context.Cause(ctx), &se) {
		return se
	}
	return nil
}

// watchdog cancels a request that makes no progress for d: while the
// transport sends the request (but not while the request body's source is
// producing data), and while the caller waits in a Read of the response
// body (but not while it is busy elsewhere).
type watchdog struct {
	d      time.Duration
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	timer    *time.Timer
	response bool // the response headers arrived
}

func (w *watchdog) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.start()
}

func (w *watchdog) start() {
	if w.timer == nil {
		w.timer = time.AfterFunc(w.d, func() { w.cancel(&stallError{d: w.d}) })
		return
	}
	w.timer.Reset(w.d)
}

func (w *watchdog) disarm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

// responding disarms the watchdog for good as far as the request body is
// concerned: from now on only response body reads arm it.
func (w *watchdog) responding() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.response = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

// rearmSending re-arms the watchdog after the request body's source
// returned data, unless the response is already there.
func (w *watchdog) rearmSending() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.response {
		w.start()
	}
}

// sendBody is a request body: the time its source takes is not the
// registry's.
type sendBody struct {
	io.ReadCloser
	wd *watchdog
}

func (b *sendBody) Read(p []byte) (int, error) {
	b.wd.disarm()
	n, err := b.ReadCloser.Read(p)
	b.wd.rearmSending()
	return n, err
}

// watchedBody is a response body whose reads must make progress.
type watchedBody struct {
	io.ReadCloser
	wd          *watchdog
	ctx, parent context.Context
	cancel      context.CancelCauseFunc
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.wd.arm()
	n, err := b.ReadCloser.Read(p)
	b.wd.disarm()
	if err != nil && err != io.EOF {
		if se := stalled(b.ctx, b.parent); se != nil {
			err = se
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.wd.disarm()
	err := b.ReadCloser.Close()
	b.cancel(context.Canceled)
	return err
}

// honourRetryAfter waits as long as a 429 or 503 answer's Retry-After header
// asks (capped), with the body read into memory so that the connection is
// free meanwhile.
func (t *registryTransport) honourRetryAfter(req *http.Request, resp *http.Response) {
	if t.retry.Attempts <= 1 || t.retry.MaxRetryAfter <= 0 {
		return
	}
	d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	if !ok || d <= 0 {
		return
	}
	d = min(d, t.retry.MaxRetryAfter)
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	t.logger.DebugContext(req.Context(), "registry asks to retry later", "method", req.Method, "url", redactURL(req.URL), "status", resp.StatusCode, "wait", d)
	sleep(req.Context(), d)
}

// parseRetryAfter reads a Retry-After value: seconds, or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, 1<<20)) * time.Second, true
	}
	if when, err := http.ParseTime(v); err == nil {
		return when.Sub(now), true
	}
	return 0, false
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// scrubBody removes known credentials from an error response's body, which
// ggcr quotes in its errors.
func (t *registryTransport) scrubBody(resp *http.Response) {
	if t.secrets.empty() {
		return
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		b = nil
	}
	b = []byte(t.secrets.scrub(string(b)))
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
}

var (
	blobURLPath     = regexp.MustCompile(`^/v2/.+/blobs/([a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$`)
	manifestURLPath = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
)

func hasBody(r *http.Request) bool { return r.Body != nil && r.Body != http.NoBody }

// resumable names what a successful GET downloads ("blob sha256:...",
// "manifest NAME:REF"), or returns "" when the download is not one that can
// be resumed. For a redirected request (a blob served from storage), the
// name comes from the registry request that was redirected.
func resumable(req *http.Request, resp *http.Response) string {
	if req.Method != http.MethodGet || resp.StatusCode != http.StatusOK || resp.ContentLength == 0 || hasBody(req) {
		return ""
	}
	for r, hops := req, 0; r != nil && hops < 20; hops++ {
		if m := blobURLPath.FindStringSubmatch(r.URL.Path); m != nil {
			return "blob " + m[1]
		}
		if m := manifestURLPath.FindStringSubmatch(r.URL.Path); m != nil {
			sep := ":"
			if strings.Contains(m[2], ":") {
				sep = "@"
			}
			return "manifest " + m[1] + sep + m[2]
		}
		if r.Response == nil {
			break
		}
		r = r.Response.Request
	}
	return ""
}

// resumingBody is a download that continues where it broke off.
type resumingBody struct {
	t        *registryTransport
	req      *http.Request
	body     io.ReadCloser
	size     int64  // -1: unknown
	digest   string // the Docker-Content-Digest header, if any
	what     string
	got      int64 // bytes delivered
	failures int   // since the last progress of resumeProgress bytes
	failedAt int64 // got at the last failure
	closed   bool
}

// resumeProgress is how much a resumed download must deliver before its
// failures are forgiven: a long download over a connection that breaks now
// and then goes on as long as it makes progress.
const resumeProgress = 1 << 20

func (b *resumingBody) Read(p []byte) (int, error) {
	for {
		n, err := b.body.Read(p)
		b.got += int64(n)
		if err == nil || err == io.EOF || b.closed {
			return n, err
		}
		if rerr := b.resume(err); rerr != nil {
			return n, rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume replaces the broken body, or says why it cannot.
func (b *resumingBody) resume(cause error) error {
	ctx := b.req.Context()
	if b.got-b.failedAt >= resumeProgress {
		b.failures = 0
	}
	b.failedAt = b.got
	for {
		b.failures++
		if ctx.Err() != nil {
			return cause
		}
		if !retryable(cause) || b.failures >= b.t.retry.Attempts {
			return b.fail(cause)
		}
		wait := b.t.retry.wait(b.failures)
		b.t.logger.DebugContext(ctx, "download interrupted; resuming", "what", b.what, "offset", b.got,
			"size", b.size, "attempt", b.failures+1, "wait", wait, "error", b.t.secrets.scrub(cause.Error()))
		sleep(ctx, wait)
		b.body.Close()
		b.body = io.NopCloser(bytes.NewReader(nil))
		body, err := b.reopen()
		if err == nil {
			b.body = body
			return nil
		}
		cause = err
	}
}

func (b *resumingBody) fail(cause error) error {
	size := "unknown"
	if b.size >= 0 {
		size = strconv.FormatInt(b.size, 10)
	}
	tries := "1 attempt"
	if b.failures > 1 {
		tries = fmt.Sprintf("%d attempts", b.failures)
	}
	return &scrubbedError{
		msg: b.t.secrets.scrub(fmt.Sprintf("downloading %s from %s: connection failed after %d of %s bytes (%s): %v",
			b.what, b.req.URL.Host, b.got, size, tries, cause)),
		err: cause,
	}
}

// reopen asks for the rest of the download.
func (b *resumingBody) reopen() (io.ReadCloser, error) {
	req := b.req.Clone(b.req.Context())
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", b.got))
	resp, err := b.t.send(req)
	if err != nil {
		return nil, err
	}
	if d := resp.Header.Get("Docker-Content-Digest"); d != "" && b.digest != "" && d != b.digest && resp.StatusCode < 300 {
		// A tag moved while its manifest was being read: the rest belongs
		// to something else.
		resp.Body.Close()
		return nil, fmt.Errorf("%s changed from %s to %s while it was being downloaded", b.what, b.digest, d)
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		var start int64 = -1
		if cr := resp.Header.Get("Content-Range"); cr != "" {
			_, _ = fmt.Sscanf(cr, "bytes %d-", &start)
		}
		if start != b.got {
			resp.Body.Close()
			return nil, fmt.Errorf("resuming at byte %d: the registry answered with range %q", b.got, resp.Header.Get("Content-Range"))
		}
		return resp.Body, nil
	case http.StatusOK:
		// No range support: skip what was delivered.
		if _, err := io.CopyN(io.Discard, resp.Body, b.got); err != nil {
			resp.Body.Close()
			return nil, err
		}
		return resp.Body, nil
	}
	defer resp.Body.Close()
	b.t.scrubBody(resp)
	return nil, transport.CheckError(resp, http.StatusOK, http.StatusPartialContent)
}

func (b *resumingBody) Close() error {
	b.closed = true
	return b.body.Close()
}

// retryable says whether a failed registry request (or a blob upload) is
// worth another attempt: connection failures, stalls, and the statuses in
// retryStatusCodes. Cancellation and the caller's deadlines are not.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var se *stallError
	if errors.As(err, &se) {
		return true
	}
	var te *transport.Error
	if errors.As(err, &te) {
		if slices.Contains(retryStatusCodes, te.StatusCode) {
			return true
		}
		if te.StatusCode >= 400 && te.StatusCode < 500 {
			return false
		}
		return te.Temporary()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// explain adds to a registry error what its message may leave out: the
// HTTP status (ggcr shows only the registry's error code when there is
// one), and that retries ran out.
func (o *options) explain(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// Upload state and signed redirects stay out of messages. (The error
		// may be shared between goroutines: rewrite the message, not it.)
		if u, perr := url.Parse(ue.URL); perr == nil {
			if r := redactURL(u); r != ue.URL {
				err = &scrubbedError{msg: strings.ReplaceAll(err.Error(), ue.URL, r), err: err}
			}
		}
	}
	var notes []string
	var te *transport.Error
	if errors.As(err, &te) {
		err = reword(err, te)
		// Not a bare number test: the registry's port may hold it
		// (":35031" holds "503").
		code := strconv.Itoa(te.StatusCode)
		if msg := err.Error(); !strings.Contains(msg, "status code "+code) && !strings.Contains(msg, "HTTP "+code) {
			notes = append(notes, fmt.Sprintf("HTTP %d %s", te.StatusCode, http.StatusText(te.StatusCode)))
		}
	}
	if retryable(err) && o.retry.Attempts > 1 && !strings.Contains(err.Error(), " attempts)") {
		notes = append(notes, fmt.Sprintf("gave up after %d attempts", o.retry.Attempts))
	}
	if len(notes) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(notes, "; "))
}

// reword replaces, in err's message, the Go rendering of each registry
// diagnostic's detail (ggcr prints it with %v: "map[Tag:nope]") with
// readable words: "(tag nope)".
func reword(err error, te *transport.Error) error {
	msg := err.Error()
	clean := msg
	for _, d := range te.Errors {
		if d.Detail == nil {
			continue
		}
		clean = strings.Replace(clean, d.String(), fmt.Sprintf("%s: %s%s", d.Code, d.Message, detailWords(d.Detail)), 1)
	}
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

// detailWords renders a registry diagnostic's detail, " (key value, ...)",
// or "" when it says nothing.
func detailWords(detail any) string {
	var parts []string
	switch d := detail.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(d)) {
			parts = append(parts, strings.ToLower(k)+" "+detailValue(d[k]))
		}
	case string:
		parts = append(parts, d)
	default:
		parts = append(parts, detailValue(d))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func detailValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// allowedQuery are query parameters whose values say nothing secret; the
// values of others (upload state, signatures of redirect URLs) are redacted
// in messages.
var allowedQuery = map[string]bool{"digest": true, "mount": true, "from": true, "scope": true, "service": true, "n": true, "last": true}

// redactURL formats u for messages: no user info, and only harmless query
// values.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := *u
	r.User = nil
	if r.RawQuery != "" {
		q := r.Query()
		for k, vs := range q {
			if !allowedQuery[k] {
				for i := range vs {
					vs[i] = "REDACTED"
				}
			}
		}
		r.RawQuery = q.Encode()
	}
	return r.String()
}

// secrets are the credentials a transport has sent, to be kept out of
// messages.
type secrets struct {
	mu   sync.Mutex
	list []string
}

// minSecret is the length below which a string is not scrubbed (it would
// mangle ordinary words).
const minSecret = 4

// learn records the credentials in an Authorization header value.
func (s *secrets) learn(authorization string) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok {
		return
	}
	cred = strings.TrimSpace(cred)
	add := []string{cred}
	if strings.EqualFold(scheme, "basic") {
		if dec, err := base64.StdEncoding.DecodeString(cred); err == nil {
			add = append(add, string(dec))
			if _, pw, ok := strings.Cut(string(dec), ":"); ok {
				add = append(add, pw)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.list)
	for _, a := range add {
		if len(a) >= minSecret && !slices.Contains(s.list, a) {
			s.list = append(s.list, a)
		}
	}
	if len(s.list) != n {
		// Longest first, so that a password inside a longer secret does
		// not leave the rest of it behind.
		slices.SortFunc(s.list, func(a, b string) int { return len(b) - len(a) })
	}
}

func (s *secrets) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.list) == 0
}

// scrub replaces every known credential in msg.
func (s *secrets) scrub(msg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sec := range s.list {
		msg = strings.ReplaceAll(msg, sec, "[REDACTED]")
	}
	return msg
}

// scrubError returns err, or, when its message holds a known credential, an
// error with the credential replaced that still unwraps to err.
func (s *secrets) scrubError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := s.scrub(msg); clean != msg {
		return &scrubbedError{msg: clean, err: err}
	}
	return err
}

// scrubbedError is an error whose message had credentials removed.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
