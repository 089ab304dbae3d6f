package shaper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the limiter and the proxy.
const (
	// WriteChunk is the smallest of the largest numbers of response bytes
	// the proxy sends per reservation: a millisecond of the rate, at least
	// WriteChunk and at most MaxWriteChunk, so that concurrent bodies
	// interleave finely without waking the sender more than about a
	// thousand times a second.
	WriteChunk    = 32 << 10
	MaxWriteChunk = 256 << 10
	// MaxLateness is how late a sending stream may wake up and still have
	// its lateness made good: its next bytes are scheduled where its
	// previous ones ended, not when it woke.
	MaxLateness = 50 * time.Millisecond
)

// Limiter paces bytes at a rate shared by all its callers, as a link does:
// it keeps the time at which the link is next free, and every reservation
// of n bytes occupies it for n/rate from then (or from now, if it is free
// earlier). The zero rate means unlimited. A Limiter is safe for concurrent
// use.
type Limiter struct {
	rate float64 // bytes per second

	mu   sync.Mutex
	next time.Time

	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

// NewLimiter returns a limiter of rate bytes per second; rate <= 0 means
// unlimited.
func NewLimiter(rate float64) *Limiter {
	return &Limiter{rate: rate, now: time.Now, sleep: sleepCtx}
}

// Rate returns the rate in bytes per second, 0 when unlimited.
func (l *Limiter) Rate() float64 { return l.rate }

// reserve occupies the link with n bytes, from the later of from and the
// time the link is free, and returns when they are through.
func (l *Limiter) reserve(n int, from time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := from
	if l.next.After(start) {
		start = l.next
	}
	l.next = start.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	return l.next
}

// Reserve occupies the link with n bytes sent by a new sender and returns
// how long the caller must wait before they are through. Callers that
// reserve while the link is busy queue behind the bytes already reserved.
func (l *Limiter) Reserve(n int) time.Duration {
	if l == nil || l.rate <= 0 || n <= 0 {
		return 0
	}
	now := l.now()
	return max(0, l.reserve(n, now).Sub(now))
}

// Stream is one sender on a limiter: a response body. Its bytes follow
// each other on the link without the gaps its own wake-up lateness would
// leave. A Stream is not safe for concurrent use.
type Stream struct {
	l    *Limiter
	done time.Time // when the stream's last bytes are through
}

// Stream returns a new sender.
func (l *Limiter) Stream() *Stream { return &Stream{l: l} }

// Wait reserves n bytes for the stream and sleeps until they are through,
// or until ctx is done. When the stream's previous bytes went through less
// than MaxLateness ago, these follow them directly.
func (s *Stream) Wait(ctx context.Context, n int) error {
	l := s.l
	if l == nil || l.rate <= 0 || n <= 0 {
		return ctx.Err()
	}
	now := l.now()
	from := now
	if !s.done.IsZero() && now.Sub(s.done) < MaxLateness {
		from = s.done
	}
	s.done = l.reserve(n, from)
	if d := s.done.Sub(now); d > 0 {
		return l.sleep(ctx, d)
	}
	return ctx.Err()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Option configures Start.
type Option func(*options) error

type options struct {
	rate   float64
	rtt    time.Duration
	logger *slog.Logger
}

// WithRate sets the bandwidth, in bytes per second, shared by every
// response through the proxy. The default, 0, is unlimited.
func WithRate(bytesPerSecond float64) Option {
	return func(o *options) error {
		if bytesPerSecond < 0 {
			return fmt.Errorf("shaper: negative rate %g", bytesPerSecond)
		}
		o.rate = bytesPerSecond
		return nil
	}
}

// WithRTT sets the latency added before every request is forwarded. The
// default is 0.
func WithRTT(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("shaper: negative RTT %s", d)
		}
		o.rtt = d
		return nil
	}
}

// WithLogger sets the logger for proxy errors. The default discards
// everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("shaper: nil logger")
		}
		o.logger = l
		return nil
	}
}

// Stats counts what went through a proxy.
type Stats struct {
	// Requests is the number of requests forwarded.
	Requests int64
	// Bytes is the number of response body bytes sent.
	Bytes int64
}

// Proxy is a running shaping proxy.
type Proxy struct {
	// Host is "127.0.0.1:PORT", to use in place of the upstream host.
	Host string
	// URL is "http://" + Host.
	URL string

	limiter  *Limiter
	chunk    int
	rtt      time.Duration
	srv      *http.Server
	ln       net.Listener
	done     chan struct{}
	requests atomic.Int64
	bytes    atomic.Int64
	sleep    func(context.Context, time.Duration) error
}

// Start starts a proxy on a free loopback port that forwards to upstream
// ("http://HOST:PORT", "https://HOST" or "HOST:PORT" for plain HTTP). The
// proxy itself speaks plain HTTP. Close stops it.
func Start(upstream string, opts ...Option) (*Proxy, error) {
	o := &options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if !strings.Contains(upstream, "://") {
		upstream = "http://" + upstream
	}
	target, err := url.Parse(upstream)
	if err != nil || target.Host == "" {
		return nil, fmt.Errorf("shaper: invalid upstream %q", upstream)
	}
	if target.Scheme != "http" && target.Scheme != "https" {
		return nil, fmt.Errorf("shaper: upstream %q: want http or https", upstream)
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("shaper: listening: %w", err)
	}
	p := &Proxy{
		Host:    ln.Addr().String(),
		limiter: NewLimiter(o.rate),
		rtt:     o.rtt,
		ln:      ln,
		done:    make(chan struct{}),
		sleep:   sleepCtx,
	}
	p.URL = "http://" + p.Host
	p.chunk = min(MaxWriteChunk, max(WriteChunk, int(o.rate/1000)))
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			if target.Scheme == "http" {
				// A plain HTTP upstream (a local registry) builds URLs
				// that point back at the proxy.
				r.Out.Host = r.In.Host
			}
		},
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
			TLSHandshakeTimeout: 10 * time.Second,
		},
		FlushInterval: 0,
		BufferPool:    bufferPool{},
		ErrorLog:      log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			o.logger.Debug("shaper: forwarding failed", "method", r.Method, "path", r.URL.Path, "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{
		Handler:           p.handler(rp),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.logger.Debug("shaper: serving", "err", err)
		}
	}()
	return p, nil
}

func (p *Proxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		if p.rtt > 0 {
			if err := p.sleep(r.Context(), p.rtt); err != nil {
				return
			}
		}
		next.ServeHTTP(&shapedWriter{ResponseWriter: w, p: p, ctx: r.Context(), s: p.limiter.Stream()}, r)
	})
}

// Stats returns what went through the proxy so far.
func (p *Proxy) Stats() Stats {
	return Stats{Requests: p.requests.Load(), Bytes: p.bytes.Load()}
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	<-p.done
	return err
}

// shapedWriter paces the response body through the proxy's limiter.
type shapedWriter struct {
	http.ResponseWriter
	p   *Proxy
	ctx context.Context
	s   *Stream
}

func (w *shapedWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n := min(len(b), w.p.chunk)
		if err := w.s.Wait(w.ctx, n); err != nil {
			return written, err
		}
		m, err := w.ResponseWriter.Write(b[:n])
		written += m
		w.p.bytes.Add(int64(m))
		if err != nil {
			return written, err
		}
		b = b[n:]
	}
	return written, nil
}

// bufferPool lends the reverse proxy buffers of MaxWriteChunk bytes.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { return make([]byte, MaxWriteChunk) }}

func (bufferPool) Get() []byte { return buffers.Get().([]byte) }

func (bufferPool) Put(b []byte) {
	//lint:ignore SA6002 httputil.BufferPool hands out slices; the header allocation is negligible next to 256 KiB
	buffers.Put(b)
}

// Flush lets the reverse proxy flush every write, so that pacing reaches
// the socket.
func (w *shapedWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *shapedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ParseRate parses a bandwidth such as "100Mbit", "1Gbit/s", "10Gbps",
// "500kbit", "12.5MB/s" or "8MiB/s" into bytes per second. "bit" and a
// lower-case "b" mean bits, an upper-case "B" means bytes; k, M and G are
// powers of 1000, Ki, Mi and Gi powers of 1024.
func ParseRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(t, "/s")
	if strings.HasSuffix(t, "bps") || strings.HasSuffix(t, "Bps") {
		t = t[:len(t)-2]
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i <= 0 {
		return 0, fmt.Errorf("invalid rate %q: want a number and a unit such as 100Mbit or 12.5MB/s", s)
	}
	f, err := strconv.ParseFloat(t[:i], 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid rate %q: want a positive number", s)
	}
	unit := strings.TrimSpace(t[i:])
	var perUnit float64
	switch {
	case strings.HasSuffix(strings.ToLower(unit), "bit"):
		perUnit, unit = 1.0/8, unit[:len(unit)-3]
	case strings.HasSuffix(unit, "b"):
		perUnit, unit = 1.0/8, unit[:len(unit)-1]
	case strings.HasSuffix(unit, "B"):
		perUnit, unit = 1, unit[:len(unit)-1]
	default:
		return 0, fmt.Errorf("invalid rate %q: unknown unit %q (use bit, kbit, Mbit, Gbit, B, KB, MB, GB, KiB, MiB, GiB)", s, t[i:])
	}
	mult, ok := ratePrefixes[unit]
	if !ok {
		return 0, fmt.Errorf("invalid rate %q: unknown prefix %q (use k, M, G, Ki, Mi or Gi)", s, unit)
	}
	return f * mult * perUnit, nil
}

var ratePrefixes = map[string]float64{
	"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "g": 1e9, "G": 1e9,
	"Ki": 1 << 10, "ki": 1 << 10, "Mi": 1 << 20, "mi": 1 << 20, "Gi": 1 << 30, "gi": 1 << 30,
}
