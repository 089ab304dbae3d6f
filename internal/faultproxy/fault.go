package faultproxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// Always, as Rule.Times, makes a rule fault every matching request from the
// Nth on.
const Always = -1

// Rule says which requests get a fault. A request matches when every set
// field matches; the rule counts matching requests from the moment it is
// injected and faults the Nth to the (Nth+Times-1)th of them.
type Rule struct {
	// Kind matches requests of this kind; "" matches every kind.
	Kind Kind
	// Method matches the HTTP method; "" matches every method.
	Method string
	// Path matches the URL path (without the query); nil matches every path.
	Path *regexp.Regexp
	// Nth is the first matching request that gets the fault, counting from
	// 1; 0 means 1.
	Nth int
	// Times is how many matching requests get the fault, from the Nth on;
	// 0 means 1, Always means every one.
	Times int
	// Fault is what happens to them.
	Fault Fault
}

// Injection is a rule in force. Its methods are safe for concurrent use.
type Injection struct {
	p    *Proxy
	rule Rule
	seen int // matching requests so far
	hits int // requests faulted so far
}

// Hits returns how many requests the rule has faulted.
func (in *Injection) Hits() int {
	in.p.mu.Lock()
	defer in.p.mu.Unlock()
	return in.hits
}

// Matched returns how many requests matched the rule, faulted or not.
func (in *Injection) Matched() int {
	in.p.mu.Lock()
	defer in.p.mu.Unlock()
	return in.seen
}

// Remove takes the rule out of force.
func (in *Injection) Remove() {
	in.p.mu.Lock()
	defer in.p.mu.Unlock()
	for i, x := range in.p.rules {
		if x == in {
			in.p.rules = append(in.p.rules[:i:i], in.p.rules[i+1:]...)
			break
		}
	}
}

// match reports whether the request matches, counting it, and whether this
// occurrence is faulted.
func (in *Injection) match(kind Kind, method, path string) (matched, fire bool) {
	r := in.rule
	if (r.Kind != "" && r.Kind != kind) || (r.Method != "" && r.Method != method) || (r.Path != nil && !r.Path.MatchString(path)) {
		return false, false
	}
	in.seen++
	nth := max(r.Nth, 1)
	times := r.Times
	if times == 0 {
		times = 1
	}
	if in.seen < nth || (times != Always && in.seen >= nth+times) {
		return true, false
	}
	in.hits++
	return true, true
}

// Fault is what the proxy does to a request a Rule selects. Build one with
// Status, RetryAfter, ResetAfter, Stall, StallAfter, Expire or Hold.
type Fault struct {
	name string
	// before runs before the request is forwarded; it returns true when it
	// answered (or dropped) the request itself.
	before func(ex *exchange) (handled bool)
	// at, when set, runs once atBytes of the response body were sent (and
	// flushed); it returns true when the response must stop there.
	atBytes int64
	at      func(ex *exchange) (stop bool)
}

// String describes the fault, e.g. "status 503".
func (f Fault) String() string { return f.name }

// Status answers with code and a registry-style JSON error body instead of
// forwarding the request. A 401 carries the challenge of the proxy's
// authentication mode (Basic when there is none).
func Status(code int) Fault {
	return Fault{
		name: fmt.Sprintf("status %d", code),
		before: func(ex *exchange) bool {
			if code == http.StatusUnauthorized {
				ex.p.challenge(ex)
			}
			ex.p.writeError(ex, code, errorCode(code), "injected by faultproxy")
			return true
		},
	}
}

// RetryAfter answers with code (429 or 503, usually) and a Retry-After
// header of d, rounded up to whole seconds, instead of forwarding the
// request.
func RetryAfter(code int, d time.Duration) Fault {
	secs := int64((d + time.Second - 1) / time.Second)
	return Fault{
		name: fmt.Sprintf("status %d, Retry-After %d", code, secs),
		before: func(ex *exchange) bool {
			ex.w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			ex.p.writeError(ex, code, errorCode(code), "injected by faultproxy: try again later")
			return true
		},
	}
}

// ResetAfter resets the TCP connection in the middle of a transfer. For a
// request with a body (a blob PATCH, a manifest PUT) the proxy reads n
// bytes of it and resets the connection without forwarding anything. For
// other requests (a blob or manifest GET) the request is forwarded, the
// response headers and n bytes of the body are relayed, and the connection
// is reset.
func ResetAfter(n int64) Fault {
	return Fault{
		name: fmt.Sprintf("reset after %d bytes", n),
		before: func(ex *exchange) bool {
			if !hasBody(ex.r) {
				return false
			}
			_, _ = io.CopyN(io.Discard, ex.r.Body, n)
			ex.reset()
			return true
		},
		atBytes: n,
		at: func(ex *exchange) bool {
			if hasBody(ex.r) {
				return false
			}
			ex.reset()
			return true
		},
	}
}

// Stall holds the request before forwarding it until the client gives up
// (closes the connection), d passes, or the proxy is closed; after d it is
// forwarded as usual. d <= 0 waits for the client or the proxy only. A
// request body is read first, as Hold does, and not answered.
func Stall(d time.Duration) Fault {
	return Fault{
		name: fmt.Sprintf("stall %s", d),
		before: func(ex *exchange) bool {
			return !ex.bufferBody() || !ex.wait(d, nil)
		},
	}
}

// StallAfter forwards the request, relays the response headers and n bytes
// of the body, and then holds the rest as Stall does.
func StallAfter(n int64, d time.Duration) Fault {
	return Fault{
		name:    fmt.Sprintf("stall %s after %d bytes", d, n),
		atBytes: n,
		at: func(ex *exchange) bool {
			return !ex.wait(d, nil)
		},
	}
}

// Expire answers 401 with the proxy's challenge, as a registry does when a
// token has expired, and, under WithTokenAuth, revokes the token the
// request carried, so that the client must fetch a new one.
func Expire() Fault {
	return Fault{
		name: "expire credentials",
		before: func(ex *exchange) bool {
			ex.p.revoke(ex.r)
			ex.p.challenge(ex)
			ex.p.writeError(ex, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required (token expired)")
			return true
		},
	}
}

// Hold holds each request it faults until g is released, then forwards it.
// The first held request closes g.Reached. A request whose client goes away
// (or that is still held when the proxy closes) is dropped, never forwarded.
// To notice a client going away, the proxy first reads a request body of up
// to 4 MiB (a manifest, a small blob) into memory; a client that goes away
// in the middle of a larger upload is only noticed when the request is
// released and forwarding it fails.
func Hold(g *Gate) Fault {
	return Fault{
		name: "hold",
		before: func(ex *exchange) bool {
			if !ex.bufferBody() {
				return true
			}
			g.reach(ex.rec.Request)
			return !ex.wait(0, g.release)
		},
	}
}

const holdBodyLimit = 4 << 20

// bufferBody reads a request body of up to holdBodyLimit bytes into memory,
// so that the server notices when the client goes away. It returns false
// when the client went away while sending it.
func (ex *exchange) bufferBody() bool {
	if !hasBody(ex.r) || ex.r.ContentLength > holdBodyLimit {
		return true
	}
	body := ex.r.Body
	b, err := io.ReadAll(io.LimitReader(body, holdBodyLimit+1))
	if err != nil {
		ex.rec.gone = true
		return false
	}
	ex.r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), body), body}
	return true
}

// Gate coordinates a test with requests held by Hold.
type Gate struct {
	reachOnce   sync.Once
	reached     chan struct{}
	releaseOnce sync.Once
	release     chan struct{}
	mu          sync.Mutex
	first       Request
}

// NewGate returns a closed gate.
func NewGate() *Gate {
	return &Gate{reached: make(chan struct{}), release: make(chan struct{})}
}

// Reached is closed when the first request is held.
func (g *Gate) Reached() <-chan struct{} { return g.reached }

// First returns the first request held (the zero Request before Reached is
// closed).
func (g *Gate) First() Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.first
}

// Release lets every held request, and every later one, through. It is safe
// to call more than once.
func (g *Gate) Release() { g.releaseOnce.Do(func() { close(g.release) }) }

func (g *Gate) reach(r Request) {
	g.reachOnce.Do(func() {
		g.mu.Lock()
		g.first = r
		g.mu.Unlock()
		close(g.reached)
	})
}

func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}

// errorCode is the distribution error code that goes with an HTTP status.
func errorCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusForbidden:
		return "DENIED"
	case http.StatusNotFound:
		return "NAME_UNKNOWN"
	case http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	}
	return "UNKNOWN"
}

// reset aborts the connection with a TCP RST, after flushing what was
// written.
func (ex *exchange) reset() {
	rc := http.NewResponseController(ex.w)
	_ = rc.Flush()
	conn, buf, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
	ex.rec.reset = true
}

// wait holds the exchange until d passes (d > 0), release is closed, the
// client goes away or the proxy closes. It returns true when the request
// should go on: d passed or release was closed.
func (ex *exchange) wait(d time.Duration, release <-chan struct{}) bool {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-release:
		return ex.r.Context().Err() == nil
	case <-ex.r.Context().Done():
		ex.rec.gone = true
		return false
	case <-ex.p.done:
		ex.rec.gone = true
		return false
	}
}
