package optimize

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestAnalysisFitsWidth: text analysis fits the width asked: long paths
// keep their start and their file name around "…", sentences wrap, and
// without a width nothing is cut.
func TestAnalysisFitsWidth(t *testing.T) {
	long := "/usr/share/locale/" + strings.Repeat("very-long-directory-name/", 6) + "messages.mo"
	a := &Analysis{
		Digest:   "sha256:" + strings.Repeat("ab", 32),
		Platform: "linux/amd64",
		Layers:   []LayerAnalysis{{Digest: "sha256:" + strings.Repeat("cd", 32), Size: 1 << 20, UncompressedSize: 3 << 20, Files: 12, WastedBytes: 4096}},
		TopWasted: []WastedFile{
			{Path: long, Size: 4096, Layer: 0, Reason: "overwritten", By: 1},
			{Path: "/etc/short", Size: 10, Layer: 0, Reason: "deleted", By: 1},
		},
		WastedBytes: 4106, FileBytes: 1 << 20, Efficiency: 0.99, CopyUpBytes: 5 << 20,
	}
	for _, width := range []int{80, 64} {
		var b bytes.Buffer
		if err := a.WriteText(&b, width); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		for i, line := range lines {
			if i >= 1 && i <= 1+len(a.Layers)+1 {
				continue // the layer table: about 75 columns, kept
			}
			if n := utf8.RuneCountInString(line); n > width {
				t.Errorf("width %d: %d columns: %q", width, n, line)
			}
		}
		if !strings.Contains(out, "/usr/sh") || !strings.Contains(out, "…") || !strings.Contains(out, "messages.mo") || !strings.Contains(out, "/etc/short") {
			t.Errorf("width %d: the long path is not cut in the middle, or the short one is lost:\n%s", width, out)
		}
	}
	var b bytes.Buffer
	if err := a.Write(&b, FormatText); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), long) || !strings.Contains(b.String(), a.Digest) {
		t.Errorf("without a width, text is cut:\n%s", b.String())
	}
	for _, tc := range []struct {
		in    string
		width int
		want  string
	}{
		{"abcdefghij", 5, "ab…ij"},
		{"/usr/share/locale/de/LC_MESSAGES/messages.mo", 24, "/usr/share/…/messages.mo"},
		{"/a/b", 24, "/a/b"},
	} {
		if got := truncateMiddle(tc.in, tc.width); got != tc.want || utf8.RuneCountInString(got) > tc.width {
			t.Errorf("truncateMiddle(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}
