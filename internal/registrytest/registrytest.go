// Package registrytest runs an in-process OCI distribution registry for
// tests: ggcr's pkg/registry behind an httptest server on the loopback
// interface. Image references on its Host use plain HTTP automatically
// (ggcr treats 127.0.0.1 as a local registry), so no TLS or credentials are
// needed.
//
// Every request is recorded (method, path and query) so that tests can assert
// the order in which a client wrote blobs and manifests.
package registrytest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Request is one recorded HTTP request.
type Request struct {
	Method string
	// Path is the URL path, e.g. "/v2/repo/manifests/latest".
	Path string
	// Query is the raw query string without "?", e.g. "digest=sha256:...".
	Query string
}

// String formats the request as "METHOD PATH[?QUERY]".
func (r Request) String() string {
	if r.Query == "" {
		return r.Method + " " + r.Path
	}
	return r.Method + " " + r.Path + "?" + r.Query
}

// Server is a running in-process registry.
type Server struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host string
	// URL is "http://127.0.0.1:PORT".
	URL string

	srv *httptest.Server

	mu  sync.Mutex
	log []Request
}

// Option configures New.
type Option func(*config)

type config struct {
	wrap []func(http.Handler) http.Handler
}

// WithMiddleware wraps the registry handler, e.g. to inject failures or
// delays. Middlewares run outermost first, after the request was recorded.
func WithMiddleware(mw func(http.Handler) http.Handler) Option {
	return func(c *config) { c.wrap = append(c.wrap, mw) }
}

// New starts a registry that is shut down when tb's test ends.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var c config
	for _, opt := range opts {
		opt(&c)
	}
	s := &Server{}
	var h = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	for i := len(c.wrap) - 1; i >= 0; i-- {
		h = c.wrap[i](h)
	}
	inner := h
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.log = append(s.log, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery})
		s.mu.Unlock()
		inner.ServeHTTP(w, r)
	}))
	tb.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	s.Host = strings.TrimPrefix(s.srv.URL, "http://")
	return s
}

// Ref returns "HOST/repoAndTag", a reference to an image on this registry.
func (s *Server) Ref(repoAndTag string) string {
	return s.Host + "/" + repoAndTag
}

// Requests returns a copy of the requests received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}
