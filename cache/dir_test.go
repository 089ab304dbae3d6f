package cache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/cache"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var stargzAnn = map[string]string{
	"containerd.io/snapshot/stargz/toc.digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
	"io.containers.estargz.uncompressed-size":  "4096",
}

func newDir(t *testing.T, opts ...cache.Option) *cache.Dir {
	t.Helper()
	d, err := cache.NewDir(filepath.Join(t.TempDir(), "cache"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkLayer asserts that got is want as Put: descriptor, DiffID, bytes.
func checkLayer(t *testing.T, got v1.Layer, want *testLayer) {
	t.Helper()
	wd, _ := want.Descriptor()
	gd, err := got.(interface {
		Descriptor() (*v1.Descriptor, error)
	}).Descriptor()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wd, gd); diff != "" {
		t.Errorf("descriptor (-put +got):\n%s", diff)
	}
	if d, _ := got.DiffID(); d != sha(want.raw) {
		t.Errorf("DiffID = %s, want %s", d, sha(want.raw))
	}
	if d, _ := got.Digest(); d != want.digest {
		t.Errorf("Digest = %s, want %s", d, want.digest)
	}
	if n, _ := got.Size(); n != int64(len(want.gz)) {
		t.Errorf("Size = %d, want %d", n, len(want.gz))
	}
	if mt, _ := got.MediaType(); mt != want.mt {
		t.Errorf("MediaType = %s, want %s", mt, want.mt)
	}
	rc, err := got.Compressed()
	if b := readAll(t, rc, err); !bytes.Equal(b, want.gz) {
		t.Errorf("Compressed: %d bytes differ from the %d put", len(b), len(want.gz))
	}
	rc, err = got.Uncompressed()
	if b := readAll(t, rc, err); !bytes.Equal(b, want.raw) {
		t.Errorf("Uncompressed: %d bytes differ from the %d put", len(b), len(want.raw))
	}
}

func TestDirRoundTrip(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	l := newLayer(t, noise("a", 5000), stargzAnn)
	const key = "layer/sha256:aaaa"
	if _, err := d.Get(ctx, key); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Get before Put = %v, want ErrNotFound", err)
	}
	if err := d.Put(ctx, key, l); err != nil {
		t.Fatal(err)
	}
	got, err := d.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	checkLayer(t, got, l)
	// The same key again is fine; another value replaces the entry.
	if err := d.Put(ctx, key, l); err != nil {
		t.Fatal(err)
	}
	l2 := newLayer(t, noise("b", 100), nil)
	if err := d.Put(ctx, key, l2); err != nil {
		t.Fatal(err)
	}
	got, err = d.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	checkLayer(t, got, l2)
	// Nothing left behind in tmp/.
	if ents, _ := os.ReadDir(filepath.Join(d.Path(), "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %d files", len(ents))
	}
}

func TestDirPutChecksDigest(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	l := newLayer(t, []byte("content"), nil)
	l.digest = sha([]byte("something else"))
	err := d.Put(ctx, "layer/x", l)
	if !errors.Is(err, cache.ErrDigestMismatch) {
		t.Fatalf("Put of a layer whose bytes do not match its digest = %v, want ErrDigestMismatch", err)
	}
	if _, err := d.Get(ctx, "layer/x"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get after failed Put = %v, want ErrNotFound", err)
	}
	for _, sub := range []string{"tmp", "keys", "blobs/sha256"} {
		if ents, _ := os.ReadDir(filepath.Join(d.Path(), sub)); len(ents) != 0 {
			t.Errorf("%s/ holds %d files after a failed Put", sub, len(ents))
		}
	}
	ctxc, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Put(ctxc, "layer/y", newLayer(t, []byte("y"), nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Path(), "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %d files after a cancelled Put", len(ents))
	}
}

func TestDirCorruption(t *testing.T) {
	const key = "layer/sha256:cccc"
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, blob, record string)
		reason  string
	}{
		{"truncated blob", func(t *testing.T, blob, _ string) {
			if err := os.Truncate(blob, 100); err != nil {
				t.Fatal(err)
			}
		}, "has 100 bytes"},
		{"flipped byte", func(t *testing.T, blob, _ string) {
			b, err := os.ReadFile(blob)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x01
			if err := os.WriteFile(blob, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "hashes to"},
		{"deleted blob", func(t *testing.T, blob, _ string) {
			if err := os.Remove(blob); err != nil {
				t.Fatal(err)
			}
		}, "missing"},
		{"garbage record", func(t *testing.T, _, record string) {
			if err := os.WriteFile(record, []byte("{\"key\": 12"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "unreadable record"},
		{"record of another key", func(t *testing.T, _, record string) {
			b, err := os.ReadFile(record)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(record, bytes.Replace(b, []byte(key), []byte("layer/other"), 1), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "unreadable record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			logger, logs := newLogger(slog.LevelInfo)
			d := newDir(t, cache.WithLogger(logger))
			l := newLayer(t, noise(tc.name, 3000), stargzAnn)
			if err := d.Put(ctx, key, l); err != nil {
				t.Fatal(err)
			}
			blob, record := cache.BlobPath(d, l.digest), cache.RecordPath(d, key)
			tc.corrupt(t, blob, record)
			got, err := d.Get(ctx, key)
			if !errors.Is(err, cache.ErrNotFound) || got != nil {
				t.Fatalf("Get of a corrupt entry = %v, %v; want a miss", got, err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", err, tc.reason)
			}
			if _, err := os.Stat(record); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("record still there: %v", err)
			}
			if tc.reason != "unreadable record" {
				if _, err := os.Stat(blob); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("corrupt blob still there: %v", err)
				}
			}
			if n := len(logs.lines("level=WARN", "removed", key, tc.reason)); n != 1 {
				t.Errorf("%d warn lines about the removal, want 1; log:\n%s", n, logs)
			}
			// Now a plain miss, not logged again; a new Put heals it.
			if _, err := d.Get(ctx, key); !errors.Is(err, cache.ErrNotFound) {
				t.Errorf("second Get = %v", err)
			}
			if n := len(logs.lines("level=WARN")); n != 1 {
				t.Errorf("%d warn lines after a second Get, want 1", n)
			}
			if err := d.Put(ctx, key, l); err != nil {
				t.Fatal(err)
			}
			got, err = d.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			checkLayer(t, got, l)
		})
	}
}

// A layer returned by Get keeps verifying as it is read, and keeps its bytes
// when the entry is evicted meanwhile.
func TestDirLayerAfterGet(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	l := newLayer(t, noise("after", 4000), nil)
	if err := d.Put(ctx, "k", l); err != nil {
		t.Fatal(err)
	}
	got, err := d.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if removed, _, err := d.Prune(ctx, 0); err != nil || removed != 1 {
		t.Fatalf("Prune(0) = %d, %v", removed, err)
	}
	rc, err := got.Compressed()
	if b := readAll(t, rc, err); !bytes.Equal(b, l.gz) {
		t.Error("bytes changed after eviction")
	}

	if err := d.Put(ctx, "k", l); err != nil {
		t.Fatal(err)
	}
	got, err = d.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// Corrupt the very file the layer holds open.
	f, err := os.OpenFile(cache.BlobPath(d, l.digest), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{l.gz[10] ^ 0xff}, 10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rc, err = got.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, cache.ErrDigestMismatch) {
		t.Errorf("reading bytes changed after Get = %v, want ErrDigestMismatch", err)
	}
	c, ok := got.(io.Closer)
	if !ok {
		t.Fatal("Dir layer is not an io.Closer")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if rc, err := got.Compressed(); err == nil {
		if _, err := io.ReadAll(rc); err == nil {
			t.Error("read after Close succeeded")
		}
	}
}

func keysOf(t *testing.T, d *cache.Dir) []string {
	t.Helper()
	es, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for _, e := range es {
		ks = append(ks, e.Key)
	}
	return ks
}

func TestDirEvictsLeastRecentlyUsed(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	// Each entry is a ~2000-byte blob and a small record: three fit.
	const blobSize = 2000
	layer := func(name string) *testLayer { return newLayer(t, noise(name, blobSize), nil) }
	probe := newDir(t)
	if err := probe.Put(ctx, "a", layer("a")); err != nil {
		t.Fatal(err)
	}
	one, _ := probe.Usage(ctx)
	d := newDir(t, cache.WithClock(clk.now), cache.WithMaxSize(3*one+one/2))
	for _, k := range []string{"a", "b", "c"} {
		if err := d.Put(ctx, k, layer(k)); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, keysOf(t, d)); diff != "" {
		t.Fatalf("keys (-want +got):\n%s", diff)
	}
	if _, err := d.Get(ctx, "a"); err != nil { // a is now the most recent
		t.Fatal(err)
	}
	if err := d.Put(ctx, "d", layer("d")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "c", "d"}, keysOf(t, d)); diff != "" {
		t.Errorf("after Put d, keys (-want +got):\n%s", diff)
	}
	if _, err := d.Get(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "e", layer("e")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"c", "d", "e"}, keysOf(t, d)); diff != "" {
		t.Errorf("after Put e, keys (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(cache.BlobPath(d, layer("a").digest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("evicted blob still there: %v", err)
	}
	es, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(es, func(a, b cache.EntryInfo) int { return strings.Compare(a.Key, b.Key) }) {
		t.Error("List not sorted by key")
	}
	for _, e := range es {
		l := layer(e.Key)
		if e.Digest != l.digest || e.Size != int64(len(l.gz)) || e.MediaType != l.mt || e.LastUsed.IsZero() {
			t.Errorf("List entry %+v", e)
		}
	}
	if u, _ := d.Usage(ctx); u > 3*one+one/2 {
		t.Errorf("usage %d over the cap", u)
	}
}

func TestDirSharedBlobAndProtectedEntry(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	big := newLayer(t, noise("big", 10000), nil)
	d := newDir(t, cache.WithClock(clk.now), cache.WithMaxSize(5000))
	// Bigger than the cap alone: kept, since it was just written.
	if err := d.Put(ctx, "big", big); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"big"}, keysOf(t, d)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	// A second key on the same blob: evicting "big" must keep the blob.
	if err := d.Put(ctx, "same", big); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"same"}, keysOf(t, d)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	got, err := d.Get(ctx, "same")
	if err != nil {
		t.Fatal(err)
	}
	checkLayer(t, got, big)
}

func TestDirPrune(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	for _, k := range []string{"a", "b", "c"} {
		if err := d.Put(ctx, "layer/"+k, newLayer(t, noise(k, 1000), nil)); err != nil {
			t.Fatal(err)
		}
	}
	// Leftovers of a crashed process: a temp file and a blob without a record.
	if err := os.WriteFile(filepath.Join(d.Path(), "tmp", "blob-123"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	orphan := sha([]byte("orphan"))
	if err := os.WriteFile(cache.BlobPath(d, orphan), []byte("orphan"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := d.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	removed, freed, err := d.Prune(ctx, before) // nothing to evict, only leftovers
	if err != nil || removed != 0 || freed != int64(len("orphan")) {
		t.Errorf("Prune(usage) = %d, %d, %v; want 0, %d", removed, freed, err, len("orphan"))
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Path(), "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ still holds %d files", len(ents))
	}
	before -= freed
	removed, freed, err = d.Prune(ctx, 0)
	if err != nil || removed != 3 || freed != before {
		t.Errorf("Prune(0) = %d, %d, %v; want 3, %d", removed, freed, err, before)
	}
	if u, _ := d.Usage(ctx); u != 0 {
		t.Errorf("usage after Prune(0) = %d", u)
	}
	if _, _, err := d.Prune(ctx, -1); err == nil {
		t.Error("Prune(-1) accepted")
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got, err := cache.DefaultDir(); err != nil || got != "/xdg/coldstart" {
		t.Errorf("DefaultDir() = %q, %v", got, err)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got, err := cache.DefaultDir(); err != nil || got != "/home/u/.cache/coldstart" {
		t.Errorf("DefaultDir() = %q, %v", got, err)
	}
}

// benchLayer is an incompressible 16 MiB "compressed" blob (stored as is).
func benchLayer(b *testing.B) *testLayer {
	raw := noise("bench", 16<<20)
	return &testLayer{gz: raw, raw: raw, mt: types.OCILayer, digest: sha(raw)}
}

func BenchmarkDirPut(b *testing.B) {
	ctx := context.Background()
	d, err := cache.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	l := benchLayer(b)
	b.SetBytes(int64(len(l.gz)))
	for b.Loop() {
		if err := d.Put(ctx, "layer/bench", l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDirGet measures a hit: the blob is hashed before Get returns.
func BenchmarkDirGet(b *testing.B) {
	ctx := context.Background()
	d, err := cache.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	l := benchLayer(b)
	if err := d.Put(ctx, "layer/bench", l); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(l.gz)))
	for b.Loop() {
		got, err := d.Get(ctx, "layer/bench")
		if err != nil {
			b.Fatal(err)
		}
		got.(io.Closer).Close()
	}
}
