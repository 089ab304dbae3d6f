package profile

import (
	"debug/elf"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/google/go-cmp/cmp"
)

const x64lib = "/usr/lib/x86_64-linux-gnu/"

func TestLoaderBreadthFirst(t *testing.T) {
	m := glibcRoot()
	// app needs liba and libb; liba needs libc (first seen here) and libd;
	// libb needs libz. Breadth-first: liba, libb, then libc, libd, libz.
	m.file(x64lib+"liba.so", elftest.Build(elftest.Spec{Needed: []string{"libc.so.6", "libd.so"}}), 0o644)
	m.file(x64lib+"libb.so", elftest.Build(elftest.Spec{Needed: []string{"libz.so.1"}}), 0o644)
	m.file(x64lib+"libd.so", elftest.Build(elftest.Spec{Needed: []string{"libm.so.6"}}), 0o644)
	m.exe("/usr/bin/app", prog("liba.so", "libb.so"))
	m.text("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
	m.link("/etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
	m.text("/usr/share/zoneinfo/Etc/UTC", "TZif")
	m.text("/etc/ssl/certs/ca-certificates.crt", "pem")
	m.text("/etc/pki/tls/certs/ca-bundle.crt", "second bundle is not read")
	p := mustStatic(t, m, Config{Entrypoint: []string{"/bin/app"}})
	want := cat(
		[]string{"/bin", "/usr/bin/app"},
		loaderFiles,
		[]string{
			x64lib + "liba.so", x64lib + "libb.so",
			x64lib + "libc.so.6", x64lib + "libd.so", x64lib + "libz.so.1", x64lib + "libz.so.1.2.13",
			x64lib + "libm.so.6",
			"/etc/passwd", "/etc/localtime", "/usr/share/zoneinfo/Etc/UTC", "/etc/ssl/certs/ca-certificates.crt",
		})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %q", p.Warnings)
	}
}

func TestLoaderSearchOrder(t *testing.T) {
	m := glibcRoot()
	// Same name in several places: the loader's order decides.
	for _, d := range []string{"/opt/rpath", "/opt/runpath", "/opt/ldpath", "/opt/conf", "/opt/app/lib"} {
		m.file(d+"/libx.so", elftest.Build(elftest.Spec{}), 0o644)
	}
	m.file(x64lib+"libx.so", elftest.Build(elftest.Spec{}), 0o644)
	m.text("/etc/ld.so.conf", "# comment\ninclude /etc/ld.so.conf.d/*.conf\n")
	m.text("/etc/ld.so.conf.d/a.conf", "/opt/conf\n")
	m.text("/etc/ld.so.conf.d/b.conf.disabled", "/opt/never\n")
	tests := []struct {
		name string
		spec elftest.Spec
		env  []string
		want string
	}{
		{"rpath first", elftest.Spec{Interp: ldx86, Needed: []string{"libx.so"}, RPath: "/opt/rpath"}, []string{"LD_LIBRARY_PATH=/opt/ldpath"}, "/opt/rpath/libx.so"},
		{"runpath disables rpath", elftest.Spec{Interp: ldx86, Needed: []string{"libx.so"}, RPath: "/opt/rpath", RunPath: "/opt/runpath"}, nil, "/opt/runpath/libx.so"},
		{"LD_LIBRARY_PATH before runpath", elftest.Spec{Interp: ldx86, Needed: []string{"libx.so"}, RunPath: "/opt/runpath"}, []string{"LD_LIBRARY_PATH=/opt/ldpath"}, "/opt/ldpath/libx.so"},
		{"$ORIGIN", elftest.Spec{Interp: ldx86, Needed: []string{"libx.so"}, RunPath: "$ORIGIN/../lib"}, nil, "/opt/app/lib/libx.so"},
		{"${ORIGIN}", elftest.Spec{Interp: ldx86, Needed: []string{"libx.so"}, RPath: "${ORIGIN}/../lib"}, nil, "/opt/app/lib/libx.so"},
		{"ld.so.conf without a cache", elftest.Spec{Interp: ldx86, Needed: []string{"libx.so"}}, nil, "/opt/conf/libx.so"},
		{"slash in DT_NEEDED", elftest.Spec{Interp: ldx86, Needed: []string{"/opt/rpath/libx.so"}}, nil, "/opt/rpath/libx.so"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m.exe("/opt/app/bin/app", elftest.Build(tc.spec))
			p := mustStatic(t, m, Config{Entrypoint: []string{"/opt/app/bin/app"}, Env: tc.env})
			want := cat([]string{"/opt/app/bin/app"}, loaderFiles, []string{tc.want})
			if diff := cmp.Diff(want, p.Files); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoaderCache(t *testing.T) {
	m := glibcRoot()
	m.file("/opt/cached/libx.so", elftest.Build(elftest.Spec{}), 0o644)
	m.file(x64lib+"libx.so", elftest.Build(elftest.Spec{}), 0o644)
	m.file("/opt/arm/libx.so", elftest.Build(elftest.Spec{Machine: elf.EM_AARCH64}), 0o644)
	m.file("/etc/ld.so.cache", ldCacheBytes([][3]any{
		{"libx.so", "/opt/arm/libx.so", uint32(0x0303)}, // lies about its machine
		{"libx.so", "/opt/cached/libx.so", uint32(0x0303)},
	}), 0o644)
	m.exe("/usr/bin/app", prog("libx.so"))
	p := mustStatic(t, m, Config{Entrypoint: []string{"app"}})
	want := cat([]string{"/usr/bin/app"}, loaderFiles, []string{"/etc/ld.so.cache", "/opt/cached/libx.so"})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestLoaderPreloadAndMissing(t *testing.T) {
	m := glibcRoot()
	m.file("/opt/libhook.so", elftest.Build(elftest.Spec{Needed: []string{"libm.so.6"}}), 0o644)
	m.text("/etc/ld.so.preload", "/opt/libhook.so\n")
	m.exe("/usr/bin/app", prog("libmissing.so.3", "libc.so.6"))
	p := mustStatic(t, m, Config{Entrypoint: []string{"app"}})
	want := cat([]string{"/usr/bin/app"}, loaderFiles, []string{
		"/etc/ld.so.preload", "/opt/libhook.so", x64lib + "libc.so.6", x64lib + "libm.so.6",
	})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if !hasWarning(p, "library libmissing.so.3 not found") {
		t.Errorf("no warning for the missing library: %q", p.Warnings)
	}
}

func TestLoaderMultiarchAndWrongMachine(t *testing.T) {
	m := newMemFS()
	m.mergedUsr()
	ld := "/lib/ld-linux-aarch64.so.1"
	arm := elftest.Spec{Machine: elf.EM_AARCH64}
	m.exe("/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1", elftest.Build(arm))
	m.link("/usr/lib/ld-linux-aarch64.so.1", "aarch64-linux-gnu/ld-linux-aarch64.so.1")
	// An x86_64 libc comes first in the default dirs and must be skipped.
	m.file("/usr/lib/aarch64-linux-gnu/libc.so.6", elftest.Build(arm), 0o644)
	m.file("/usr/lib/libc.so.6", elftest.Build(elftest.Spec{}), 0o644)
	m.text("/etc/ld.so.conf", "/usr/lib\n")
	m.exe("/usr/bin/app", elftest.Build(elftest.Spec{Machine: elf.EM_AARCH64, Interp: ld, Needed: []string{"libc.so.6"}}))
	p := mustStatic(t, m, Config{Entrypoint: []string{"app"}})
	want := []string{
		"/usr/bin/app", "/lib", "/usr/lib/ld-linux-aarch64.so.1", "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
		"/usr/lib/aarch64-linux-gnu/libc.so.6",
	}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestLoaderMusl(t *testing.T) {
	m := newMemFS()
	m.exe("/lib/ld-musl-x86_64.so.1", elftest.Build(elftest.Spec{SOName: "libc.musl-x86_64.so.1"}))
	m.link("/lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1")
	m.file("/usr/lib/libssl.so.3", elftest.Build(elftest.Spec{Needed: []string{"libc.musl-x86_64.so.1"}}), 0o644)
	m.file("/opt/lib/libssl.so.3", elftest.Build(elftest.Spec{}), 0o644)
	m.text("/etc/ld-musl-x86_64.path", "/usr/lib\n/lib\n")
	m.exe("/usr/bin/app", elftest.Build(elftest.Spec{Interp: "/lib/ld-musl-x86_64.so.1", Needed: []string{"libssl.so.3", "libc.musl-x86_64.so.1"}}))
	m.text("/etc/ld.so.cache", "never read by musl")
	p := mustStatic(t, m, Config{Entrypoint: []string{"app"}})
	want := []string{
		"/usr/bin/app", "/lib/ld-musl-x86_64.so.1", "/etc/ld-musl-x86_64.path",
		"/usr/lib/libssl.so.3", "/lib/libc.musl-x86_64.so.1",
	}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestStaticELFNoLoader(t *testing.T) {
	m := newMemFS()
	m.exe("/app", elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true}))
	m.text("/etc/hosts", "127.0.0.1 localhost\n")
	m.text("/etc/ld.so.cache", "x")
	p := mustStatic(t, m, Config{Entrypoint: []string{"/app"}})
	if diff := cmp.Diff([]string{"/app", "/etc/hosts"}, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}
