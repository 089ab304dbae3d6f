//go:build linux

package run_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/registrytest"
	"github.com/coldstart-dev/coldstart/internal/rootfs"
	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/coldstart-dev/coldstart/optimize/profile/run"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The loader and libc of the host, which the test images copy.
var (
	hostLoader = "/lib64/ld-linux-x86-64.so.2"
	hostLibc   = "/lib/x86_64-linux-gnu/libc.so.6"
)

func requireHostLibs(t *testing.T) (loader, libc string) {
	t.Helper()
	for _, p := range []string{hostLoader, hostLibc} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("the test images copy %s from the host (x86-64 Debian): %v", p, err)
		}
	}
	return realPath(t, hostLoader), realPath(t, hostLibc)
}

// TestRunRecordsPrograms runs a shell that runs two programs and checks that
// the programs, the loader and the libraries they map are recorded, in the
// order they were first opened.
func TestRunRecordsPrograms(t *testing.T) {
	requireRun(t)
	loader, libc := requireHostLibs(t)
	h := baseTree(t)
	h.addProgram("/usr/bin/ls")
	h.addProgram("/usr/bin/env")
	img := imageOf(t, v1.Config{Entrypoint: []string{"/bin/sh", "-c", "ls / >/dev/null; env >/dev/null"}}, h.layer())
	p, err := runImage(t, context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if p.Source != profile.SourceRun {
		t.Errorf("source %q, want %q", p.Source, profile.SourceRun)
	}
	dash := realPath(t, "/bin/sh")
	ls := realPath(t, "/usr/bin/ls")
	env := realPath(t, "/usr/bin/env")
	order := []string{dash, loader, libc, ls, env}
	last := -1
	for _, f := range order {
		i := indexOf(p.Files, f)
		if i < 0 {
			t.Fatalf("%s not recorded: %q", f, p.Files)
		}
		if i < last {
			t.Errorf("%s recorded out of order: %q", f, p.Files)
		}
		last = i
	}
	if p.Files[0] != dash {
		t.Errorf("first file %s, want the entrypoint %s", p.Files[0], dash)
	}
	if i := indexOf(p.Files, loader); i != 1 {
		t.Errorf("the loader is at %d, want right after the program: %q", i, p.Files)
	}
	for _, f := range p.Files {
		if strings.HasPrefix(f, "/proc") || strings.HasPrefix(f, "/dev") || strings.HasPrefix(f, "/sys") {
			t.Errorf("recorded %s, which is not an image file", f)
		}
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %q", p.Warnings)
	}
}

// TestRunScriptAsUser runs a shell script entrypoint as a non-root user of
// the image, in a working directory that does not exist yet, and checks
// what the process saw: its identity, environment and sandbox.
func TestRunScriptAsUser(t *testing.T) {
	requireRun(t)
	h := baseTree(t)
	h.addProgram("/usr/bin/env")
	h.file("/app/start.sh", `#!/bin/sh
while read k v; do
  case $k in Uid:|Gid:|Groups:) echo "$k $v";; esac
done < /proc/self/status
echo "pwd=$(pwd) home=$HOME host=$(hostname 2>/dev/null || echo -)"
echo created > /tmp/made-by-app
read line < /tmp/made-by-app
echo "read=$line"
if echo x > /etc/passwd 2>/dev/null; then echo etc-writable; fi
exec env
`, 0o755)
	h.file("/app/data.txt", "unused", 0o644)
	img := imageOf(t, v1.Config{Entrypoint: []string{"/app/start.sh"}, User: "app", WorkingDir: "/work/here",
		Env: []string{"GREETING=hi", "PATH=/usr/bin:/bin"}}, h.layer())
	var out bytes.Buffer
	p, err := runImage(t, context.Background(), img, run.WithOutput(&out))
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"Uid: 1000\t1000\t1000\t1000", "Gid: 1000\t1000\t1000\t1000", "Groups: 50 1000",
		"pwd=/work/here home=/home/app", "read=created", "GREETING=hi", "HOSTNAME=coldstart",
		"PATH=/usr/bin:/bin",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "etc-writable") {
		t.Errorf("user app could write /etc/passwd:\n%s", got)
	}
	for _, f := range []string{"/app/start.sh", realPath(t, "/bin/sh"), realPath(t, "/usr/bin/env")} {
		if indexOf(p.Files, f) < 0 {
			t.Errorf("%s not recorded: %q", f, p.Files)
		}
	}
	if p.Files[0] != "/app/start.sh" {
		t.Errorf("first file %s, want the script", p.Files[0])
	}
	for _, f := range []string{"/tmp/made-by-app", "/app/data.txt"} {
		if indexOf(p.Files, f) >= 0 {
			t.Errorf("%s recorded: %q", f, p.Files)
		}
	}
}

// blocker is a named pipe in the image: "read x < /app/block" waits
// forever, without using CPU.
var blocker = testimage.FIFO("app/block", testimage.Mode(0o666))

func TestRunWaitOnLine(t *testing.T) {
	requireRun(t)
	h := baseTree(t)
	h.addProgram("/usr/bin/env")
	h.entry(blocker)
	img := imageOf(t, v1.Config{Entrypoint: []string{"/bin/sh", "-c", "echo booting; env >/dev/null; echo 'server READY on 8080'; read x < /app/block"}}, h.layer())
	var out bytes.Buffer
	// Without the line the run would last the whole period.
	p, err := runImage(t, context.Background(), img, run.WithOutput(&out),
		run.WithWaitOnLine(regexp.MustCompile(`READY on \d+`)), run.WithPeriod(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %q", p.Warnings)
	}
	if indexOf(p.Files, realPath(t, "/usr/bin/env")) < 0 {
		t.Errorf("env, run before the line, not recorded: %q", p.Files)
	}
	if !strings.Contains(out.String(), "booting\n") {
		t.Errorf("output %q", out.String())
	}
	if p.ReadySeconds <= 0 || p.ReadySeconds > 60 {
		t.Errorf("time to the ready line %v s", p.ReadySeconds)
	}

	// A line that never comes: the period ends the run, with a warning.
	p, err = runImage(t, context.Background(), img, run.WithWaitOnLine(regexp.MustCompile(`never`)), run.WithPeriod(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], `no output line matched "never" before the end of the period`) {
		t.Errorf("warnings %q", p.Warnings)
	}
	if p.ReadySeconds != 0 {
		t.Errorf("never ready, yet ready after %v s", p.ReadySeconds)
	}
}

func TestRunWaitOnPort(t *testing.T) {
	requireRun(t)
	bb, err := exec.LookPath("busybox")
	if err != nil {
		registrytest.SkipOrFail(t, "busybox (busybox-static) not installed")
	}
	if out, err := exec.Command(bb, "nc", "--help").CombinedOutput(); err != nil && !strings.Contains(string(out), "-l") {
		t.Skipf("busybox has no nc: %s", out)
	}
	h := baseTree(t)
	h.addProgram(bb)
	h.entry(blocker)
	// nc listens, accepts the probe and exits; the script then waits for
	// ever: only the port can end the run before the period.
	img := imageOf(t, v1.Config{Entrypoint: []string{"/bin/sh", "-c", "busybox nc -l -p 8080 >/dev/null; read x < /app/block"}}, h.layer())
	p, err := runImage(t, context.Background(), img, run.WithWaitOnPort(8080), run.WithPeriod(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %q", p.Warnings)
	}
	if indexOf(p.Files, realPath(t, bb)) < 0 {
		t.Errorf("busybox not recorded: %q", p.Files)
	}
	// The host's loopback is not the sandbox's: nothing listens there.
	p, err = runImage(t, context.Background(), img, run.WithWaitOnPort(8081), run.WithPeriod(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "port 8081 accepted no connection before the end of the period") {
		t.Errorf("warnings %q", p.Warnings)
	}
}

// processesWith lists the PIDs whose command line contains token.
func processesWith(t *testing.T, token string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(token)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// lineHook calls fn once, from the output copier, when a line holding
// marker is written.
type lineHook struct {
	mu     sync.Mutex
	marker string
	buf    bytes.Buffer
	fn     func()
	done   bool
}

func (h *lineHook) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Write(p)
	if !h.done && strings.Contains(h.buf.String(), h.marker) {
		h.done = true
		h.fn()
	}
	return len(p), nil
}

// TestRunKillsProcessTree: a process that forks a child and never exits is
// killed with its child at the end of the period.
func TestRunKillsProcessTree(t *testing.T) {
	requireRun(t)
	h := baseTree(t)
	h.entry(blocker)
	token := fmt.Sprintf("token-%d-%d", os.Getpid(), time.Now().UnixNano())
	script := fmt.Sprintf(`sh -c ": %[1]s child; read x < /app/block" & sh -c ": %[1]s grandchild; read x < /app/block" & echo started; read x < /app/block`, token)
	img := imageOf(t, v1.Config{Entrypoint: []string{"/bin/sh", "-c", script}}, h.layer())
	var during []int
	hook := &lineHook{marker: "started", fn: func() {
		// The children were forked before the echo; a child in the middle
		// of execve may show no command line for a moment.
		for range 200 {
			if during = processesWith(t, token); len(during) >= 3 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}}
	p, err := runImage(t, context.Background(), img, run.WithOutput(hook), run.WithPeriod(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(during) < 3 {
		t.Fatalf("the test is broken: %d processes with the token while the run lasted, want 3", len(during))
	}
	if left := processesWith(t, token); len(left) != 0 {
		t.Errorf("processes left after the run: %v", left)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings %q", p.Warnings)
	}
}

func TestRunEntrypointErrors(t *testing.T) {
	requireRun(t)
	h := baseTree(t)
	h.file("/app/not-exec", "#!/bin/sh\n", 0o644)
	layer := h.layer()
	for _, c := range []struct {
		name string
		cfg  v1.Config
		want string
	}{
		{"missing path", v1.Config{Entrypoint: []string{"/nonexistent/server"}}, "/nonexistent/server: no such file or directory"},
		{"missing command", v1.Config{Cmd: []string{"no-such-server", "--flag"}}, "no-such-server: executable file not found in PATH"},
		{"not executable", v1.Config{Entrypoint: []string{"/app/not-exec"}}, "/app/not-exec: permission denied"},
		{"directory", v1.Config{Entrypoint: []string{"/app"}}, "/app: not a regular file"},
		{"unknown user", v1.Config{Entrypoint: []string{"/bin/sh"}, User: "nobody-here"}, `user "nobody-here" is not in the image's /etc/passwd`},
		{"unknown group", v1.Config{Entrypoint: []string{"/bin/sh"}, User: "app:nogroup"}, `group "nogroup" is not in the image's /etc/group`},
		{"no command", v1.Config{}, "no Entrypoint or Cmd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := imageOf(t, c.cfg, layer)
			base := t.TempDir()
			_, err := run.Root(context.Background(), filler(img), configOf(t, img), run.WithTempDir(base))
			if !errors.Is(err, run.ErrEntrypoint) {
				t.Fatalf("err = %v, want ErrEntrypoint", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to say %q", err, c.want)
			}
			checkNoWorkspace(t, base)
		})
	}
}

// checkNoWorkspace checks that no workspace and no mount is left in base.
func checkNoWorkspace(t *testing.T, base string) {
	t.Helper()
	ents, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "coldstart-run-") {
			t.Errorf("workspace %s left in %s", e.Name(), base)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mi, []byte(base)) {
		t.Errorf("mounts left under %s:\n%s", base, mi)
	}
}

// TestRunRefusesUnsafeLayers: layers that write outside the root, directly
// or through a link an earlier layer planted, fail before anything runs and
// leave the host as it was.
func TestRunRefusesUnsafeLayers(t *testing.T) {
	requireRun(t)
	canary := t.TempDir()
	if err := os.WriteFile(filepath.Join(canary, "keep"), []byte("canary"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := strings.Repeat("../", 30) + strings.TrimPrefix(canary, "/")
	layerOf := func(entries ...testimage.Entry) v1.Layer {
		l, err := testimage.LayerFromTar(testimage.Layer(entries).Tar(), compression.None)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	h := baseTree(t)
	base := h.layer()
	cases := map[string][]v1.Layer{
		"dotdot entry":   {base, layerOf(testimage.Raw(rawFile(up+"/pwned"), []byte("x")))},
		"absolute entry": {base, layerOf(testimage.Raw(rawFile(canary+"/pwned"), []byte("x")))},
		"link then climb": {base, layerOf(testimage.Symlink("evil", canary)),
			layerOf(testimage.File("evil/pwned", "x"))},
		"relative link then climb": {base, layerOf(testimage.Symlink("evil", up)),
			layerOf(testimage.Dir("evil/sub", 0o755), testimage.File("evil/sub/pwned", "x"))},
		"hard link out": {base, layerOf(testimage.Raw(rawLink("stolen", up+"/keep"), nil))},
	}
	for name, ls := range cases {
		t.Run(name, func(t *testing.T) {
			img := imageOf(t, v1.Config{Entrypoint: []string{"/bin/sh", "-c", "echo ran"}}, ls...)
			base := t.TempDir()
			var out bytes.Buffer
			_, err := run.Root(context.Background(), filler(img), configOf(t, img), run.WithTempDir(base), run.WithOutput(&out))
			if !errors.Is(err, rootfs.ErrUnsafePath) {
				t.Fatalf("err = %v, want ErrUnsafePath", err)
			}
			if out.Len() != 0 {
				t.Errorf("the entrypoint ran: %q", out.String())
			}
			ents, _ := os.ReadDir(canary)
			if len(ents) != 1 {
				t.Errorf("the canary directory changed: %v", ents)
			}
			if b, _ := os.ReadFile(filepath.Join(canary, "keep")); string(b) != "canary" {
				t.Errorf("the canary file changed: %q", b)
			}
			checkNoWorkspace(t, base)
		})
	}
}

func TestRunCancel(t *testing.T) {
	requireRun(t)
	h := baseTree(t)
	h.entry(blocker)
	token := fmt.Sprintf("cancel-%d-%d", os.Getpid(), time.Now().UnixNano())
	img := imageOf(t, v1.Config{Entrypoint: []string{"/bin/sh", "-c", ": " + token + "; echo started; read x < /app/block"}}, h.layer())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := t.TempDir()
	var during []int
	hook := &lineHook{marker: "started", fn: func() {
		during = processesWith(t, token)
		cancel()
	}}
	_, err := run.Root(ctx, filler(img), configOf(t, img), run.WithTempDir(base), run.WithOutput(hook), run.WithPeriod(5*time.Minute))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if len(during) == 0 {
		t.Fatal("the test is broken: the entrypoint was not running when the run was cancelled")
	}
	checkNoWorkspace(t, base)
	if left := processesWith(t, token); len(left) != 0 {
		t.Errorf("processes left after cancel: %v", left)
	}

	// Cancelled while the root filesystem is written.
	ctx2, cancel2 := context.WithCancel(context.Background())
	fill := func(ctx context.Context, dir string) error {
		if err := os.WriteFile(filepath.Join(dir, "partial"), []byte("x"), 0o644); err != nil {
			return err
		}
		cancel2()
		return ctx.Err()
	}
	_, err = run.Root(ctx2, fill, configOf(t, img), run.WithTempDir(base))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	checkNoWorkspace(t, base)
}

// procStartTime reads field 22 of /proc/PID/stat.
func procStartTime(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return f[19]
}

// TestRunCleansStaleWorkspaces: workspaces of runs whose process died (a
// SIGKILL leaves the directory and possibly mounts) are removed by the
// next run; a workspace of a live process is kept, even when its PID was
// reused.
func TestRunCleansStaleWorkspaces(t *testing.T) {
	requireRun(t)
	base := t.TempDir()
	dead := exec.Command("/bin/true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := dead.Process.Pid
	mk := func(name, owner string) string {
		d := filepath.Join(base, name)
		for _, sub := range []string{"lower/etc", "upper", "work", "merged"} {
			if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(d, "lower/etc/passwd"), []byte("root:x:0:0::/:/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(d, "owner"), []byte(owner), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	stale := mk(fmt.Sprintf("coldstart-run-%d-111", deadPid), fmt.Sprintf("%d 12345\n", deadPid))
	// A killed run may leave mounts behind.
	if err := syscall.Mount("tmpfs", filepath.Join(stale, "merged"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(filepath.Join(stale, "merged"), syscall.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(stale, "merged/in-tmpfs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	live := mk(fmt.Sprintf("coldstart-run-%d-222", me), fmt.Sprintf("%d %s\n", me, procStartTime(t, me)))
	creating := mk(fmt.Sprintf("coldstart-run-%d-333", me), "")
	reused := mk(fmt.Sprintf("coldstart-run-%d-444", me), fmt.Sprintf("%d 1\n", me))
	other := mk("unrelated-dir", "")

	h := baseTree(t)
	img := imageOf(t, v1.Config{Entrypoint: []string{"/bin/sh", "-c", "true"}}, h.layer())
	if _, err := run.Root(context.Background(), filler(img), configOf(t, img), run.WithTempDir(base)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{stale, reused} {
		if _, err := os.Lstat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale workspace %s not removed (%v)", d, err)
		}
	}
	for _, d := range []string{live, creating, other} {
		if _, err := os.Lstat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mi, []byte(stale)) {
		t.Errorf("the stale workspace's mount is left")
	}
}

// TestRunUnsupported checks the error a user without root gets: the test
// binary runs itself again as nobody.
func TestRunUnsupported(t *testing.T) {
	if os.Getenv("COLDSTART_TEST_RUN_AS_NOBODY") == "1" || os.Geteuid() != 0 {
		err := run.Supported()
		if !errors.Is(err, run.ErrUnsupported) {
			t.Fatalf("RunSupported() = %v, want ErrRunUnsupported", err)
		}
		_, err = run.Root(context.Background(), func(context.Context, string) error { return nil },
			profile.Config{Entrypoint: []string{"/bin/sh"}})
		if !errors.Is(err, run.ErrUnsupported) || !strings.Contains(err.Error(), "static") || !strings.Contains(err.Error(), "root") {
			t.Fatalf("Run: %v, want ErrRunUnsupported naming root and the static profiler", err)
		}
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "coldstart-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "profile.test")
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	src.Close()
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestRunUnsupported$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COLDSTART_TEST_RUN_AS_NOBODY=1", "TMPDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestRunUnsupported")) {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}

func rawFile(name string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}
}

func rawLink(name, target string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, Mode: 0o644}
}

// TestRunWorkspaceOnOverlay: a workspace directory on overlayfs (a CI job
// inside a container, say) cannot hold an overlay's upper directory: Run
// says so before extracting anything.
func TestRunWorkspaceOnOverlay(t *testing.T) {
	requireRun(t)
	d := t.TempDir()
	for _, sub := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(d, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := filepath.Join(d, "m")
	if err := syscall.Mount("overlay", m, "overlay", 0, "lowerdir="+d+"/l,upperdir="+d+"/u,workdir="+d+"/w"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(m, syscall.MNT_DETACH)
	filled := false
	fill := func(context.Context, string) error { filled = true; return nil }
	_, err := run.Root(context.Background(), fill, profile.Config{Entrypoint: []string{"/bin/sh"}}, run.WithTempDir(m))
	if err == nil || !strings.Contains(err.Error(), "is on overlayfs") {
		t.Fatalf("err = %v, want it to say the directory is on overlayfs", err)
	}
	if filled {
		t.Error("the root filesystem was written before the workspace was checked")
	}
	if ents, err := os.ReadDir(m); err != nil || len(ents) != 0 {
		t.Errorf("left in the directory: %v %v", ents, err)
	}
}
