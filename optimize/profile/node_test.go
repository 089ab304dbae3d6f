package profile

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/elftest"
	"github.com/google/go-cmp/cmp"
)

func TestNode(t *testing.T) {
	m := glibcRoot()
	m.exe("/usr/bin/node", prog("libc.so.6"))
	m.text("/app/package.json", `{"name": "app", "main": "server.js"}`)
	m.text("/app/server.js", `// require('commented')
/* import x from 'blockcommented' */
const fs = require('fs');
const path = require("node:path");
const express = require('express');
const util = require('./lib/util');
import def, { named } from '@scope/pkg';
import './side-effect.mjs';
export * from './reexport';
const lazy = import('./lazy.js');
const s = "require('instring')";
const cfg = require('./config.json');
const addon = require('./build/Release/addon.node');
const feature = require('@scope/pkg/feature');
const linked = require(`+"`linked`"+`);
obj.require('./notthis');
`)
	m.text("/app/node_modules/express/package.json", `{"main": "./index"}`)
	m.text("/app/node_modules/express/index.js", "module.exports = require('./lib/express')\n")
	m.text("/app/node_modules/express/lib/express.js", "")
	m.text("/app/lib/util/index.js", "require('express')\n")
	m.text("/node_modules/@scope/pkg/package.json", `{"exports": {
		".": {"types": "./index.d.ts", "import": "./esm/index.mjs", "require": "./cjs/index.js"},
		"./feature": "./feature/impl.js"}}`)
	m.text("/node_modules/@scope/pkg/esm/index.mjs", "")
	m.text("/node_modules/@scope/pkg/cjs/index.js", "")
	m.text("/node_modules/@scope/pkg/feature/impl.js", "")
	m.text("/app/side-effect.mjs", "")
	m.text("/app/reexport.js", "")
	m.text("/app/lazy.js", "")
	m.text("/app/notthis.js", "")
	m.text("/app/config.json", "{}")
	m.file("/app/build/Release/addon.node", elftest.Build(elftest.Spec{Needed: []string{"libz.so.1"}}), 0o644)
	// A workspace package linked into node_modules: its own requires are
	// resolved from its real directory.
	m.link("/app/node_modules/linked", "../packages/linked")
	m.text("/app/packages/linked/index.js", "require('dep')\n")
	m.text("/app/node_modules/dep/index.js", "")

	p := mustStatic(t, m, Config{Cmd: []string{"node", "server.js"}, WorkingDir: "/app"})
	want := cat([]string{"/usr/bin/node"}, loaderFiles, []string{
		x64lib + "libc.so.6",
		"/app/server.js", "/app/package.json",
		"/app/node_modules/express/package.json", "/app/node_modules/express/index.js", "/app/node_modules/express/lib/express.js",
		"/app/lib/util/index.js",
		"/node_modules/@scope/pkg/package.json", "/node_modules/@scope/pkg/esm/index.mjs",
		"/app/side-effect.mjs", "/app/reexport.js", "/app/config.json",
		"/app/build/Release/addon.node", x64lib + "libz.so.1", x64lib + "libz.so.1.2.13",
		"/node_modules/@scope/pkg/feature/impl.js",
		"/app/node_modules/linked", "/app/packages/linked/index.js", "/app/node_modules/dep/index.js",
	})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings %q", p.Warnings)
	}

	// "node ." runs the package's main; -r preloads; NODE_OPTIONS too.
	m.text("/app/preload.js", "")
	m.text("/app/node_modules/dotenv/config.js", "")
	p = mustStatic(t, m, Config{Cmd: []string{"node", "-r", "./preload.js", "."}, WorkingDir: "/app", Env: []string{"NODE_OPTIONS=--require dotenv/config"}})
	if got := p.Files[len(loaderFiles)+2 : len(loaderFiles)+5]; !cmp.Equal(got, []string{"/app/node_modules/dotenv/config.js", "/app/preload.js", "/app/package.json"}) {
		t.Errorf("preloads: %q", p.Files)
	}
	if !contains(p.Files, "/app/server.js") {
		t.Errorf("node . did not run package.json main: %q", p.Files)
	}
	p = mustStatic(t, m, Config{Cmd: []string{"node", "-e", "require('x')"}})
	if len(p.Files) != len(loaderFiles)+2 {
		t.Errorf("node -e: %q", p.Files)
	}
	p = mustStatic(t, m, Config{Cmd: []string{"node", "missing.js"}})
	if !hasWarning(p, "entry script missing.js not found") {
		t.Errorf("warnings %q", p.Warnings)
	}

	// OpenSSL's configuration, read when node starts: Debian's default
	// location is a link into /etc/ssl; OPENSSL_CONF and --openssl-config
	// name another.
	m.link("/usr/lib/ssl/openssl.cnf", "/etc/ssl/openssl.cnf")
	m.text("/etc/ssl/openssl.cnf", "")
	m.text("/app/ssl.cnf", "")
	for _, c := range []struct {
		cfg  Config
		want []string
	}{
		{Config{Cmd: []string{"node", "server.js"}, WorkingDir: "/app"}, []string{"/usr/lib/ssl/openssl.cnf", "/etc/ssl/openssl.cnf"}},
		{Config{Cmd: []string{"node", "server.js"}, WorkingDir: "/app", Env: []string{"OPENSSL_CONF=ssl.cnf"}}, []string{"/app/ssl.cnf"}},
		{Config{Cmd: []string{"node", "--openssl-config", "/app/ssl.cnf", "server.js"}, WorkingDir: "/app", Env: []string{"OPENSSL_CONF=/nope"}}, []string{"/app/ssl.cnf"}},
	} {
		p = mustStatic(t, m, c.cfg)
		at := len(loaderFiles) + 2
		if got := p.Files[at : at+len(c.want)]; !cmp.Equal(got, c.want) || p.Files[at+len(c.want)] != "/app/server.js" {
			t.Errorf("%v: OpenSSL config: %q", c.cfg, p.Files)
		}
	}
}

func TestJSSpecifiers(t *testing.T) {
	src := "import a from \"a\"; import * as b from 'b'\nimport {\n c,\n d as e\n} from 'c';\n" +
		"export { x } from './x'; export * as y from './y'; export const z = 1;\n" +
		"const t = `require('no')`; const u = require(`./tpl`); x.import('no'); import('no');\n" +
		"import 'side';\n"
	want := []string{"a", "b", "c", "./x", "./y", "./tpl", "side"}
	if diff := cmp.Diff(want, jsSpecifiers([]byte(src))); diff != "" {
		t.Errorf("jsSpecifiers (-want +got):\n%s", diff)
	}
}

func TestExportsTarget(t *testing.T) {
	tests := []struct {
		exports string
		sub     string
		want    string
	}{
		{`"./main.js"`, ".", "./main.js"},
		{`"./main.js"`, "./x", ""},
		{`{"default": "./d.js", "node": "./n.js"}`, ".", "./d.js"},
		{`{"browser": "./b.js", "node": {"require": "./r.cjs", "import": "./i.mjs"}}`, ".", "./r.cjs"},
		{`{".": [{"worker": "./w.js"}, "./fallback.js"]}`, ".", "./fallback.js"},
		{`{"./utils/*": "./dist/utils/*.js"}`, "./utils/str", "./dist/utils/str.js"},
		{`{"./a": null}`, "./a", ""},
		{`{".": "../escape.js"}`, ".", ""},
	}
	for _, tc := range tests {
		got, ok := exportsTarget(json.RawMessage(tc.exports), tc.sub)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("exportsTarget(%s, %q) = %q, %v; want %q", tc.exports, tc.sub, got, ok, tc.want)
		}
	}
}

// TestNodeSharedBuiltins checks a Node.js built with built-ins kept out of
// the binary (Debian's): the files its embedded configuration names are read
// at start, after OpenSSL's configuration and before the entry script; a
// named file the image lacks is skipped, and other libraries are not
// searched.
func TestNodeSharedBuiltins(t *testing.T) {
	m := glibcRoot()
	config := `{ "target_defaults": {"defines": ["NODE_OPENSSL_CONF_NAME=nodejs_conf", ` +
		`"NODE_SHARED_BUILTIN_CJS_MODULE_LEXER_LEXER_PATH=/usr/share/nodejs/cjs-module-lexer/lexer.js", ` +
		`"NODE_SHARED_BUILTIN_UNDICI_UNDICI_PATH=/usr/share/nodejs/undici/undici-fetch.js", ` +
		`"NODE_SHARED_BUILTIN_MISSING_PATH=/usr/share/nodejs/missing.js", ` +
		`"NODE_SHARED_BUILTIN_ACORN_PATH=/usr/share/nodejs/acorn/dist/acorn.js"]}}`
	rodata := append(append([]byte("\x00other strings\x00"), config...), 0)
	m.file(x64lib+"libnode.so.108", elftest.Build(elftest.Spec{SOName: "libnode.so.108", Needed: []string{"libc.so.6"}, Rodata: rodata}), 0o644)
	m.file(x64lib+"libother.so.1", elftest.Build(elftest.Spec{SOName: "libother.so.1", Needed: []string{"libc.so.6"},
		Rodata: []byte("NODE_SHARED_BUILTIN_X_PATH=/usr/share/nodejs/other.js\x00")}), 0o644)
	m.exe("/usr/bin/node", prog("libnode.so.108", "libother.so.1", "libc.so.6"))
	for _, f := range []string{"cjs-module-lexer/lexer.js", "undici/undici-fetch.js", "acorn/dist/acorn.js", "other.js"} {
		m.text("/usr/share/nodejs/"+f, "")
	}
	m.text("/app/server.js", "")
	p := mustStatic(t, m, Config{Cmd: []string{"node", "server.js"}, WorkingDir: "/app"})
	want := []string{
		"/usr/share/nodejs/cjs-module-lexer/lexer.js",
		"/usr/share/nodejs/undici/undici-fetch.js",
		"/usr/share/nodejs/acorn/dist/acorn.js",
		"/app/server.js",
	}
	if got := p.Files[len(p.Files)-len(want):]; !cmp.Equal(got, want) {
		t.Errorf("files end with %q, want %q (all: %q)", got, want, p.Files)
	}
	for _, f := range p.Files {
		if f == "/usr/share/nodejs/other.js" {
			t.Errorf("a define in another library was followed: %q", p.Files)
		}
	}

	// The same build, seen through an FS whose files cannot be read at
	// offsets: nothing is predicted, and nothing fails.
	m.noReadAt = true
	p = mustStatic(t, m, Config{Cmd: []string{"node", "server.js"}, WorkingDir: "/app"})
	if got := p.Files[len(p.Files)-1]; got != "/app/server.js" || len(p.Files) > 1 && p.Files[len(p.Files)-2] == want[2] {
		t.Errorf("without ReadAt: %q", p.Files)
	}
}

// TestScanDefines checks the search: a define after a run of more than a
// megabyte without a separator is found, one cut by the end of the data is
// kept, repeats are listed once, and a define that is not a path is
// skipped.
func TestScanDefines(t *testing.T) {
	pad := strings.Repeat("x", 1<<20-30)
	data := pad + `"NODE_SHARED_BUILTIN_A_PATH=/a.js", "NODE_SHARED_BUILTIN_A_PATH=/a.js", ` +
		`"NODE_SHARED_BUILTIN_B=/b.js", "NODE_SHARED_BUILTIN_C_PATH=relative.js", NODE_SHARED_BUILTIN_D_PATH=/d.js`
	got := scanDefines(strings.NewReader(data))
	if want := []string{"/a.js", "/d.js"}; !cmp.Equal(got, want) {
		t.Errorf("scanDefines = %q, want %q", got, want)
	}
	// A define that a run without separators leads into, wherever the
	// run is cut.
	for _, n := range []int{1, 32<<10 - 300, 32<<10 - 100, 32 << 10, 100 << 10} {
		data := strings.Repeat("y", n) + "NODE_SHARED_BUILTIN_E_PATH=/e.js\x00tail"
		if got := scanDefines(strings.NewReader(data)); !cmp.Equal(got, []string{"/e.js"}) {
			t.Errorf("after a run of %d bytes: %q", n, got)
		}
	}
}
