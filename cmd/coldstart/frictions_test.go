package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDestinationCheckedFirst: a destination that cannot be written fails
// in under 2 s, before the source is read or anything converted, with an
// error that names it and says why.
func TestDestinationCheckedFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo image")
	}
	src := demoLayout(t)
	// A port nothing listens on: a registry that is down.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dst, want string }{
		{down + "/app:v1", "connection refused"},
		{"oci:/proc/nope", "/proc"},
		{"oci:" + file, "is not a directory"},
		{"docker-archive:/proc/nope/out.tar", "/proc/nope"},
	} {
		t.Run(tc.dst, func(t *testing.T) {
			start := time.Now()
			_, stderr, code := run(t, "optimize", "--no-cache", "oci:"+src, tc.dst)
			took := time.Since(start)
			if code != 1 {
				t.Fatalf("exit %d, want 1: %s", code, stderr)
			}
			if !strings.Contains(stderr, "cannot write") || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not say it cannot write, or %q", stderr, tc.want)
			}
			if took > 2*time.Second {
				t.Errorf("failed after %v, want under 2 s", took)
			}
		})
	}
}

// TestUsageErrors: usage errors exit 2 and name the command and its usage;
// a mistyped command gets a suggestion; --version answers.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"verify", "oci:a"}, []string{"coldstart verify takes 2 argument(s), got 1", "usage: coldstart verify SRC DST"}},
		{[]string{"optimize"}, []string{"coldstart optimize takes 2 argument(s), got 0"}},
		{[]string{"optimze", "a", "b"}, []string{`unknown command "optimze"`, `did you mean "optimize"?`}},
		{[]string{"analyze", "--nope", "x"}, []string{"coldstart analyze: unknown flag: --nope"}},
		{[]string{"optimize", "--to", "lz4", "oci:a", "oci:b"}, []string{"--to", "lz4"}},
		{[]string{"optimize", "--chunk-size", "lots", "oci:a", "oci:b"}, []string{"--chunk-size"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, stderr, code := run(t, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2: %s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not say %q", stderr, w)
				}
			}
		})
	}
	out, _, code := run(t, "--version")
	if code != 0 || !strings.Contains(out, "coldstart version") {
		t.Errorf("--version: exit %d, %q", code, out)
	}
}

// TestSummaryFormatsCompare: the before/after estimate is in every summary
// format, not only text.
func TestSummaryFormatsCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo image")
	}
	src := demoLayout(t)
	dir := t.TempDir()
	out, stderr, code := run(t, "optimize", "--no-cache", "--format", "json", "oci:"+src, "oci:"+filepath.Join(dir, "json"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Digest      string
		Comparisons []struct{ Ratios []struct{ Metric string } }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Digest == "" || len(res.Comparisons) != 1 || len(res.Comparisons[0].Ratios) == 0 {
		t.Errorf("json summary has no comparison: %s", out)
	}
	out, stderr, code = run(t, "optimize", "--no-cache", "--format", "markdown", "oci:"+src, "oci:"+filepath.Join(dir, "md"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "lazy start") || !strings.Contains(out, "|") {
		t.Errorf("markdown summary has no comparison table:\n%s", out)
	}
}

// TestReportFileMode: a --report file is readable by others, as files a
// command writes are (umask permitting).
func TestReportFileMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the demo image")
	}
	src := demoLayout(t)
	dir := t.TempDir()
	svg := filepath.Join(dir, "x.svg")
	if _, stderr, code := run(t, "optimize", "--no-cache", "--report", svg, "oci:"+src, "oci:"+filepath.Join(dir, "out")); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(svg)
	if err != nil {
		t.Fatal(err)
	}
	if want := 0o644 &^ umask(); fi.Mode().Perm() != want {
		t.Errorf("%s has mode %o, want %o", svg, fi.Mode().Perm(), want)
	}
}
