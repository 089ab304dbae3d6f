package profile

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"path"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fuzzRoot is an image in which the fuzzed bytes are both the entrypoint
// /app/bin and a library /usr/lib/x86_64-linux-gnu/libfuzz.so that
// /usr/bin/host needs. /bin/sh, node and python3.11 exist, so shebang
// lines reach the shell, Node.js and Python readers.
func fuzzRoot(data []byte) *memFS {
	m := glibcRoot()
	static := buildELF(elfSpec{typ: elf.ET_EXEC, static: true})
	m.exe("/usr/bin/dash", static)
	m.link("/usr/bin/sh", "dash")
	m.exe("/usr/bin/node", static)
	m.exe("/usr/bin/python3.11", static)
	m.link("/usr/bin/python3", "python3.11")
	m.module(stdlib+"os.py", "import stat\n", "fresh")
	m.module(stdlib+"stat.py", "", "stale")
	m.text("/app/lib.js", "require('./bin')\n")
	m.exe("/usr/bin/host", prog("libfuzz.so"))
	m.exe("/app/bin", data)
	m.file(x64lib+"libfuzz.so", data, 0o644)
	return m
}

func FuzzStatic(f *testing.F) {
	f.Add(buildELF(elfSpec{interp: ldx86, needed: []string{"libc.so.6", "libz.so.1"}, rpath: "$ORIGIN/../lib"}))
	f.Add(buildELF(elfSpec{needed: []string{"libfuzz.so", "libm.so.6"}, soname: "libfuzz.so"}))
	f.Add(buildELF(elfSpec{class: elf.ELFCLASS32, machine: elf.EM_386, interp: "/lib/ld-linux.so.2", needed: []string{"libc.so.6"}}))
	f.Add(buildELF(elfSpec{order: binary.BigEndian, machine: elf.EM_S390, interp: "/lib/ld64.so.1"}))
	f.Add(buildELF(elfSpec{typ: elf.ET_EXEC, static: true})[:70])
	f.Add([]byte("#!/bin/sh -e\n. /app/bin\nexec \"$@\" <<EOF\n$(x)\nEOF\ncase $1 in a) b;; esac\n"))
	f.Add([]byte("#!/usr/bin/env -S python3 -u\nimport os, stat\nfrom . import x\nif TYPE_CHECKING:\n  import y\n"))
	f.Add([]byte("#!/usr/bin/node\nconst a = require('./lib.js'); import b from \"./bin\"; export * from 'c'\n"))
	f.Add([]byte("#!/app/bin\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m := fuzzRoot(data)
		for _, ep := range []string{"/app/bin", "/usr/bin/host"} {
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

func FuzzParseELF(f *testing.F) {
	f.Add(buildELF(elfSpec{interp: ldx86, needed: []string{"libc.so.6"}}))
	f.Add(buildELF(elfSpec{class: elf.ELFCLASS32, machine: elf.EM_ARM, needed: []string{"a"}, runpath: "b"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := parseELF(&countingReaderAt{b: data, t: t}, int64(len(data)))
		if err == nil && len(info.needed) > maxNeeded {
			t.Fatalf("%d needed entries", len(info.needed))
		}
	})
}

// countingReaderAt fails the test when a read asks for more than the
// parser's bounds allow, which would mean an unbounded allocation.
type countingReaderAt struct {
	b []byte
	t *testing.T
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > maxDynBytes {
		c.t.Fatalf("read of %d bytes", len(p))
	}
	if off >= int64(len(c.b)) {
		return 0, nil
	}
	return copy(p, c.b[off:]), nil
}
