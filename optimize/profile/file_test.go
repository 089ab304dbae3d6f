package profile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParse reads each profile file format through the one sniffer and
// checks what its Profiler returns for an image.
func TestParse(t *testing.T) {
	m := glibcRoot()
	m.text("/app/run.sh", "")
	m.text("/etc/hosts", "")
	m.text("/etc/hostname", "")
	for _, tc := range []struct {
		name, data string
		want       []string
		source     string
		kind       string // the name's prefix: the format and its rules
	}{
		{"profile JSON", `{"source": "run", "files": ["/app/run.sh", "/etc/hosts"]}`, []string{"/app/run.sh", "/etc/hosts"}, SourceRun, "file/"},
		{"profile JSON without files", `{"source": "static", "files": []}`, []string{}, SourceStatic, "file/"},
		{"record-in", "{\"path\": \"app/run.sh\"}\n{\"path\": \"/etc/hosts\", \"layerIndex\": 0}\n", []string{"/app/run.sh", "/etc/hosts"}, SourceFile, "file/"},
		{"path list", "# start-up\r\n/app/run.sh\r\n\t/etc/host*\r\n", []string{"/app/run.sh", "/etc/hostname", "/etc/hosts"}, SourceFile, "paths/2/"},
		{"empty path list", "", []string{}, SourceFile, "paths/2/"},
	} {
		pr, err := Parse(tc.name, []byte(tc.data))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		sum := sha256.Sum256([]byte(tc.data))
		if want := tc.kind + hex.EncodeToString(sum[:]); pr.Name() != want {
			t.Errorf("%s: name %q, want %q", tc.name, pr.Name(), want)
		}
		p, err := pr.Profile(context.Background(), nil, m)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d := cmp.Diff(tc.want, p.Files); d != "" || p.Source != tc.source {
			t.Errorf("%s: source %q, files (-want +got):\n%s", tc.name, p.Source, d)
		}
		// Every call returns a profile of its own: changing one changes
		// nothing the next call returns.
		p.Image = "sha256:changed"
		p.Files = append(p.Files[:0:0], "/changed")
		again, err := pr.Profile(context.Background(), nil, m)
		if err != nil || again.Image != "" || !cmp.Equal(again.Files, tc.want) {
			t.Errorf("%s: a second call gives %+v, %v", tc.name, again, err)
		}
	}
}

// TestParseRejects checks that data in none of the formats, or a document
// its reader rejects, fails at once with an error that names the data and
// says what was wanted.
func TestParseRejects(t *testing.T) {
	random := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	for _, tc := range []struct {
		name, data string
		want       []string
	}{
		{"random.bin", string(random), []string{"profile random.bin: not a profile", "path list", `{"files"`, `{"path"`, "is not text"}},
		{"nul.txt", "/app/run.sh\n/etc/\x00hosts\n", []string{"profile nul.txt: not a profile", "line 2", "byte 0x00 at column 6"}},
		{"escape.txt", "/app/\x1b[31mred\n", []string{"line 1", "byte 0x1b"}},
		{"long.txt", "/" + strings.Repeat("x", 70<<10), []string{"profile long.txt", "longer than"}},
		{"broken.json", `{"source": "run", "files": ["relative"]}`, []string{"profile broken.json", "not an absolute, clean file path"}},
		{"source.json", `{"source": "guess", "files": ["/a"]}`, []string{"profile source.json", "unknown source"}},
		{"record.jsonl", "{\"path\": \"/a\"}\n{not json\n", []string{"profile record.jsonl", "record entry 2"}},
	} {
		_, err := Parse(tc.name, []byte(tc.data))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !errors.Is(err, ErrInvalidProfile) && tc.name != "record.jsonl" {
			t.Errorf("%s: %v does not wrap ErrInvalidProfile", tc.name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "p.txt")
	if err := os.WriteFile(name, []byte("/etc/hosts\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pr, err := ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pr.Profile(context.Background(), nil, nil)
	if err != nil || !cmp.Equal(p.Files, []string{"/etc/hosts"}) {
		t.Errorf("%+v, %v", p, err)
	}
	bin := filepath.Join(dir, "p.bin")
	if err := os.WriteFile(bin, []byte("\x7fELF\x02\x01\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(bin); err == nil || !strings.Contains(err.Error(), bin) {
		t.Errorf("binary file: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
