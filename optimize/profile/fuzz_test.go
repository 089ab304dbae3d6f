package profile

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"path"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/google/go-cmp/cmp"
)

// fuzzRoot is an image in which the fuzzed bytes are both the entrypoint
// /app/bin and a library /usr/lib/x86_64-linux-gnu/libfuzz.so that
// /usr/bin/host needs, and libnode.so.108, which /usr/bin/node needs (its
// .rodata is searched for built-ins). /bin/sh, node and python3.11 exist,
// so shebang lines reach the shell, Node.js and Python readers.
func fuzzRoot(data []byte) *memFS {
	m := glibcRoot()
	static := elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true})
	m.exe("/usr/bin/dash", static)
	m.link("/usr/bin/sh", "dash")
	m.exe("/usr/bin/node", prog("libnode.so.108"))
	m.exe("/usr/bin/python3.11", static)
	m.link("/usr/bin/python3", "python3.11")
	m.module(stdlib+"os.py", "import stat\n", "fresh")
	m.module(stdlib+"stat.py", "", "stale")
	m.text("/app/lib.js", "require('./bin')\n")
	m.exe("/usr/bin/host", prog("libfuzz.so"))
	m.exe("/app/bin", data)
	m.file(x64lib+"libfuzz.so", data, 0o644)
	m.file(x64lib+"libnode.so.108", data, 0o644) // node searches its .rodata
	return m
}

func FuzzStatic(f *testing.F) {
	f.Add(elftest.Build(elftest.Spec{Interp: ldx86, Needed: []string{"libc.so.6", "libz.so.1"}, RPath: "$ORIGIN/../lib"}))
	f.Add(elftest.Build(elftest.Spec{Needed: []string{"libfuzz.so", "libm.so.6"}, SOName: "libfuzz.so"}))
	f.Add(elftest.Build(elftest.Spec{Class: elf.ELFCLASS32, Machine: elf.EM_386, Interp: "/lib/ld-linux.so.2", Needed: []string{"libc.so.6"}}))
	f.Add(elftest.Build(elftest.Spec{Order: binary.BigEndian, Machine: elf.EM_S390, Interp: "/lib/ld64.so.1"}))
	f.Add(elftest.Build(elftest.Spec{Type: elf.ET_EXEC, Static: true})[:70])
	f.Add([]byte("#!/bin/sh -e\n. /app/bin\nexec \"$@\" <<EOF\n$(x)\nEOF\ncase $1 in a) b;; esac\n"))
	f.Add([]byte("#!/usr/bin/env -S python3 -u\nimport os, stat\nfrom . import x\nif TYPE_CHECKING:\n  import y\n"))
	f.Add([]byte("#!/usr/bin/node\nconst a = require('./lib.js'); import b from \"./bin\"; export * from 'c'\n"))
	f.Add([]byte("#!/app/bin\n"))
	f.Add(elftest.Build(elftest.Spec{SOName: "libnode.so.108", Rodata: []byte("\"NODE_SHARED_BUILTIN_A_PATH=/app/lib.js\"")}))
	f.Add([]byte("#!/bin/sh\ncp /app/* /usr/lib/*/lib*.so* /tmp\ncat '/app/[b' /app/?in\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := fuzzRoot(data)
		for _, ep := range []string{"/app/bin", "/usr/bin/host", "/usr/bin/node"} {
			cfg := Config{Entrypoint: []string{ep}, Cmd: []string{"x"}}
			opts := []Option{WithMaxFiles(500), WithMaxModules(100), WithMaxReadBytes(64 << 10)}
			p, err := Static(context.Background(), m, cfg, opts...)
			if err != nil {
				t.Fatalf("Static: %v", err)
			}
			seen := map[string]bool{}
			for _, f := range p.Files {
				if !path.IsAbs(f) || path.Clean(f) != f || seen[f] {
					t.Fatalf("bad or duplicate file %q in %q", f, p.Files)
				}
				seen[f] = true
			}
			again, err := Static(context.Background(), m, cfg, opts...)
			if err != nil || !cmp.Equal(p, again) {
				t.Fatalf("not deterministic: %v\n%s", err, cmp.Diff(p, again))
			}
		}
	})
}
