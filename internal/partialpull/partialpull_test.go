package partialpull

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestResponseBytes: the size of a ranged answer is what Go's net/http
// ServeContent sends (docker-registry serves blobs with it).
func TestResponseBytes(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789"), 123_457)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}))
	defer srv.Close()
	size := int64(len(blob))
	for _, rs := range [][]Range{
		{{0, 1}},
		{{5, 100}},
		{{0, 10}, {20, 5}},
		{{9, 1}, {10, 99_990}, {100_000, 1_000_000}, {1_234_000, 569}},
		{{0, size}, {0, 1}}, // more than the blob: the whole blob
	} {
		var spec []string
		for _, r := range rs {
			spec = append(spec, fmt.Sprintf("%d-%d", r.Offset, r.End()-1))
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Range", "bytes="+strings.Join(spec, ","))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := ResponseBytes(rs, size); got != n {
			t.Errorf("%v: ResponseBytes %d, ServeContent sent %d (%s)", rs, got, n, resp.Status)
		}
	}
}

// layerOf makes a Layer of raw TOC entries, as Open would after reading
// them.
func layerOf(t *testing.T, f Format, tocOffset int64, raw []entry) *Layer {
	t.Helper()
	l := &Layer{Format: f, Size: tocOffset + 1000, raw: raw}
	if err := l.merge(tocOffset); err != nil {
		t.Fatal(err)
	}
	return l
}

func reg(name string, size int64, digest string, off, end int64) entry {
	return entry{Type: "reg", Name: name, Size: size, Digest: digest, Offset: off, EndOffset: end, ChunkDigest: digest}
}

// TestPlan: files the store holds (by content digest) and chunks it holds
// (by chunk digest) are copied, the rest fetched, adjacent chunks of one
// file in one range, other adjacent ranges apart; links, directories and
// empty files cost nothing.
func TestPlan(t *testing.T) {
	prev := layerOf(t, ZstdChunked, 5000, []entry{
		{Type: "dir", Name: "a"},
		reg("a/same", 100, "sha256:same", 10, 60),
		{Type: "reg", Name: "a/big", Size: 300, Digest: "sha256:big1", Offset: 60, EndOffset: 100, ChunkSize: 100, ChunkDigest: "sha256:c1"},
		{Type: "chunk", Name: "a/big", Offset: 100, EndOffset: 140, ChunkOffset: 100, ChunkSize: 100, ChunkDigest: "sha256:c2"},
		{Type: "chunk", Name: "a/big", Offset: 140, EndOffset: 180, ChunkOffset: 200, ChunkSize: 100, ChunkDigest: "sha256:c3"},
	})
	var s Store
	s.Add(prev)
	cur := layerOf(t, ZstdChunked, 9000, []entry{
		{Type: "dir", Name: "a"},
		reg("a/same", 100, "sha256:same", 100, 150),
		reg("a/new", 100, "sha256:new", 150, 200),
		reg("a/new2", 100, "sha256:new2", 200, 260),
		{Type: "reg", Name: "a/empty"},
		{Type: "symlink", Name: "a/link"},
		{Type: "hardlink", Name: "a/hard"},
		// A large file changed in its second chunk only.
		{Type: "reg", Name: "a/big", Size: 300, Digest: "sha256:big2", Offset: 300, EndOffset: 340, ChunkSize: 100, ChunkDigest: "sha256:c1"},
		{Type: "chunk", Name: "a/big", Offset: 340, EndOffset: 380, ChunkOffset: 100, ChunkSize: 100, ChunkDigest: "sha256:c2x"},
		{Type: "chunk", Name: "a/big", Offset: 380, EndOffset: 420, ChunkOffset: 200, ChunkSize: 100, ChunkDigest: "sha256:c3"},
		// A large file all new: its chunks go in one range.
		{Type: "reg", Name: "a/big3", Size: 250, Digest: "sha256:big3", Offset: 500, EndOffset: 540, ChunkSize: 100, ChunkDigest: "sha256:d1"},
		{Type: "chunk", Name: "a/big3", Offset: 540, EndOffset: 580, ChunkOffset: 100, ChunkSize: 100, ChunkDigest: "sha256:d2"},
		{Type: "chunk", Name: "a/big3", Offset: 580, EndOffset: 600, ChunkOffset: 200, ChunkSize: 50, ChunkDigest: "sha256:d3"},
	})
	if cur.Entries != 9 || cur.Files != 5 || cur.FileBytes != 850 {
		t.Errorf("entries %d, files %d of %d bytes; want 9, 5 of 850", cur.Entries, cur.Files, cur.FileBytes)
	}
	p := cur.Plan(&s)
	want := []Range{{150, 50}, {200, 60}, {340, 40}, {500, 100}}
	if d := cmp.Diff(want, p.Ranges); d != "" {
		t.Errorf("ranges (-want +got):\n%s", d)
	}
	if p.FetchedBytes != 100+100+100+250 || p.FetchedFiles != 4 || p.CopiedBytes != 100+200 || p.CopiedFiles != 1 {
		t.Errorf("plan %+v", p)
	}
	if p.ResponseBytes != ResponseBytes(want, cur.Size) || p.ResponseBytes <= 250 {
		t.Errorf("response %d bytes", p.ResponseBytes)
	}
	// Nothing held: every file fetched.
	if p := cur.Plan(nil); p.FetchedFiles != 5 || p.CopiedBytes != 0 {
		t.Errorf("cold plan %+v", p)
	}
}

// TestPlanEStargzEnds: eStargz entries have no endOffset: a file ends
// where the next entry with data starts (the landmarks left out), the last
// at the TOC.
func TestPlanEStargzEnds(t *testing.T) {
	l := layerOf(t, EStargz, 900, []entry{
		{Type: "reg", Name: "a", Size: 10, Digest: "sha256:a", Offset: 100},
		{Type: "reg", Name: ".prefetch.landmark", Size: 1, Digest: "sha256:l", Offset: 300},
		{Type: "dir", Name: "d"},
		{Type: "reg", Name: "d/b", Size: 10, Digest: "sha256:b", Offset: 400},
	})
	p := l.Plan(nil)
	want := []Range{{100, 300}, {400, 500}}
	if d := cmp.Diff(want, p.Ranges); d != "" {
		t.Errorf("ranges (-want +got):\n%s", d)
	}
	if l.Entries != 3 {
		t.Errorf("entries %d, want 3 (the landmark left out)", l.Entries)
	}
}

// TestPlanMerge: above MaxRanges ranges, every gap that costs no more
// than the one that would leave MaxRanges is merged.
func TestPlanMerge(t *testing.T) {
	layer := func(gap func(i int) int64) (*Layer, []entry, int64) {
		var raw []entry
		off := int64(100)
		for i := range 1500 {
			if i > 0 {
				off += gap(i)
			}
			raw = append(raw, reg(fmt.Sprintf("f%04d", i), 50, fmt.Sprintf("sha256:%d", i), off, off+40))
			off += 40
		}
		return layerOf(t, ZstdChunked, off, raw), raw, off
	}
	for _, tc := range []struct {
		name   string
		gap    func(i int) int64
		ranges int
		extra  int64 // gap bytes fetched
	}{
		// Gaps of 1 to 1499 bytes: the 477 of at most 477 bytes (the
		// 477th cheapest) are merged.
		{"distinct", func(i int) int64 { return int64(i) }, 1500 - 477, 477 * 478 / 2},
		// Two of three gaps are empty: the 476th cheapest is 0, so the
		// 1000 empty gaps are merged and no other.
		{"empty", func(i int) int64 {
			if i%3 == 0 {
				return int64(10 + i)
			}
			return 0
		}, 500, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, raw, end := layer(tc.gap)
			p := l.Plan(nil)
			if len(p.Ranges) != tc.ranges {
				t.Errorf("%d ranges, want %d", len(p.Ranges), tc.ranges)
			}
			if p.FetchedBytes != 1500*50 || p.FetchedFiles != 1500 {
				t.Errorf("plan fetches %d bytes of %d files", p.FetchedBytes, p.FetchedFiles)
			}
			var sum int64
			for _, r := range p.Ranges {
				sum += r.Length
			}
			if first, last := p.Ranges[0], p.Ranges[len(p.Ranges)-1]; first.Offset != raw[0].Offset || last.End() != end {
				t.Errorf("ranges span %d-%d, want %d-%d", first.Offset, last.End(), raw[0].Offset, end)
			}
			if sum != 1500*40+tc.extra {
				t.Errorf("ranges hold %d bytes, want %d", sum, 1500*40+tc.extra)
			}
		})
	}
}
