package profile

import (
	"encoding/binary"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/google/go-cmp/cmp"
)

// pycHeader is a timestamp-based .pyc header (PEP 552) for CPython 3.11.
func pycHeader(mtime time.Time, size int) []byte {
	h := []byte{0xa7, 0x0d, '\r', '\n', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(h[8:], uint32(mtime.Unix()))
	binary.LittleEndian.PutUint32(h[12:], uint32(size))
	return append(h, "bytecode"...)
}

func pycOf(file string) string {
	return path.Join(path.Dir(file), "__pycache__", strings.TrimSuffix(path.Base(file), ".py")+".cpython-311.pyc")
}

// module writes a Python source file and, unless pyc is "none", its
// bytecode: "fresh" matches the source, "stale" does not.
func (m *memFS) module(file, src, pyc string) {
	m.text(file, src)
	switch pyc {
	case "fresh":
		m.file(pycOf(file), pycHeader(memTime, len(src)), 0o644)
	case "stale":
		m.file(pycOf(file), pycHeader(memTime.Add(-time.Hour), len(src)), 0o644)
	}
}

const stdlib = "/usr/lib/python3.11/"

// pythonRoot is a Debian-like image with python3.11, its startup modules
// (encodings/utf_8 and codecs have stale bytecode, encodings/aliases none)
// and a few packages.
func pythonRoot() *memFS {
	m := glibcRoot()
	m.file(x64lib+"libssl.so.3", elftest.Build(elftest.Spec{Needed: []string{"libc.so.6"}}), 0o644)
	m.exe("/usr/bin/python3.11", prog("libm.so.6", "libz.so.1", "libc.so.6"))
	m.link("/usr/bin/python3", "python3.11")
	for _, mod := range pyStartup {
		pyc := "fresh"
		switch mod {
		case "codecs", "encodings/utf_8":
			pyc = "stale"
		case "encodings/aliases":
			pyc = "none"
		}
		m.module(stdlib+mod+".py", "import sys\n", pyc)
	}
	m.module(stdlib+"runpy.py", "import os\n", "fresh")
	m.module(stdlib+"json/__init__.py", "from .decoder import JSONDecoder\nimport json.encoder\n", "none")
	m.module(stdlib+"json/decoder.py", "try:\n    from _json import scanstring\nexcept ImportError:\n    scanstring = None\n", "none")
	m.module(stdlib+"json/encoder.py", "", "fresh")
	m.file(stdlib+"lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so", elftest.Build(elftest.Spec{Needed: []string{"libssl.so.3"}}), 0o644)

	dist := "/usr/lib/python3/dist-packages/"
	m.text(dist+"aa.pth", "# nothing\n")
	m.text(dist+"zz.pth", "import hook\n/opt/extra\n")
	m.module(dist+"hook.py", "", "none")
	m.module(dist+"requests/__init__.py", "from . import adapters\n", "none")
	m.module(dist+"requests/adapters.py", `from .compat import x
class Adapter:
    def send(self):
        return _send()
def _send():
    from . import lazyhttp
def unused():
    import unusedmod
if __name__ == "__main__":
    import selftest
`, "none")
	m.module(dist+"requests/compat.py", "def f():\n    import deepdep\n", "none")
	for _, n := range []string{"requests/lazyhttp", "deepdep", "unusedmod", "selftest"} {
		m.module(dist+n+".py", "", "none")
	}
	m.module("/opt/extra/extramod.py", "", "none")
	m.module("/usr/local/lib/python3.11/dist-packages/sitecustomize.py", "import os\n", "none")
	return m
}

// startupFiles is what pythonRoot lists for the interpreter's own start.
// Python 3.11 has codecs, io, abc, site, os and the others built in
// (frozen): it reads them only with -X frozen_modules=off.
var startupFiles = []string{
	stdlib + "encodings/__pycache__/__init__.cpython-311.pyc",
	stdlib + "encodings/aliases.py",
	stdlib + "encodings/__pycache__/utf_8.cpython-311.pyc", stdlib + "encodings/utf_8.py",
}

// unfrozenStartupFiles is what pythonRoot lists with -X frozen_modules=off.
var unfrozenStartupFiles = []string{
	stdlib + "encodings/__pycache__/__init__.cpython-311.pyc",
	stdlib + "__pycache__/codecs.cpython-311.pyc", stdlib + "codecs.py",
	stdlib + "encodings/aliases.py",
	stdlib + "encodings/__pycache__/utf_8.cpython-311.pyc", stdlib + "encodings/utf_8.py",
	stdlib + "__pycache__/io.cpython-311.pyc",
	stdlib + "__pycache__/abc.cpython-311.pyc",
	stdlib + "__pycache__/site.cpython-311.pyc",
	stdlib + "__pycache__/os.cpython-311.pyc",
	stdlib + "__pycache__/stat.cpython-311.pyc",
	stdlib + "__pycache__/_collections_abc.cpython-311.pyc",
	stdlib + "__pycache__/posixpath.cpython-311.pyc",
	stdlib + "__pycache__/genericpath.cpython-311.pyc",
	stdlib + "__pycache__/_sitebuiltins.cpython-311.pyc",
}

var pythonExe = cat([]string{"/usr/bin/python3", "/usr/bin/python3.11"}, loaderFiles, []string{
	x64lib + "libm.so.6", x64lib + "libz.so.1", x64lib + "libz.so.1.2.13", x64lib + "libc.so.6",
})

func TestPythonScript(t *testing.T) {
	m := pythonRoot()
	m.text("/app/main.py", `"""Docstring: import notamodule"""
import os, sys
from json import decoder
import requests.adapters as ad
from . import nothing  # a relative import in __main__ fails
from pkg import (sub,
    attr)
import _ssl
import extramod
if TYPE_CHECKING:
    import typingonly
def f():
    import lazy
class C:
    import inclass
    def g(self): import lazy
try:
    import tried
except ImportError:
    pass
if __name__ == '__main__':
    import mainblock
    ad.Adapter().send()
x = "import notamodule"; y = '''
import notamodule
'''
`)
	m.module("/app/pkg/__init__.py", "", "none")
	m.module("/app/pkg/sub.py", "", "fresh")
	for _, n := range []string{"inclass", "tried", "lazy", "typingonly", "notamodule", "mainblock"} {
		m.module("/app/"+n+".py", "", "none")
	}
	p := mustStatic(t, m, Config{Entrypoint: []string{"python3", "/app/main.py"}})
	dist := "/usr/lib/python3/dist-packages/"
	want := cat(pythonExe, startupFiles, []string{
		dist + "aa.pth", dist + "zz.pth", dist + "hook.py",
		"/usr/local/lib/python3.11/dist-packages/sitecustomize.py",
		"/app/main.py",
		stdlib + "json/__init__.py", stdlib + "json/decoder.py", stdlib + "json/__pycache__/encoder.cpython-311.pyc",
		dist + "requests/__init__.py", dist + "requests/adapters.py", dist + "requests/compat.py",
		"/app/pkg/__init__.py", "/app/pkg/__pycache__/sub.cpython-311.pyc",
		stdlib + "lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so", x64lib + "libssl.so.3",
		"/opt/extra/extramod.py",
		"/app/inclass.py", "/app/tried.py", "/app/mainblock.py",
		// main's functions run at start, and so do the functions of what
		// main imports itself (requests.adapters) that main names, and
		// what those name (Adapter, then _send); requests.compat's do
		// not count, nor requests.adapters' main block.
		"/app/lazy.py", dist + "requests/lazyhttp.py",
	})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	wantWarn := "python bytecode is stale for 1 modules (e.g. /usr/lib/python3.11/encodings/utf_8.py): python will recompile at every start"
	if diff := cmp.Diff([]string{wantWarn}, p.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestPythonModuleAndVenv(t *testing.T) {
	m := pythonRoot()
	m.link("/app/.venv/bin/python", "/usr/bin/python3.11")
	m.text("/app/.venv/pyvenv.cfg", "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n")
	site := "/app/.venv/lib/python3.11/site-packages/"
	m.text(site+"_virtualenv.pth", "import _virtualenv\n")
	m.module(site+"_virtualenv.py", "", "fresh")
	m.module(site+"flask/__init__.py", "from .app import Flask\n", "fresh")
	m.module(site+"flask/app.py", "import json\n", "fresh")
	m.module(site+"flask/__main__.py", "from .cli import main\n", "fresh")
	m.module(site+"flask/cli.py", "", "fresh")
	p := mustStatic(t, m, Config{Entrypoint: []string{"/app/.venv/bin/python", "-u", "-X", "frozen_modules=off", "-m", "flask", "run"}, WorkingDir: "/app"})
	pyc := func(f string) string { return pycOf(site + f) }
	want := cat([]string{"/app/.venv/bin/python", "/usr/bin/python3.11"}, loaderFiles, []string{
		x64lib + "libm.so.6", x64lib + "libz.so.1", x64lib + "libz.so.1.2.13", x64lib + "libc.so.6",
		"/app/.venv/pyvenv.cfg",
	}, unfrozenStartupFiles, []string{
		site + "_virtualenv.pth", pyc("_virtualenv.py"),
		stdlib + "__pycache__/runpy.cpython-311.pyc",
		pyc("flask/__init__.py"), pyc("flask/app.py"),
		stdlib + "json/__init__.py", stdlib + "json/decoder.py", stdlib + "json/__pycache__/encoder.cpython-311.pyc",
		pyc("flask/__main__.py"), pyc("flask/cli.py"),
	})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestPythonOptionsAndMissing(t *testing.T) {
	m := pythonRoot()
	m.module("/app/x.py", "", "none")
	// -S: no site, so no .pth files, sitecustomize or site-packages.
	p := mustStatic(t, m, Config{Entrypoint: []string{"python3", "-S", "-c", "import x; import requests"}, WorkingDir: "/app"})
	for _, f := range p.Files {
		if strings.Contains(f, "dist-packages") || strings.Contains(f, "site.cpython") {
			t.Errorf("-S still lists %s", f)
		}
	}
	if p.Files[len(p.Files)-1] != "/app/x.py" {
		t.Errorf("-c import not followed: %q", p.Files)
	}
	p = mustStatic(t, m, Config{Entrypoint: []string{"python3", "-m", "nosuchmodule"}})
	if !hasWarning(p, "Python module nosuchmodule not found") {
		t.Errorf("warnings %q", p.Warnings)
	}
	p = mustStatic(t, m, Config{Entrypoint: []string{"python3", "/nosuch.py"}})
	if !hasWarning(p, "Python script /nosuch.py") {
		t.Errorf("warnings %q", p.Warnings)
	}
	// The user site directory comes from the config's user's home.
	m.text("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\n")
	userPth := "/home/app/.local/lib/python3.11/site-packages/user.pth"
	m.text(userPth, "")
	for _, tc := range []struct {
		user string
		args []string
		want bool
	}{
		{"app", []string{"python3", "-c", "pass"}, true},
		{"1000:1000", []string{"python3", "-c", "pass"}, true},
		{"app", []string{"python3", "-s", "-c", "pass"}, false},
		{"", []string{"python3", "-c", "pass"}, false},
	} {
		p = mustStatic(t, m, Config{Entrypoint: tc.args, User: tc.user})
		if contains(p.Files, userPth) != tc.want {
			t.Errorf("user %q %q: user site listed = %v", tc.user, tc.args, !tc.want)
		}
	}
	m2 := glibcRoot()
	m2.exe("/usr/bin/python3", prog("libc.so.6"))
	p = mustStatic(t, m2, Config{Entrypoint: []string{"python3", "app.py"}})
	if !hasWarning(p, "standard library was not found") {
		t.Errorf("warnings %q", p.Warnings)
	}
}

func TestPythonModuleCap(t *testing.T) {
	m := pythonRoot()
	var src strings.Builder
	for i := 0; i < 50; i++ {
		name := "m" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		src.WriteString("import " + name + "\n")
		m.module("/app/"+name+".py", "", "none")
	}
	m.text("/app/main.py", src.String())
	p := mustStatic(t, m, Config{Entrypoint: []string{"python3", "/app/main.py"}}, WithMaxModules(10))
	if !hasWarning(p, "module cap of 10") {
		t.Errorf("warnings %q", p.Warnings)
	}
	n := 0
	for _, f := range p.Files {
		if strings.HasPrefix(f, "/app/m") {
			n++
		}
	}
	if n >= 10 {
		t.Errorf("%d app modules listed despite the cap", n)
	}
}

func TestParsePyImports(t *testing.T) {
	src := `import a.b as c, d
from .x import (y,
                z as w)
from .. import q
from m import *
if x: import e
with open(f) as g:
    import h
async def f():
    import nope
import \
    f
s = """
import nope
"""
`
	want := []pyStmt{
		{module: "a.b"}, {module: "d"},
		{from: true, module: "x", level: 1, names: []string{"y", "z"}},
		{from: true, module: "", level: 2, names: []string{"q"}},
		{from: true, module: "m", names: []string{"*"}},
		{module: "e"}, {module: "h"}, {module: "nope", deferred: true, owner: "f"}, {module: "f"},
	}
	if diff := cmp.Diff(want, parsePyImports([]byte(src)), cmp.AllowUnexported(pyStmt{})); diff != "" {
		t.Errorf("parsePyImports (-want +got):\n%s", diff)
	}
}

// TestPythonHost runs over a copy of the host's python3.11 and part of its
// standard library, with the real bytecode: nothing is stale until a source
// file's mtime changes.
func TestPythonHost(t *testing.T) {
	h := newHostRoot(t)
	if _, err := os.Stat("/usr/bin/python3.11"); err != nil {
		t.Skip("no /usr/bin/python3.11 on this host")
	}
	h.copy("/usr/bin/python3.11", "usr/bin/python3.11")
	h.symlink("python3.11", "usr/bin/python3")
	h.hostClosure("/usr/bin/python3.11", map[string]bool{"ld-linux-x86-64.so.2": true})
	mods := append(append([]string{}, pyStartup...), "json/__init__", "json/decoder", "json/scanner", "json/encoder")
	for _, mod := range mods {
		src := "/usr/lib/python3.11/" + mod + ".py"
		h.copy(src, strings.TrimPrefix(src, "/"))
		pyc := pycOf(src)
		if !hostPycFresh(t, src, pyc) {
			t.Skipf("the host's own bytecode for %s is stale", src)
		}
		h.copy(pyc, strings.TrimPrefix(pyc, "/"))
	}
	cfg := Config{Entrypoint: []string{"python3", "-c", "import json"}}
	p := mustStatic(t, DirFS(h.root), cfg)
	if len(p.Warnings) != 0 {
		t.Errorf("warnings: %q", p.Warnings)
	}
	for _, mod := range mods {
		pyc := pycOf("/usr/lib/python3.11/" + mod + ".py")
		if frozen := pyFrozen[strings.ReplaceAll(mod, "/", ".")]; contains(p.Files, pyc) == frozen {
			t.Errorf("%s listed: %v, but the module is frozen: %v", pyc, !frozen, frozen)
		}
	}
	for _, f := range p.Files {
		if strings.HasSuffix(f, ".py") {
			t.Errorf("source %s listed although its bytecode is fresh", f)
		}
	}
	// Touch one source: its bytecode is stale now.
	dec := h.root + "/usr/lib/python3.11/json/decoder.py"
	if err := os.Chtimes(dec, time.Unix(1e9, 0), time.Unix(1e9, 0)); err != nil {
		t.Fatal(err)
	}
	p = mustStatic(t, DirFS(h.root), cfg)
	want := "python bytecode is stale for 1 modules (e.g. /usr/lib/python3.11/json/decoder.py): python will recompile at every start"
	if diff := cmp.Diff([]string{want}, p.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if !contains(p.Files, "/usr/lib/python3.11/json/decoder.py") {
		t.Errorf("the stale source is not listed")
	}
}

// hostPycFresh checks a host .pyc against its source independently of the
// code under test, to skip on hosts whose bytecode does not match.
func hostPycFresh(t *testing.T, src, pyc string) bool {
	b, err := os.ReadFile(pyc)
	if err != nil || len(b) < 16 {
		t.Skipf("host bytecode %s: %v", pyc, err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		t.Skip(err)
	}
	return binary.LittleEndian.Uint32(b[4:]) == 0 &&
		binary.LittleEndian.Uint32(b[8:]) == uint32(fi.ModTime().Unix()) &&
		binary.LittleEndian.Uint32(b[12:]) == uint32(fi.Size())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestPythonFallbacks(t *testing.T) {
	m := pythonRoot()
	m.text("/app/main.py", `try:
    import _speedups
except ImportError:
    import slowpath
try:
    import simplejson as json
except ImportError:
    import json
try: import present
except (ImportError, OSError): import notneeded
finally:
    import always
`)
	for _, n := range []string{"slowpath", "present", "notneeded", "always"} {
		m.module("/app/"+n+".py", "", "none")
	}
	p := mustStatic(t, m, Config{Entrypoint: []string{"python3", "/app/main.py"}})
	i := indexOf(p.Files, "/app/main.py")
	want := []string{
		"/app/main.py",
		stdlib + "json/__init__.py", stdlib + "json/decoder.py", stdlib + "json/__pycache__/encoder.cpython-311.pyc",
		"/app/present.py", "/app/always.py",
	}
	if i < 0 {
		t.Fatalf("files %q", p.Files)
	}
	if diff := cmp.Diff(want, p.Files[i:]); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}

	got := parsePyImports([]byte("try:\n  import a\n  try: import b\n  except: import c\nexcept ImportError:\n  import d\nimport e\n"))
	wantStmts := []pyStmt{{module: "a", try: 1}, {module: "b", try: 2}, {module: "c", fallback: 2}, {module: "d", fallback: 1}, {module: "e"}}
	if diff := cmp.Diff(wantStmts, got, cmp.AllowUnexported(pyStmt{})); diff != "" {
		t.Errorf("parsePyImports (-want +got):\n%s", diff)
	}
}

// TestPythonImplicit checks what the standard library's C code imports or
// reads by name: _decimal imports numbers as it initialises, socket's name
// lookups import the idna codec, and _ssl or _hashlib read OpenSSL's
// configuration.
func TestPythonImplicit(t *testing.T) {
	m := pythonRoot()
	m.module(stdlib+"decimal.py", "try:\n    from _decimal import *\nexcept ImportError:\n    from _pydecimal import *\n", "fresh")
	m.file(stdlib+"lib-dynload/_decimal.cpython-311-x86_64-linux-gnu.so", elftest.Build(elftest.Spec{Needed: []string{"libc.so.6"}}), 0o644)
	m.module(stdlib+"numbers.py", "from abc import ABCMeta\n", "fresh")
	m.module(stdlib+"collections/__init__.py", "", "fresh")
	m.module(stdlib+"socket.py", "import _socket\n", "fresh")
	m.module(stdlib+"encodings/idna.py", "import stringprep, re, codecs\n", "fresh")
	m.module(stdlib+"stringprep.py", "", "fresh")
	m.module(stdlib+"_pydecimal.py", "", "fresh")
	m.text("/etc/ssl/openssl.cnf", "")
	m.link("/usr/lib/ssl/openssl.cnf", "/etc/ssl/openssl.cnf")
	m.text("/app/main.py", "import decimal\nimport socket\nimport _ssl\n")
	p := mustStatic(t, m, Config{Entrypoint: []string{"python3", "/app/main.py"}})
	dist := "/usr/lib/python3/dist-packages/"
	want := cat(pythonExe, startupFiles, []string{
		dist + "aa.pth", dist + "zz.pth", dist + "hook.py",
		"/usr/local/lib/python3.11/dist-packages/sitecustomize.py",
		"/app/main.py",
		stdlib + "__pycache__/decimal.cpython-311.pyc",
		stdlib + "lib-dynload/_decimal.cpython-311-x86_64-linux-gnu.so",
		stdlib + "__pycache__/numbers.cpython-311.pyc",
		stdlib + "collections/__pycache__/__init__.cpython-311.pyc",
		stdlib + "__pycache__/socket.cpython-311.pyc",
		stdlib + "encodings/__pycache__/idna.cpython-311.pyc",
		stdlib + "__pycache__/stringprep.cpython-311.pyc",
		stdlib + "lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so", x64lib + "libssl.so.3",
		"/usr/lib/ssl/openssl.cnf", "/etc/ssl/openssl.cnf",
	})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}
