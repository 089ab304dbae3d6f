//go:build linux

package run

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/coldstart-dev/coldstart/optimize/profile"
	"github.com/google/go-cmp/cmp"
)

// imageDir writes files (image path: content) into a new directory and
// serves it as an image root.
func imageDir(t *testing.T, files map[string]string) profile.FS {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return profile.DirFS(root)
}

func TestLookupUser(t *testing.T) {
	m := imageDir(t, map[string]string{"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n" +
		"# comment\n" +
		"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
		"app:x:1000:1000:app:/home/app:/bin/sh\n" +
		"rel:x:1001:1001::home:/bin/sh\n" +
		"bad:x:notanumber:1::/:/bin/sh\n",
		"/etc/group": "root:x:0:\nadm:x:4:app,daemon\nstaff:x:50:app\napp:x:1000:\nweb:x:33:\n"})
	for _, c := range []struct {
		spec string
		want runUser
		err  string
	}{
		{"", runUser{uid: 0, gid: 0, groups: []int{0}, home: "/root"}, ""},
		{"root", runUser{uid: 0, gid: 0, groups: []int{0}, home: "/root"}, ""},
		{"app", runUser{uid: 1000, gid: 1000, groups: []int{1000, 4, 50}, home: "/home/app"}, ""},
		{"1000", runUser{uid: 1000, gid: 1000, groups: []int{1000, 4, 50}, home: "/home/app"}, ""},
		{"app:web", runUser{uid: 1000, gid: 33, groups: []int{33, 4, 50}, home: "/home/app"}, ""},
		{"app:33", runUser{uid: 1000, gid: 33, groups: []int{33, 4, 50}, home: "/home/app"}, ""},
		{"4242", runUser{uid: 4242, gid: 0, groups: []int{0}, home: "/"}, ""},
		{"4242:4242", runUser{uid: 4242, gid: 4242, groups: []int{4242}, home: "/"}, ""},
		{"rel", runUser{uid: 1001, gid: 1001, groups: []int{1001}, home: "/"}, ""},
		{"nobody", runUser{}, `user "nobody" is not in the image's /etc/passwd`},
		{"bad", runUser{}, `user "bad" is not in the image's /etc/passwd`},
		{"app:nogroup", runUser{}, `group "nogroup" is not in the image's /etc/group`},
		{"-1", runUser{}, `user "-1": negative uid`},
	} {
		got, err := lookupUser(m, c.spec)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("lookupUser(%q) error %v, want %q", c.spec, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("lookupUser(%q): %v", c.spec, err)
			continue
		}
		if d := cmp.Diff(c.want, got, cmp.AllowUnexported(runUser{})); d != "" {
			t.Errorf("lookupUser(%q) (-want +got):\n%s", c.spec, d)
		}
	}
	// No passwd at all: only numeric users work.
	empty := imageDir(t, nil)
	if u, err := lookupUser(empty, "123:45"); err != nil || u.uid != 123 || u.gid != 45 {
		t.Errorf("numeric user without passwd: %+v, %v", u, err)
	}
	if _, err := lookupUser(empty, "app"); err == nil {
		t.Error("named user without passwd: no error")
	}
}

func TestRunEnv(t *testing.T) {
	got := runEnv([]string{"A=1", "PATH=/bin", "B=2", "A=3", "=bad", "novalue", "HOME=/h"}, "/home/x", "box")
	want := []string{"A=3", "PATH=/bin", "B=2", "HOME=/h", "HOSTNAME=box"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	got = runEnv(nil, "/root", "box")
	want = []string{"PATH=" + profile.DefaultPath, "HOSTNAME=box", "HOME=/root"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestAddInterpreters checks the fallback that lists the ELF interpreter of
// executed programs when the kernel did not report it.
func TestAddInterpreters(t *testing.T) {
	root := t.TempDir()
	write := func(p string, b []byte) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", elftest.Build(elftest.Spec{SOName: "ld-linux-x86-64.so.2"}))
	write("app/prog", elftest.Build(elftest.Spec{Interp: "/lib64/ld-linux-x86-64.so.2", Needed: []string{"libc.so.6"}}))
	write("app/static", elftest.Build(elftest.Spec{Static: true}))
	write("app/script", []byte("#!/bin/sh\n"))
	for _, l := range [][2]string{{"lib", "usr/lib"}, {"lib64", "usr/lib64"}} {
		if err := os.Symlink(l[1], filepath.Join(root, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib64"), 0o755); err != nil {
		t.Fatal(err)
	}
	// An absolute link, resolved inside the image root.
	if err := os.Symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", filepath.Join(root, "usr/lib64/ld-linux-x86-64.so.2")); err != nil {
		t.Fatal(err)
	}
	fsys := profile.DirFS(root)
	loader := "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	log := slog.New(slog.DiscardHandler)
	got := addInterpreters(fsys, []string{"/app/script", "/app/prog", "/etc/ld.so.cache"}, []string{"/app/script", "/app/static", "/app/prog"}, log)
	want := []string{"/app/script", "/app/prog", loader, "/etc/ld.so.cache"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	// Already reported: unchanged.
	in := []string{"/app/prog", loader}
	if d := cmp.Diff(in, addInterpreters(fsys, append([]string{}, in...), []string{"/app/prog"}, log)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestWatcherImagePath(t *testing.T) {
	w := &watcher{prefixes: []string{"/tmp/ws/merged"}}
	for in, want := range map[string]string{
		"/usr/bin/dash":                    "/usr/bin/dash",
		"/tmp/ws/merged/usr/bin/dash":      "/usr/bin/dash",
		"/tmp/ws/mergedx/a":                "/tmp/ws/mergedx/a",
		"/etc/passwd (deleted)":            "/etc/passwd",
		"/tmp/ws/merged":                   "",
		"/":                                "",
		"anon_inode:[eventfd]":             "",
		"/a/../b":                          "",
		"/tmp/ws/merged/app/x (deleted)":   "/app/x",
		"/tmp/ws/merged/with space/a file": "/with space/a file",
	} {
		if got := w.imagePath(in); got != want {
			t.Errorf("imagePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOwnerAlive(t *testing.T) {
	me := os.Getpid()
	st, ok := startTime(me)
	if !ok {
		t.Fatal("no start time for this process")
	}
	dir := t.TempDir()
	if !ownerAlive(dir, me) {
		t.Error("a live owner without an owner file counts as dead")
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf("%d %d\n", me, st))
	if !ownerAlive(dir, me) {
		t.Error("the live owner counts as dead")
	}
	write(fmt.Sprintf("%d %d\n", me, st+1))
	if ownerAlive(dir, me) {
		t.Error("a reused PID counts as the owner")
	}
	if _, ok := startTime(1 << 30); ok {
		t.Error("start time of a PID that cannot exist")
	}
	if ownerAlive(dir, 1<<30) {
		t.Error("a PID that cannot exist counts as alive")
	}
}
