package faultproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy is a running fault-injecting proxy. Its methods are safe for
// concurrent use.
type Proxy struct {
	// Host is "127.0.0.1:PORT", the registry part of image references that
	// go through the proxy.
	Host string
	// URL is "http://127.0.0.1:PORT".
	URL string

	target    *url.URL
	srv       *httptest.Server
	upstream  *http.Transport
	auth      authConfig
	done      chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex
	active int // requests being served
	rules  []*Injection
	counts map[Kind]int
	log    []Request
	tokens []string
	valid  map[string]bool
}

// Request is one request the proxy received.
type Request struct {
	Method string
	// Path is the URL path, e.g. "/v2/repo/manifests/latest".
	Path string
	// Query is the raw query string, without "?".
	Query string
	Kind  Kind
	// Target is the blob digest (blob requests and upload commits) or the
	// manifest reference (manifest requests) the request is about, or "".
	Target string
	// Status is the status code the client received; 0 when the
	// connection was reset or the client went away before an answer.
	Status int
	// Fault names the fault applied ("" for none).
	Fault string
	// Range is the request's Range header (a resumed download), or "".
	Range string
	// Time is when the request arrived.
	Time time.Time
}

// String formats the request as "METHOD PATH -> STATUS [FAULT]".
func (r Request) String() string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	s += fmt.Sprintf(" -> %d", r.Status)
	if r.Fault != "" {
		s += " [" + r.Fault + "]"
	}
	return s
}

// Option configures New.
type Option func(*Proxy)

// WithBasicAuth makes the proxy require Basic credentials user:password on
// every registry request, answering 401 with a Basic challenge otherwise.
// Default: no authentication.
func WithBasicAuth(user, password string) Option {
	return func(p *Proxy) { p.auth = authConfig{mode: authBasic, user: user, password: password} }
}

// WithTokenAuth makes the proxy require Bearer tokens that its own token
// server, at /token, issues: registry requests without a valid token get a
// 401 whose challenge names the proxy as realm. The token server wants Basic
// credentials user:password (GET), or the same as form fields (POST); an
// empty user gives tokens to anyone. Default: no authentication.
func WithTokenAuth(user, password string) Option {
	return func(p *Proxy) { p.auth = authConfig{mode: authToken, user: user, password: password} }
}

// New starts a proxy in front of the registry at target ("HOST:PORT" or
// "http://HOST:PORT") and closes it when tb's test ends.
func New(tb testing.TB, target string, opts ...Option) *Proxy {
	tb.Helper()
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatalf("faultproxy: target %q: %v", target, err)
	}
	p := &Proxy{
		target:   u,
		upstream: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 32},
		done:     make(chan struct{}),
		counts:   map[Kind]int{},
		valid:    map[string]bool{},
	}
	for _, opt := range opts {
		opt(p)
	}
	p.srv = httptest.NewServer(p)
	p.URL = p.srv.URL
	p.Host = strings.TrimPrefix(p.srv.URL, "http://")
	tb.Cleanup(p.Close)
	return p
}

// Ref returns "HOST/repoAndTag", a reference to an image through the proxy.
func (p *Proxy) Ref(repoAndTag string) string { return p.Host + "/" + repoAndTag }

// Close stops the proxy, dropping requests that are held or stalled. It is
// safe to call more than once.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		close(p.done)
		p.srv.CloseClientConnections()
		p.srv.Close()
		p.upstream.CloseIdleConnections()
	})
}

// Inject puts a rule in force and returns it. Rules are tried in the order
// they were injected; every rule counts the requests it matches, and the
// first rule that fires decides the request's fault.
func (p *Proxy) Inject(r Rule) *Injection {
	in := &Injection{p: p, rule: r}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, in)
	return in
}

// ClearRules takes every rule out of force.
func (p *Proxy) ClearRules() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Count returns how many requests of the given kinds the proxy received
// (faulted ones included) since it started or since ResetCounts.
func (p *Proxy) Count(kinds ...Kind) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, k := range kinds {
		n += p.counts[k]
	}
	return n
}

// Counts returns the request counts by kind.
func (p *Proxy) Counts() map[Kind]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[Kind]int, len(p.counts))
	for k, v := range p.counts {
		m[k] = v
	}
	return m
}

// Requests returns the requests answered so far, in the order they were
// answered.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.log...)
}

// ResetCounts forgets the counts and the recorded requests (not the rules
// nor the tokens).
func (p *Proxy) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = map[Kind]int{}
	p.log = nil
}

// WaitIdle waits until the proxy serves no request, or d passes, and
// reports whether it is idle. Requests are forwarded to the registry even
// when their client has gone away (a killed process), so once the proxy is
// idle the registry has finished with everything it was sent.
func (p *Proxy) WaitIdle(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		p.mu.Lock()
		n := p.active
		p.mu.Unlock()
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Tokens returns every token the token server issued (WithTokenAuth).
func (p *Proxy) Tokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tokens...)
}

// exchange is one request being served.
type exchange struct {
	p   *Proxy
	w   http.ResponseWriter
	r   *http.Request
	rec *record
}

type record struct {
	Request
	reset bool // the connection was reset
	gone  bool // the client went away first
}

// recorder remembers the status written.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := Classify(r)
	rw := &recorder{ResponseWriter: w}
	ex := &exchange{p: p, w: rw, r: r, rec: &record{Request: Request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Kind: kind,
		Target: target(r.URL.Path, r.URL.RawQuery), Range: r.Header.Get("Range"), Time: time.Now(),
	}}}
	p.mu.Lock()
	p.counts[kind]++
	p.active++
	p.mu.Unlock()
	defer func() {
		if !ex.rec.reset && !ex.rec.gone {
			ex.rec.Status = rw.status
		}
		p.mu.Lock()
		p.log = append(p.log, ex.rec.Request)
		p.active--
		p.mu.Unlock()
	}()

	if kind == KindToken && p.auth.mode == authToken {
		if f := p.match(ex); f != nil && f.before != nil && f.before(ex) {
			ex.abortIfGone()
			return
		}
		p.serveToken(ex)
		return
	}
	if !p.authorized(ex) {
		return
	}
	f := p.match(ex)
	if f != nil && f.before != nil && f.before(ex) {
		ex.abortIfGone()
		return
	}
	p.forward(ex, f)
}

// abortIfGone drops the connection of a request whose client went away, or
// that the proxy's Close cut short, when nothing was written yet: a handler
// that just returned would have net/http answer it "200 OK".
func (ex *exchange) abortIfGone() {
	if ex.rec.gone && ex.w.(*recorder).status == 0 {
		panic(http.ErrAbortHandler)
	}
}

// match applies the rules to a request and returns the fault of the first
// that fires, if any.
func (p *Proxy) match(ex *exchange) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	var fire *Fault
	for _, in := range p.rules {
		if _, ok := in.match(ex.rec.Kind, ex.r.Method, ex.r.URL.Path); ok && fire == nil {
			f := in.rule.Fault
			fire = &f
		}
	}
	if fire != nil {
		ex.rec.Fault = fire.name
	}
	return fire
}

// hopHeaders are not forwarded (RFC 9110, section 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
	for _, h := range hopHeaders {
		dst.Del(h)
	}
}

// forward sends the request to the registry and relays the answer, running
// the fault's body hook, if any.
func (p *Proxy) forward(ex *exchange, f *Fault) {
	r := ex.r
	u := *p.target
	u.Path = r.URL.Path
	u.RawPath = r.URL.RawPath
	u.RawQuery = r.URL.RawQuery
	body := io.Reader(r.Body)
	if !hasBody(r) {
		body = http.NoBody
	}
	// Not r.Context(): a request the registry started on is finished even
	// if the client goes away, as a registry behind a real load balancer
	// would; a body that stops coming ends it.
	out, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, u.String(), body)
	if err != nil {
		p.writeError(ex, http.StatusBadGateway, "UNKNOWN", err.Error())
		return
	}
	copyHeader(out.Header, r.Header)
	out.Header.Del("Authorization") // the registry behind has no authentication
	out.Host = r.Host               // so that absolute Locations point at the proxy
	out.ContentLength = r.ContentLength
	resp, err := p.upstream.RoundTrip(out)
	if err != nil {
		if r.Context().Err() != nil {
			ex.rec.gone = true
			return
		}
		p.writeError(ex, http.StatusBadGateway, "UNKNOWN", "faultproxy: "+err.Error())
		return
	}
	defer resp.Body.Close()
	copyHeader(ex.w.Header(), resp.Header)
	ex.w.WriteHeader(resp.StatusCode)
	if f != nil && f.at != nil {
		n, err := io.CopyN(ex.w, resp.Body, f.atBytes)
		if err != nil && !errors.Is(err, io.EOF) {
			return
		}
		if n < f.atBytes {
			ex.rec.Fault += " (not reached: the body is shorter)"
			return
		}
		_ = http.NewResponseController(ex.w).Flush()
		if f.at(ex) {
			return
		}
	}
	_, _ = io.Copy(flushWriter{ex.w}, resp.Body)
}

// flushWriter flushes after every write, so that a stalled or reset
// response has delivered what came before.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	if err == nil {
		_ = http.NewResponseController(f.w).Flush()
	}
	return n, err
}

// writeError answers with a distribution-style JSON error.
func (p *Proxy) writeError(ex *exchange, status int, code, msg string) {
	b, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	h := ex.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(len(b)))
	ex.w.WriteHeader(status)
	if ex.r.Method != http.MethodHead {
		_, _ = ex.w.Write(b)
	}
}
