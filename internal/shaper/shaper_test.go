package shaper

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that only moves when a sleeper sleeps.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	slept   []time.Duration
	total   time.Duration
	advance bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), advance: true}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.total += d
	if c.advance {
		c.t = c.t.Add(d)
	}
	return nil
}

func TestLimiterReserve(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(1000) // 1000 B/s
	l.now = clk.now

	if d := l.Reserve(100); d != 100*time.Millisecond {
		t.Fatalf("100 bytes wait %s, want 100ms", d)
	}
	// A second sender at the same instant queues behind the first.
	if d := l.Reserve(500); d != 600*time.Millisecond {
		t.Fatalf("queued sender waits %s, want 600ms", d)
	}
	// An idle link gives no credit.
	clk.t = clk.t.Add(10 * time.Second)
	if d := l.Reserve(100); d != 100*time.Millisecond {
		t.Fatalf("after idle: wait %s, want 100ms", d)
	}
}

func TestLimiterUnlimited(t *testing.T) {
	var l *Limiter
	if d := l.Reserve(1 << 30); d != 0 {
		t.Fatalf("nil limiter waits %s", d)
	}
	if d := NewLimiter(0).Reserve(1 << 30); d != 0 {
		t.Fatalf("unlimited limiter waits %s", d)
	}
	if err := NewLimiter(0).Stream().Wait(context.Background(), 1<<30); err != nil {
		t.Fatal(err)
	}
}

// TestStreamMakesGoodLateness: a sender that wakes up late every time
// still gets the full rate: n bytes take n/rate plus at most the last
// lateness, whatever the chunking. A sender that pauses longer than MaxLateness
// gets no credit for the pause.
func TestStreamMakesGoodLateness(t *testing.T) {
	const late = 3 * time.Millisecond
	for _, chunk := range []int{1000, 4096, WriteChunk} {
		clk := newFakeClock()
		l := NewLimiter(1e6)
		l.now = clk.now
		l.sleep = func(ctx context.Context, d time.Duration) error {
			return clk.sleep(ctx, d+late) // the scheduler is always late
		}
		s := l.Stream()
		start := clk.now()
		const n = 1_000_000
		for sent := 0; sent < n; sent += chunk {
			if err := s.Wait(context.Background(), min(chunk, n-sent)); err != nil {
				t.Fatal(err)
			}
		}
		if got := clk.now().Sub(start); got < time.Second || got > time.Second+late {
			t.Errorf("chunk %d: %s for a second of bytes, want between 1s and 1s+%s", chunk, got, late)
		}
	}
	clk := newFakeClock()
	l := NewLimiter(1000)
	l.now, l.sleep = clk.now, clk.sleep
	s := l.Stream()
	_ = s.Wait(context.Background(), 100)
	clk.t = clk.t.Add(time.Second) // a real pause
	before := clk.total
	_ = s.Wait(context.Background(), 100)
	if d := clk.total - before; d != 100*time.Millisecond {
		t.Errorf("after a pause the stream waited %s, want 100ms", d)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{
		"100Mbit": 12.5e6, "1Gbit": 125e6, "10Gbit/s": 1.25e9, "10Gbps": 1.25e9, "500kbit": 62500,
		"12.5MB/s": 12.5e6, "8MiB/s": 8 << 20, "100Mb": 12.5e6, "200 Mbit": 25e6, "1000B": 1000,
	} {
		got, err := ParseRate(in)
		if err != nil {
			t.Errorf("ParseRate(%q): %v", in, err)
			continue
		}
		if math.Abs(got-want) > 1e-6*want {
			t.Errorf("ParseRate(%q) = %g, want %g", in, got, want)
		}
	}
	for _, in := range []string{"", "fast", "-1Mbit", "0Mbit", "10", "10 furlongs", "Mbit", "1Xbit"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) succeeded", in)
		}
	}
}

// upstream serves a fixed blob with range support and counts requests.
func upstream(t *testing.T, blob []byte) (*httptest.Server, *int) {
	var n int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		if r.URL.Path != "/blob" {
			w.Header().Set("Location", "http://"+r.Host+"/blob")
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(blob))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestProxyForwardsRangesAndCounts(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789"), 10000)
	up, upCount := upstream(t, blob)
	p, err := Start(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	req, _ := http.NewRequest(http.MethodGet, p.URL+"/blob", nil)
	req.Header.Set("Range", "bytes=1000-1999")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, blob[1000:2000]) {
		t.Fatalf("range through proxy: %s, %d bytes", resp.Status, len(body))
	}
	// The upstream sees the proxy's host, so the URLs it builds point back
	// at the proxy.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = c.Get(p.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, p.URL) {
		t.Fatalf("Location %q does not point at the proxy %s", loc, p.URL)
	}
	st := p.Stats()
	if st.Requests != 2 || *upCount != 2 || st.Bytes != 1000 {
		t.Fatalf("stats %+v, upstream saw %d requests; want 2 requests and 1000 bytes", st, *upCount)
	}
}

// TestProxyShapes checks, with a fake clock, that every request costs one
// RTT and that the bodies of concurrent requests are paced by one shared
// link: the clock ends at bytes / rate.
func TestProxyShapes(t *testing.T) {
	blob := make([]byte, 300_000)
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	up, _ := upstream(t, blob)
	const rate = 1e6
	p, err := Start(up.URL, WithRate(rate), WithRTT(25*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	clk := newFakeClock()
	var rttMu sync.Mutex
	var rtts []time.Duration
	p.sleep = func(_ context.Context, d time.Duration) error {
		rttMu.Lock()
		rtts = append(rtts, d)
		rttMu.Unlock()
		return nil
	}
	p.limiter.now, p.limiter.sleep = clk.now, clk.sleep

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(p.URL + "/blob")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(b, blob) {
				errs <- fmt.Errorf("request %d: %d bytes, %v", i, len(b), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(rtts) != 3 {
		t.Fatalf("%d RTT sleeps, want 3", len(rtts))
	}
	for _, d := range rtts {
		if d != 25*time.Millisecond {
			t.Fatalf("RTT sleep %s, want 25ms", d)
		}
	}
	want := time.Duration(float64(3*len(blob)) / rate * float64(time.Second))
	if got := clk.now().Sub(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); got-want < -time.Millisecond || got-want > time.Millisecond {
		t.Fatalf("the bodies took %s on the link, want %s", got, want)
	}
	for _, d := range clk.slept {
		if d > time.Duration(float64(3*WriteChunk)/rate*float64(time.Second))+time.Millisecond {
			t.Fatalf("one write waited %s: more than three chunks of queue", d)
		}
	}
}

func TestStartErrors(t *testing.T) {
	for _, up := range []string{"ftp://example.com", "http://", "::"} {
		if p, err := Start(up); err == nil {
			p.Close()
			t.Errorf("Start(%q) succeeded", up)
		}
	}
	if _, err := Start("127.0.0.1:1", WithRate(-1)); err == nil {
		t.Error("negative rate accepted")
	}
	if _, err := Start("127.0.0.1:1", WithRTT(-time.Second)); err == nil {
		t.Error("negative RTT accepted")
	}
}
