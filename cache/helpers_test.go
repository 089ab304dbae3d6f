package cache_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testLayer is a gzip layer held in memory, with annotations on its
// descriptor, as the optimizer's converted layers have.
type testLayer struct {
	gz, raw []byte
	mt      types.MediaType
	ann     map[string]string
	digest  v1.Hash // what Digest() claims; the true digest unless lying
}

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// newLayer gzips content; ann, if given, goes on the descriptor.
func newLayer(t testing.TB, content []byte, ann map[string]string) *testLayer {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return &testLayer{gz: buf.Bytes(), raw: content, mt: types.OCILayer, ann: ann, digest: sha(buf.Bytes())}
}

// noise is n deterministic incompressible bytes derived from seed.
func noise(seed string, n int) []byte {
	s := sha256.Sum256([]byte(seed))
	r := rand.New(rand.NewChaCha8(s))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func (l *testLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *testLayer) DiffID() (v1.Hash, error)            { return sha(l.raw), nil }
func (l *testLayer) Size() (int64, error)                { return int64(len(l.gz)), nil }
func (l *testLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *testLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}
func (l *testLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.raw)), nil
}
func (l *testLayer) Descriptor() (*v1.Descriptor, error) {
	return &v1.Descriptor{MediaType: l.mt, Size: int64(len(l.gz)), Digest: l.digest, Annotations: maps.Clone(l.ann)}, nil
}

func readAll(t testing.TB, rc io.ReadCloser, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logBuffer collects log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the lines that contain all of subs.
func (b *logBuffer) lines(subs ...string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		ok := l != ""
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

func newLogger(level slog.Level) (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level})), b
}

// clock is a fake clock that advances a second per reading.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}
