package podman

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// Request is one request a Proxy forwarded.
type Request struct {
	Method, Path, Range string
	Status              int
	// Bytes is the number of response body bytes sent.
	Bytes int64
}

// Blob returns the digest of the blob a blob request names, "" for any
// other request.
func (r Request) Blob() string {
	i := strings.LastIndex(r.Path, "/blobs/")
	if i < 0 {
		return ""
	}
	return r.Path[i+len("/blobs/"):]
}

// Ranges returns the number of ranges the request asked for, 0 without a
// Range header.
func (r Request) Ranges() int {
	if r.Range == "" {
		return 0
	}
	return strings.Count(r.Range, ",") + 1
}

// Proxy is a reverse proxy in front of a registry that records every
// request.
type Proxy struct {
	// Host is "127.0.0.1:PORT", to use in place of the registry's host.
	Host string
	srv  *http.Server
	done chan struct{}
	mu   sync.Mutex
	log  []Request
}

// NewProxy starts a proxy on a free loopback port in front of upstream
// (HOST:PORT, plain HTTP). Close stops it.
func NewProxy(upstream string) (*Proxy, error) {
	up := &url.URL{Scheme: "http", Host: upstream}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Host: ln.Addr().String(), done: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(up)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ModifyResponse = func(r *http.Response) error {
		r.Body = &countingBody{ReadCloser: r.Body, done: func(n int64) {
			p.mu.Lock()
			p.log = append(p.log, Request{Method: r.Request.Method, Path: r.Request.URL.Path,
				Range: r.Request.Header.Get("Range"), Status: r.StatusCode, Bytes: n})
			p.mu.Unlock()
		}}
		return nil
	}
	p.srv = &http.Server{Handler: rp, ErrorLog: log.New(io.Discard, "", 0)}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// Take returns the requests recorded so far, in the order their responses
// ended, and forgets them.
func (p *Proxy) Take() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.log
	p.log = nil
	return l
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	<-p.done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

type countingBody struct {
	io.ReadCloser
	n    int64
	once sync.Once
	done func(int64)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *countingBody) Close() error {
	b.once.Do(func() { b.done(b.n) })
	return b.ReadCloser.Close()
}
