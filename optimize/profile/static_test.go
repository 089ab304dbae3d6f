package profile

import (
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/google/go-cmp/cmp"
)

// hostRoot builds a merged-/usr image root in a temporary directory with
// real binaries and libraries copied from a Debian-like x86_64 host. It skips
// the test when the host lacks them.
type hostRoot struct {
	t    *testing.T
	root string
}

func newHostRoot(t *testing.T) *hostRoot {
	t.Helper()
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("needs an x86_64 Linux host")
	}
	for _, f := range []string{"/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("host has no %s", f)
		}
	}
	h := &hostRoot{t: t, root: t.TempDir()}
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib/x86_64-linux-gnu", "usr/lib64", "etc"} {
		h.mkdir(d)
	}
	h.symlink("usr/bin", "bin")
	h.symlink("usr/sbin", "sbin")
	h.symlink("usr/lib", "lib")
	h.symlink("usr/lib64", "lib64")
	h.symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "usr/lib64/ld-linux-x86-64.so.2")
	h.copy("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	return h
}

func (h *hostRoot) mkdir(rel string) {
	if err := os.MkdirAll(filepath.Join(h.root, rel), 0o755); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hostRoot) symlink(target, rel string) {
	h.mkdir(filepath.Dir(rel))
	if err := os.Symlink(target, filepath.Join(h.root, rel)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hostRoot) write(rel, content string, perm os.FileMode) {
	h.mkdir(filepath.Dir(rel))
	if err := os.WriteFile(filepath.Join(h.root, rel), []byte(content), perm); err != nil {
		h.t.Fatal(err)
	}
}

// copy copies a host file (following links), keeping its mode and mtime.
func (h *hostRoot) copy(host, rel string) {
	h.t.Helper()
	in, err := os.Open(host)
	if err != nil {
		h.t.Skipf("host file: %v", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		h.t.Fatal(err)
	}
	h.mkdir(filepath.Dir(rel))
	dst := filepath.Join(h.root, rel)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		h.t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Chtimes(dst, fi.ModTime(), fi.ModTime()); err != nil {
		h.t.Fatal(err)
	}
}

// lib copies host libraries into the image's multiarch directory.
func (h *hostRoot) lib(names ...string) {
	for _, n := range names {
		h.copy("/lib/x86_64-linux-gnu/"+n, "usr/lib/x86_64-linux-gnu/"+n)
	}
}

// hostNeeded lists the DT_NEEDED entries of a host file with debug/elf, to
// compute expectations independently of the code under test.
func hostNeeded(t *testing.T, file string) []string {
	f, err := elf.Open(file)
	if err != nil {
		t.Skipf("host: %v", err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Skipf("host: %v", err)
	}
	return libs
}

// hostClosure copies file's libraries (breadth-first, as ld.so loads them)
// into the image and returns their image paths in load order.
func (h *hostRoot) hostClosure(file string, seen map[string]bool) []string {
	var out []string
	queue := []string{file}
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		for _, n := range hostNeeded(h.t, f) {
			if seen[n] {
				continue
			}
			seen[n] = true
			host := "/lib/x86_64-linux-gnu/" + n
			if _, err := os.Stat(host); err != nil {
				h.t.Skipf("host library %s not in the multiarch directory", n)
			}
			h.lib(n)
			out = append(out, "/usr/lib/x86_64-linux-gnu/"+n)
			queue = append(queue, host)
		}
	}
	return out
}

var hostLoader = []string{
	"/lib64",
	"/usr/lib64/ld-linux-x86-64.so.2",
	"/lib",
	"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
}

func TestStaticHostBinary(t *testing.T) {
	h := newHostRoot(t)
	h.copy("/usr/bin/ls", "usr/bin/ls")
	libs := h.hostClosure("/usr/bin/ls", map[string]bool{"ld-linux-x86-64.so.2": true})
	h.write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)
	h.write("etc/nsswitch.conf", "passwd: files\n", 0o644)
	h.symlink("/usr/share/zoneinfo/Etc/UTC", "etc/localtime")
	h.write("usr/share/zoneinfo/Etc/UTC", "TZif2", 0o644)
	h.write("usr/lib/locale/C.utf8/LC_CTYPE", "x", 0o644)
	h.write("usr/lib/locale/C.utf8/LC_COLLATE", "x", 0o644)
	h.write("usr/lib/locale/C.utf8/LC_MESSAGES/SYS_LC_MESSAGES", "x", 0o644)
	h.write("usr/share/locale/locale.alias", "x", 0o644)
	h.write("usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache", "x", 0o644)

	p := mustStatic(t, DirFS(h.root), Config{Entrypoint: []string{"ls"}, Cmd: []string{"-l"}})
	want := cat([]string{"/usr/bin/ls"}, hostLoader, libs, []string{
		"/etc/nsswitch.conf", "/etc/passwd",
		"/etc/localtime", "/usr/share/zoneinfo/Etc/UTC", "/usr/share/locale/locale.alias",
		"/usr/lib/locale/C.utf8/LC_COLLATE", "/usr/lib/locale/C.utf8/LC_CTYPE", "/usr/lib/locale/C.utf8/LC_MESSAGES/SYS_LC_MESSAGES",
		"/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
	})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %q", p.Warnings)
	}

	// With the host's ld.so.cache, which names /lib/x86_64-linux-gnu paths.
	h.copy("/etc/ld.so.cache", "etc/ld.so.cache")
	p = mustStatic(t, DirFS(h.root), Config{Entrypoint: []string{"/bin/ls"}})
	want = cat([]string{"/bin", "/usr/bin/ls"}, hostLoader, []string{"/etc/ld.so.cache"}, libs)
	if diff := cmp.Diff(want, p.Files[:len(want)]); diff != "" {
		t.Errorf("files with a cache (-want +got):\n%s", diff)
	}
}

func TestStaticHostShebang(t *testing.T) {
	h := newHostRoot(t)
	h.copy("/usr/bin/dash", "usr/bin/dash")
	h.symlink("dash", "usr/bin/sh")
	h.copy("/usr/bin/env", "usr/bin/env")
	h.copy("/usr/bin/ls", "usr/bin/ls")
	// Libraries in the order the processes load them: env, dash, ls.
	seen := map[string]bool{"ld-linux-x86-64.so.2": true}
	envLibs := h.hostClosure("/usr/bin/env", seen)
	dashLibs := h.hostClosure("/usr/bin/dash", seen)
	lsLibs := h.hostClosure("/usr/bin/ls", seen)
	h.write("app/start", "#!/usr/bin/env sh\nset -e\nexec ls /app \"$@\"\n", 0o755)

	p := mustStatic(t, DirFS(h.root), Config{Entrypoint: []string{"/app/start"}, Cmd: []string{"-l"}, WorkingDir: "/app"})
	// sh is found as /usr/bin/sh: PATH lists /usr/bin before /bin.
	want := cat(
		[]string{"/app/start", "/usr/bin/env"}, hostLoader, envLibs,
		[]string{"/usr/bin/sh", "/usr/bin/dash"}, dashLibs,
		[]string{"/usr/bin/ls"}, lsLibs,
	)
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %q", p.Warnings)
	}
}

func TestShebangChains(t *testing.T) {
	m := newMemFS()
	m.exe("/bin/real", elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true}))
	m.script("/s1", "#!/s2 -x\n")
	m.script("/s2", "#!/bin/real\n")
	p := mustStatic(t, m, Config{Entrypoint: []string{"/s1"}})
	if diff := cmp.Diff([]string{"/s1", "/s2", "/bin/real"}, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}

	// An endless chain is cut like the kernel cuts it.
	m.script("/loop", "#!/loop\n")
	m.script("/a", "#!/b\n")
	m.script("/b", "#!/a\n")
	for _, ep := range []string{"/loop", "/a"} {
		p := mustStatic(t, m, Config{Entrypoint: []string{ep}})
		if !hasWarning(p, "nested #! interpreters") {
			t.Errorf("%s: no loop warning: %q", ep, p.Warnings)
		}
		if len(p.Files) > 2 {
			t.Errorf("%s: files %q", ep, p.Files)
		}
	}

	// A missing interpreter and a malformed line are warnings.
	m.script("/nointerp", "#!/usr/bin/nothing\n")
	m.script("/empty", "#!   \n")
	m.script("/data", "just text\n")
	for ep, want := range map[string]string{"/nointerp": "interpreter /usr/bin/nothing not found", "/empty": "malformed #!", "/data": "ENOEXEC"} {
		p := mustStatic(t, m, Config{Entrypoint: []string{ep}})
		if !hasWarning(p, want) {
			t.Errorf("%s: warnings %q, want %q", ep, p.Warnings, want)
		}
	}
}

func TestEnvShebang(t *testing.T) {
	m := glibcRoot()
	m.exe("/usr/bin/env", prog("libc.so.6"))
	m.exe("/usr/local/bin/tool", elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true}))
	m.exe("/opt/bin/tool", elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true}))
	m.script("/app/run", "#!/usr/bin/env -S PATH=/opt/bin tool --flag\n")
	m.script("/app/run2", "#!/usr/bin/env tool\n")
	p := mustStatic(t, m, Config{Entrypoint: []string{"/app/run"}})
	want := cat([]string{"/app/run", "/usr/bin/env"}, loaderFiles, []string{x64lib + "libc.so.6", "/opt/bin/tool"})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	p = mustStatic(t, m, Config{Entrypoint: []string{"/app/run2"}})
	want = cat([]string{"/app/run2", "/usr/bin/env"}, loaderFiles, []string{x64lib + "libc.so.6", "/usr/local/bin/tool"})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestWrappers(t *testing.T) {
	m := newMemFS()
	static := elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true})
	for _, b := range []string{"tini", "gosu", "nice", "timeout", "dumb-init", "server"} {
		m.exe("/usr/bin/"+b, static)
	}
	tests := []struct {
		argv []string
		want []string
	}{
		{[]string{"tini", "--", "server"}, []string{"/usr/bin/tini", "/usr/bin/server"}},
		{[]string{"tini", "-s", "-g", "gosu", "app", "nice", "-n", "5", "timeout", "-s", "KILL", "30", "server"},
			[]string{"/usr/bin/tini", "/usr/bin/gosu", "/usr/bin/nice", "/usr/bin/timeout", "/usr/bin/server"}},
		{[]string{"dumb-init", "--rewrite", "15:2", "server"}, []string{"/usr/bin/dumb-init", "/usr/bin/server"}},
	}
	for _, tc := range tests {
		p := mustStatic(t, m, Config{Entrypoint: tc.argv})
		if diff := cmp.Diff(tc.want, p.Files); diff != "" {
			t.Errorf("%q: files (-want +got):\n%s", tc.argv, diff)
		}
	}
}

func TestPathLookup(t *testing.T) {
	m := newMemFS()
	static := elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true})
	m.file("/usr/local/bin/app", static, 0o644) // not executable: skipped
	m.exe("/usr/bin/app", static)
	m.exe("/work/app", static)
	m.dir("/usr/sbin/app") // a directory: skipped
	p := mustStatic(t, m, Config{Entrypoint: []string{"app"}, Env: []string{"PATH=/usr/local/bin:/usr/sbin:/usr/bin"}})
	if diff := cmp.Diff([]string{"/usr/bin/app"}, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	// An empty PATH element is the working directory; "./app" is relative to it.
	for _, cfg := range []Config{
		{Entrypoint: []string{"app"}, Env: []string{"PATH=:/nothing"}, WorkingDir: "/work"},
		{Entrypoint: []string{"./app"}, WorkingDir: "/work"},
	} {
		p := mustStatic(t, m, cfg)
		if diff := cmp.Diff([]string{"/work/app"}, p.Files); diff != "" {
			t.Errorf("%+v: files (-want +got):\n%s", cfg, diff)
		}
	}
	p = mustStatic(t, m, Config{Entrypoint: []string{"nothere"}})
	if len(p.Files) != 0 || !hasWarning(p, "nothere: command not found in PATH") {
		t.Errorf("files %q warnings %q", p.Files, p.Warnings)
	}
	p = mustStatic(t, m, Config{})
	if !hasWarning(p, "no Entrypoint or Cmd") {
		t.Errorf("warnings %q", p.Warnings)
	}
}

func TestSymlinks(t *testing.T) {
	m := newMemFS()
	m.mergedUsr()
	static := elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true})
	m.exe("/usr/bin/python3.11", static)
	m.link("/usr/bin/python3", "python3.11")
	m.link("/usr/local/bin/py", "/bin/python3")
	m.link("/loop1", "loop2")
	m.link("/loop2", "/loop1")
	m.link("/up", "../../../../../../usr/bin/python3.11")
	m.link("/dangling", "/nowhere")
	p := mustStatic(t, m, Config{Entrypoint: []string{"py"}, Env: []string{"PATH=/usr/local/bin"}})
	want := []string{"/usr/local/bin/py", "/bin", "/usr/bin/python3", "/usr/bin/python3.11"}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	p = mustStatic(t, m, Config{Entrypoint: []string{"/up"}})
	if diff := cmp.Diff([]string{"/up", "/usr/bin/python3.11"}, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	p = mustStatic(t, m, Config{Entrypoint: []string{"/loop1"}})
	if len(p.Files) != 0 || !hasWarning(p, "/loop1: too many levels of symbolic links") {
		t.Errorf("loop: files %q warnings %q", p.Files, p.Warnings)
	}
	w := newCore(t.Context(), m, &options{maxFiles: 10})
	if _, err := w.resolve("/loop1"); !errors.Is(err, ErrSymlinkLoop) {
		t.Errorf("resolve(/loop1) = %v, want ErrSymlinkLoop", err)
	}
	if _, err := w.resolve("/dangling"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("resolve(/dangling) = %v", err)
	}
	if r, err := w.resolve("/bin/../bin/./python3"); err != nil || r.Real != "/usr/bin/python3.11" {
		t.Errorf("resolve with .. = %+v, %v", r, err)
	}
}

func TestHostIsolation(t *testing.T) {
	root := t.TempDir()
	mk := func(rel, content string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, rel), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, rel string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
	}
	// Links that would reach host files if they were followed on the host.
	ln("/etc/shadow", "app/shadow")
	ln("../../../../../../../../etc/passwd", "app/up")
	ln("/", "app/rootlink")
	ln("/bin/sh", "app/sh")
	mk("etc/passwd", "image passwd\n")
	mk("app/start", "#!/app/sh\n")
	fsys := DirFS(root)

	if _, err := fsys.Open("/app/shadow"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(/app/shadow) = %v, want not exist (the host's /etc/shadow must not be read)", err)
	}
	for _, name := range []string{"/app/up", "/app/rootlink/etc/passwd", "/../../etc/passwd"} {
		f, err := fsys.Open(name)
		if err != nil {
			t.Fatalf("Open(%s): %v", name, err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != "image passwd\n" {
			t.Errorf("Open(%s) read %q, not the image's file", name, b)
		}
	}
	p := mustStatic(t, fsys, Config{Entrypoint: []string{"/app/start"}})
	if !cmp.Equal(p.Files, []string{"/app/start"}) || !hasWarning(p, "interpreter /app/sh not found") {
		t.Errorf("files %q warnings %q", p.Files, p.Warnings)
	}
	for _, f := range p.Files {
		if strings.HasPrefix(f, root) {
			t.Errorf("host path %s leaked into the profile", f)
		}
	}
}

func TestDirFS(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/lib/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{"usr/lib", "lib"}, {"a", "b"}, {"b", "a"}, {"/lib/f", "abs"}} {
		if err := os.Symlink(l[0], filepath.Join(root, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	fsys := DirFS(root)
	fi, err := fsys.Lstat("/lib/f")
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("Lstat(/lib/f) = %v, %v", fi, err)
	}
	if fi, err := fsys.Lstat("/lib"); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("Lstat(/lib) must not follow the link: %v, %v", fi, err)
	}
	if tgt, err := fsys.Readlink("/abs"); err != nil || tgt != "/lib/f" {
		t.Errorf("Readlink = %q, %v", tgt, err)
	}
	if _, err := fsys.Open("/a"); !errors.Is(err, ErrSymlinkLoop) {
		t.Errorf("Open(loop) = %v", err)
	}
	if _, err := fsys.Open("/usr"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Open(dir) = %v", err)
	}
	ents, err := fsys.ReadDir("/lib")
	if err != nil || len(ents) != 1 || ents[0].Name() != "f" {
		t.Errorf("ReadDir(/lib) = %v, %v", ents, err)
	}
	if _, err := fsys.Lstat("/lib/f/x"); err == nil {
		t.Errorf("Lstat through a file succeeded")
	}
}

func TestDeterministic(t *testing.T) {
	m := glibcRoot()
	m.file(x64lib+"liba.so", elftest.Build(elftest.Spec{Needed: []string{"libc.so.6", "libz.so.1"}}), 0o644)
	m.exe("/usr/bin/app", prog("liba.so", "libm.so.6"))
	m.script("/entry.sh", "#!/bin/app\n")
	cfg := Config{Entrypoint: []string{"/entry.sh"}}
	first := mustStatic(t, m, cfg)
	for i := 0; i < 5; i++ {
		again := mustStatic(t, m, cfg)
		if !cmp.Equal(first, again) {
			t.Fatalf("run %d differs:\n%s", i, cmp.Diff(first, again))
		}
	}
}

func TestCapsAndCancel(t *testing.T) {
	m := glibcRoot()
	m.exe("/usr/bin/app", prog("libz.so.1", "libm.so.6"))
	p := mustStatic(t, m, Config{Entrypoint: []string{"app"}}, WithMaxFiles(3))
	if len(p.Files) != 3 || !hasWarning(p, "file cap of 3") {
		t.Errorf("files %q warnings %q", p.Files, p.Warnings)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Static(ctx, m, Config{Entrypoint: []string{"app"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Static with a canceled context = %v", err)
	}
	if _, err := Static(t.Context(), nil, Config{}); err == nil {
		t.Error("Static(nil FS) succeeded")
	}
	for _, o := range []Option{WithMaxFiles(0), WithMaxDepth(-1), WithMaxReadBytes(0), WithMaxModules(0), WithLogger(nil)} {
		if _, err := Static(t.Context(), m, Config{}, o); err == nil {
			t.Error("an invalid option was accepted")
		}
	}
}

func BenchmarkStaticPython(b *testing.B) {
	m := pythonRoot()
	m.text("/app/main.py", "import json\nimport requests\nimport _ssl\n")
	cfg := Config{Entrypoint: []string{"python3", "/app/main.py"}}
	for b.Loop() {
		if _, err := Static(b.Context(), m, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStaticShell(b *testing.B) {
	m := shellRoot("server", "grep")
	var src strings.Builder
	src.WriteString("#!/bin/sh\n")
	for i := 0; i < 500; i++ {
		src.WriteString("if [ -n \"$X\" ]; then grep -q x /etc/hosts && echo \"$i\"; fi # line\n")
	}
	src.WriteString("exec server \"$@\"\n")
	m.script("/entry.sh", src.String())
	cfg := Config{Entrypoint: []string{"/entry.sh"}}
	for b.Loop() {
		if _, err := Static(b.Context(), m, cfg); err != nil {
			b.Fatal(err)
		}
	}
}
