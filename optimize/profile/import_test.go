package profile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadPathList(t *testing.T) {
	m := glibcRoot()
	for _, f := range []string{"/app/static/css/a.css", "/app/static/js/b.js", "/app/static/js/vendor/c.js", "/app/static/x.txt", "/app/static/.hidden.js"} {
		m.text(f, "")
	}
	m.link("/app/static/js/link.js", "vendor/c.js")
	list := `# prioritized files

/lib/x86_64-linux-gnu/libc.so.6
app/static/**/*.js
  /usr/lib/x86_64-linux-gnu/libz*
/app/static/css
/nonexistent
/etc/*.conf
/app/static/?.txt
`
	p, err := ReadPathList(strings.NewReader(list), m)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/lib", x64lib + "libc.so.6",
		"/app/static/.hidden.js", "/app/static/js/b.js", "/app/static/js/link.js", "/app/static/js/vendor/c.js",
		x64lib + "libz.so.1", x64lib + "libz.so.1.2.13",
		"/app/static/css", // a directory alone, not what is below it
		"/app/static/x.txt",
	}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if p.Source != SourceFile {
		t.Errorf("source %q", p.Source)
	}
	for _, w := range []string{"line 7: /nonexistent: file does not exist", "line 8: /etc/*.conf matches nothing"} {
		if !hasWarning(p, w) {
			t.Errorf("no warning %q in %q", w, p.Warnings)
		}
	}

	// Without a filesystem paths are kept as written; wildcards need one.
	p, err = ReadPathList(strings.NewReader("usr/bin/x\n/a/../b\n"), nil)
	if err != nil || !cmp.Equal(p.Files, []string{"/usr/bin/x", "/b"}) {
		t.Errorf("without FS: %v, %v", p, err)
	}
	if _, err := ReadPathList(strings.NewReader("/a/*\n"), nil); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("glob without FS: %v", err)
	}
	if _, err := ReadPathList(strings.NewReader(strings.Repeat("x", 70<<10)), nil); err == nil {
		t.Errorf("an over-long line was accepted")
	}
}

// TestPathListDirectories checks the rule of issue #14: a directory in a
// path list, as a trace names the directories a program lists, means that
// directory alone; "DIR/**" means every file below it. (A trace of 137
// paths that named directories became a profile of 1216 files, a 22 MB
// prefetch instead of 9.5 MB.)
func TestPathListDirectories(t *testing.T) {
	m := glibcRoot()
	const lib = "/usr/lib/python3.11"
	m.text(lib+"/os.py", "")
	m.text(lib+"/json/__init__.py", "")
	m.text(lib+"/json/decoder.py", "")
	m.link(lib+"/json/latest.py", "decoder.py")
	for i := range 100 {
		m.text(fmt.Sprintf("%s/unused/mod%03d.py", lib, i), "")
	}
	read := func(list string) []string {
		t.Helper()
		p, err := ReadPathList(strings.NewReader(list), m)
		if err != nil {
			t.Fatal(err)
		}
		return p.Files
	}
	// A trace: the program listed the directories and read two files.
	trace := lib + "\n" + lib + "/json\n" + lib + "/os.py\n" + lib + "/json/decoder.py\n"
	want := []string{lib, lib + "/json", lib + "/os.py", lib + "/json/decoder.py"}
	if d := cmp.Diff(want, read(trace)); d != "" {
		t.Errorf("trace (-want +got):\n%s", d)
	}
	// A directory reached through a link: the link, then the directory.
	if d := cmp.Diff([]string{"/lib", "/usr/lib/x86_64-linux-gnu"}, read("/lib/x86_64-linux-gnu/\n")); d != "" {
		t.Errorf("linked directory (-want +got):\n%s", d)
	}
	// DIR/** is the subtree: its files and links (and what the links
	// resolve to), sorted, never the directories themselves.
	got := read(lib + "/json/**\n")
	want = []string{lib + "/json/__init__.py", lib + "/json/decoder.py", lib + "/json/latest.py"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("json/** (-want +got):\n%s", d)
	}
	if n := len(read(lib + "/**\n")); n != 104 {
		t.Errorf("%s/** lists %d entries, want the 104 files and links below it", lib, n)
	}
	// Without a filesystem a directory is kept as written, like any path.
	p, err := ReadPathList(strings.NewReader(lib+"/\n"), nil)
	if err != nil || !cmp.Equal(p.Files, []string{lib}) {
		t.Errorf("without FS: %v, %v", p, err)
	}
}

func TestReadRecordIn(t *testing.T) {
	in := `{"path":"bin/ls","manifestDigest":"sha256:0123","layerIndex":0}
{"path":"/lib/x.so"}
{"path":"bin/ls","layerIndex":2}
{"path":""}
{"path":"./etc/../etc/passwd"}{"path":"usr/share/a b"}
`
	p, err := ReadRecordIn(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := &Profile{Source: SourceFile, Files: []string{"/bin/ls", "/lib/x.so", "/etc/passwd", "/usr/share/a b"}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{`{"path": 1}`, `{"path":"a"}` + "\n" + `{"path":`, `not json`} {
		if _, err := ReadRecordIn(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "reading record entry") {
			t.Errorf("ReadRecordIn(%q) = %v", bad, err)
		}
	}
	p, err = ReadRecordIn(strings.NewReader(""))
	if err != nil || len(p.Files) != 0 {
		t.Errorf("empty record: %v, %v", p, err)
	}
}

func TestProfileJSON(t *testing.T) {
	p := &Profile{Image: "example.com/app:1", Platform: "linux/amd64", Source: SourceStatic,
		Files: []string{"/bin", "/usr/bin/sh"}, Warnings: []string{"a <warning> & more"}}
	var b bytes.Buffer
	if err := p.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	golden := `{
  "image": "example.com/app:1",
  "platform": "linux/amd64",
  "source": "static",
  "files": [
    "/bin",
    "/usr/bin/sh"
  ],
  "warnings": [
    "a <warning> & more"
  ]
}
`
	if diff := cmp.Diff(golden, b.String()); diff != "" {
		t.Errorf("WriteJSON (-want +got):\n%s", diff)
	}
	back, err := ReadJSON(&b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	b.Reset()
	if err := (&Profile{Source: SourceRun}).WriteJSON(&b); err != nil || b.String() != "{\n  \"source\": \"run\",\n  \"files\": []\n}\n" {
		t.Errorf("empty profile: %q, %v", b.String(), err)
	}

	p2, err := ReadJSON(strings.NewReader(`{"source":"file","files":["/a","/b","/a"],"extra":1}`))
	if err != nil || !cmp.Equal(p2.Files, []string{"/a", "/b"}) {
		t.Errorf("duplicates: %v, %v", p2, err)
	}
	for _, bad := range []string{
		`{"source":"guess","files":[]}`,
		`{"source":"static","files":["relative"]}`,
		`{"source":"static","files":["/a/../b"]}`,
		`{"source":"static","files":["/"]}`,
		`{"source":"static","files":[]} {}`,
		`[]`,
	} {
		_, err := ReadJSON(strings.NewReader(bad))
		if err == nil {
			t.Errorf("ReadJSON(%s) succeeded", bad)
		} else if !errors.Is(err, ErrInvalidProfile) && bad != `[]` {
			t.Errorf("ReadJSON(%s) = %v, want ErrInvalidProfile", bad, err)
		}
	}
}

func TestProfileText(t *testing.T) {
	p := &Profile{Image: "sha256:abcd", Platform: "linux/amd64", Source: SourceStatic,
		Files: []string{"/bin", "/usr/bin/sh", "/etc/a b"}, Warnings: []string{"two\nlines", "other"}}
	var b bytes.Buffer
	if err := p.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	golden := `# coldstart profile (static) linux/amd64 sha256:abcd: 3 files
# warning: two lines
# warning: other
/bin
/usr/bin/sh
/etc/a b
`
	if d := cmp.Diff(golden, b.String()); d != "" {
		t.Errorf("WriteText (-want +got):\n%s", d)
	}
	// The text is a path list of the same files.
	back, err := ReadPathList(&b, nil)
	if err != nil || !cmp.Equal(back.Files, p.Files) {
		t.Errorf("read back: %v, %v", back, err)
	}
	b.Reset()
	if err := (&Profile{Source: SourceRun}).WriteText(&b); err != nil || b.String() != "# coldstart profile (run): 0 files\n" {
		t.Errorf("empty profile: %q, %v", b.String(), err)
	}
}
