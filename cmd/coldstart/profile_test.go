package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	profilerun "github.com/coldstart-dev/coldstart/optimize/profile/run"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// profileLayout writes an OCI layout with one image made of the given
// entries and config; cf.Architecture defaults to amd64.
func profileLayout(t *testing.T, cf v1.ConfigFile, entries ...testimage.Entry) string {
	t.Helper()
	l, err := testimage.Layer(entries).Compressed(compression.GZip, testimage.WithParents())
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.ImageFrom(cf, mutate.Addendum{Layer: l})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := testimage.WriteOCI(dir, "", img); err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir
}

// scriptImage is an image whose entrypoint is a shell script.
func scriptImage(t *testing.T) string {
	return profileLayout(t, v1.ConfigFile{Config: v1.Config{Entrypoint: []string{"/app/start.sh"}, Cmd: []string{"serve"}}},
		testimage.File("app/start.sh", "#!/bin/sh\nexec /app/server \"$@\"\n", testimage.Mode(0o755)),
		testimage.File("app/server", "#!/bin/sh\n", testimage.Mode(0o755)),
		testimage.File("app/other", "#!/bin/sh\n", testimage.Mode(0o755)),
		testimage.File("bin/sh", string(elfStub()), testimage.Mode(0o755)),
	)
}

// elfStub is the smallest static x86-64 ELF executable header the static
// profiler recognizes: no interpreter, no libraries.
func elfStub() []byte {
	b := make([]byte, 64)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // 64-bit, little-endian, version 1
	le := func(off int, v uint64, n int) {
		for i := range n {
			b[off+i] = byte(v >> (8 * i))
		}
	}
	le(16, 2, 2)  // ET_EXEC
	le(18, 62, 2) // EM_X86_64
	le(20, 1, 4)  // EV_CURRENT
	le(52, 64, 2) // e_ehsize
	le(54, 56, 2) // e_phentsize
	return b
}

func TestProfileStatic(t *testing.T) {
	ref := scriptImage(t)
	out, errOut, code := run(t, "profile", ref)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var files []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "#") {
			files = append(files, line)
		}
	}
	want := []string{"/app/start.sh", "/bin/sh", "/app/server"}
	if d := cmp.Diff(want, files); d != "" {
		t.Errorf("files (-want +got):\n%s\noutput:\n%s", d, out)
	}
	if !strings.HasPrefix(out, "# coldstart profile (static) linux/amd64 sha256:") {
		t.Errorf("header: %q", out)
	}

	// Overrides: the entrypoint runs another program.
	out, errOut, code = run(t, "profile", "--entrypoint", `["/bin/sh","-c"]`, ref, "/app/other", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	p, err := profile.ReadJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if d := cmp.Diff([]string{"/bin/sh", "/app/other"}, p.Files); d != "" || p.Source != profile.SourceStatic {
		t.Errorf("source %q, files (-want +got):\n%s", p.Source, d)
	}

	// --out: the JSON goes to the file, stdout stays quiet.
	file := filepath.Join(t.TempDir(), "p.json")
	out, errOut, code = run(t, "profile", "--out", file, ref)
	if code != 0 || out != "" {
		t.Fatalf("exit %d, stdout %q: %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "3 files written to "+file) {
		t.Errorf("stderr %q", errOut)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err = profile.ReadJSON(bytes.NewReader(b))
	if err != nil || len(p.Files) != 3 {
		t.Fatalf("profile file: %v %+v", err, p)
	}
	// The same input gives the same bytes.
	out, _, _ = run(t, "profile", "--format", "json", ref)
	if out != string(b) {
		t.Errorf("stdout JSON differs from --out JSON:\n%s\n%s", out, b)
	}
}

func TestProfileUsageErrors(t *testing.T) {
	ref := scriptImage(t)
	noCmd := profileLayout(t, v1.ConfigFile{}, testimage.File("a", "x"))
	arm := profileLayout(t, v1.ConfigFile{Architecture: "arm64", Config: v1.Config{Entrypoint: []string{"/a"}}}, testimage.File("a", "x"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"profile", "--mode", "trace", ref}, `unknown mode "trace"`},
		{[]string{"profile", "--format", "yaml", ref}, `unknown format "yaml"`},
		{[]string{"profile", "--wait-on-port", "80", ref}, "--wait-on-port needs --mode run"},
		{[]string{"profile", "--period", "1s", ref}, "--period needs --mode run"},
		{[]string{"profile", "--mode", "run", "--period", "-1s", ref}, "must be positive"},
		{[]string{"profile", "--mode", "run", "--wait-on-line", "(", ref}, "--wait-on-line"},
		{[]string{"profile", "--mode", "run", "--wait-on-port", "70000", ref}, "not a TCP port"},
		{[]string{"profile", "--env", "NOVALUE", ref}, `--env "NOVALUE": want KEY=VALUE`},
		{[]string{"profile", "--entrypoint", "[1,2]", ref}, "not a JSON array of strings"},
		{[]string{"profile", "--args", "x", ref, "y"}, "not both"},
		{[]string{"profile", noCmd}, "no Entrypoint or Cmd"},
		{[]string{"profile"}, "profile needs an IMAGE"},
		{[]string{"profile", "nope:/x"}, ""},
	} {
		_, errOut, code := run(t, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, errOut, c.want)
		}
	}
	if profilerun.Supported() == nil {
		_, errOut, code := run(t, "profile", "--mode", "run", arm)
		if code != 2 || !strings.Contains(errOut, "linux/arm64 image") || !strings.Contains(errOut, "--mode static") {
			t.Errorf("arm64 image: exit %d, stderr %q", code, errOut)
		}
	}
}

// TestProfileRun runs a static busybox from the host as the entrypoint.
func TestProfileRun(t *testing.T) {
	if err := profilerun.Supported(); err != nil {
		registrytest.SkipOrFail(t, "run profiler unavailable: %v", err)
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		registrytest.SkipOrFail(t, "busybox (busybox-static) not installed")
	}
	if out, _ := exec.Command("ldd", bb).CombinedOutput(); !bytes.Contains(out, []byte("not a dynamic executable")) {
		t.Skipf("%s is not static", bb)
	}
	content, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	ref := profileLayout(t, v1.ConfigFile{Config: v1.Config{Entrypoint: []string{"/bin/busybox"}, Cmd: []string{"true"}}},
		testimage.File("bin/busybox", string(content), testimage.Mode(0o755)),
		testimage.File("etc/motd", "hello\n"),
		testimage.File("etc/unused", "x\n"),
		testimage.Dir("tmp", 0o1777),
	)
	file := filepath.Join(t.TempDir(), "run.json")
	out, errOut, code := run(t, "profile", "--mode", "run", "--format", "json", "--out", file, "--env", "GREETING=hi",
		"--wait-on-line", "^hi ready$", ref, "--", "sh", "-c", `cat /etc/motd >/dev/null; echo "$GREETING ready"; exec sleep 600`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	p, err := profile.ReadJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if d := cmp.Diff([]string{"/bin/busybox", "/etc/motd"}, p.Files); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
	if p.Source != profile.SourceRun || p.Platform != "linux/amd64" || !strings.HasPrefix(p.Image, "sha256:") || len(p.Warnings) != 0 {
		t.Errorf("profile %+v", p)
	}
	b, err := os.ReadFile(file)
	if err != nil || string(b) != out {
		t.Errorf("--out file differs from stdout (%v):\n%s", err, b)
	}
	// A missing program: exit 1, a clear message.
	_, errOut, code = run(t, "profile", "--mode", "run", "--entrypoint", "/bin/nope", ref)
	if code != 1 || !strings.Contains(errOut, "cannot start the entrypoint") || !strings.Contains(errOut, "/bin/nope") {
		t.Errorf("missing entrypoint: exit %d, stderr %q", code, errOut)
	}
}
