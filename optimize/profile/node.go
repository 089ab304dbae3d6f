package profile

import (
	"bytes"
	"encoding/json"
	"path"
	"strings"
)

// nodeBuiltins are Node.js core modules; require("fs") never reads a file.
var nodeBuiltins = map[string]bool{
	"assert": true, "async_hooks": true, "buffer": true, "child_process": true, "cluster": true,
	"console": true, "constants": true, "crypto": true, "dgram": true, "diagnostics_channel": true,
	"dns": true, "domain": true, "events": true, "fs": true, "http": true, "http2": true,
	"https": true, "inspector": true, "module": true, "net": true, "os": true, "path": true,
	"perf_hooks": true, "process": true, "punycode": true, "querystring": true, "readline": true,
	"repl": true, "stream": true, "string_decoder": true, "sys": true, "timers": true, "tls": true,
	"trace_events": true, "tty": true, "url": true, "util": true, "v8": true, "vm": true,
	"wasi": true, "worker_threads": true, "zlib": true,
}

// nodeConditions are the export conditions Node.js matches for a program it
// runs; the first one listed by a package wins.
var nodeConditions = map[string]bool{"node": true, "require": true, "import": true, "default": true, "node-addons": true, "module-sync": true}

// nodeAnalyzer follows Node.js programs (node, nodejs): OpenSSL's
// configuration, preloaded modules, then the graph of the entry script's
// require() and import statements, resolved as Node.js resolves them. Its
// only state across processes is what each node binary's build
// configuration names; each process has its own nodeRun.
type nodeAnalyzer struct {
	c *core
	// defines caches, by real path, the built-ins an object's build
	// configuration names (sharedBuiltins).
	defines map[string][]string
}

func (na *nodeAnalyzer) finish() {}

// nodeRun is one Node.js process being profiled.
type nodeRun struct {
	c       *core
	p       *process
	visited map[string]bool // real paths of loaded modules
	scopes  map[string]bool // directories whose package scope was looked up
	pkgs    map[string]*nodePkg
	global  []string // NODE_PATH and the global folders
}

type nodePkg struct {
	main    string
	exports json.RawMessage
}

// start follows a Node.js start: preloaded modules (-r, --import,
// NODE_OPTIONS), the entry script and the graph of its require() and import
// statements, resolved as Node.js resolves them.
func (na *nodeAnalyzer) start(x *execution) {
	c, p, argv, env, cwd := na.c, x.proc, x.argv, x.env, x.cwd
	nr := &nodeRun{c: c, p: p, visited: map[string]bool{}, scopes: map[string]bool{}, pkgs: map[string]*nodePkg{}}
	for _, d := range strings.Split(env["NODE_PATH"], ":") {
		if d != "" {
			nr.global = append(nr.global, cleanAbs(cwd, d))
		}
	}
	if h := env["HOME"]; h != "" {
		nr.global = append(nr.global, path.Join(h, ".node_modules"), path.Join(h, ".node_libraries"))
	}
	var preload []string
	sslConf := ""
	parse := func(args []string) []string {
		for len(args) > 0 {
			a := args[0]
			if a == "-" || !strings.HasPrefix(a, "-") {
				break
			}
			args = args[1:]
			if a == "--" {
				break
			}
			name, val, hasVal := strings.Cut(a, "=")
			switch name {
			case "-r", "--require", "--import":
				if !hasVal && len(args) > 0 {
					val, args = args[0], args[1:]
				}
				preload = append(preload, val)
			case "--openssl-config":
				if !hasVal && len(args) > 0 {
					val, args = args[0], args[1:]
				}
				sslConf = val
			case "-e", "--eval", "-p", "--print", "-i", "--interactive", "-c", "--check", "--test", "-v", "--version", "-h", "--help":
				return nil
			case "--loader", "--experimental-loader", "-C", "--conditions", "--input-type", "--title", "--env-file", "--stack-size", "--max-old-space-size", "--inspect-port", "--debug-port", "--redirect-warnings", "--diagnostic-dir", "--icu-data-dir", "--unhandled-rejections", "--dns-result-order":
				if !hasVal && len(args) > 0 {
					args = args[1:]
				}
			}
		}
		return args
	}
	parse(strings.Fields(env["NODE_OPTIONS"]))
	args := parse(argv[1:])
	// Node initialises OpenSSL at start, which reads its configuration:
	// --openssl-config, else OPENSSL_CONF, else openssl.cnf in OpenSSL's
	// directory (Debian: /usr/lib/ssl, a link into /etc/ssl).
	c.useOpenSSLConf(sslConf, env, cwd)
	// A build with built-ins kept out of the binary reads them next.
	var libs []string
	if p != nil {
		libs = p.libs
	}
	for _, f := range na.sharedBuiltins(x.real, libs) {
		c.use(f)
	}
	for _, spec := range preload {
		if f, ok := nr.resolve(spec, cwd); ok {
			nr.module(f, 1)
		}
	}
	if len(args) == 0 || args[0] == "-" {
		return
	}
	entry := cleanAbs(cwd, args[0])
	f, ok := nr.loadAsFile(entry)
	if !ok {
		f, ok = nr.loadAsDir(entry)
	}
	if !ok {
		c.warnf("node: entry script %s not found in the image", args[0])
		return
	}
	nr.module(f, 1)
}

// module loads one module file and, depth-first in source order, what it
// requires or imports.
func (nr *nodeRun) module(file string, depth int) {
	c := nr.c
	r, ok := c.resolveFile(file)
	if !ok || nr.visited[r.Real] || c.stopped() {
		return
	}
	nr.visited[r.Real] = true
	if depth > maxImportDepth {
		c.warnf("node requires nested deeper than %d levels are not followed", maxImportDepth)
		return
	}
	if !c.takeModule() {
		return
	}
	c.recordAll(r.Links, r.Real)
	dir := path.Dir(r.Real)
	nr.scope(dir)
	switch path.Ext(r.Real) {
	case ".json":
		return
	case ".node":
		c.elf.loadLibrary(nr.p, r.Real)
		return
	}
	src, ok := c.readText(r.Real)
	if !ok {
		return
	}
	for _, spec := range jsSpecifiers(src) {
		if f, ok := nr.resolve(spec, dir); ok {
			nr.module(f, depth+1)
		}
	}
}

// scope records the package.json that rules a module's directory (Node.js
// reads it for "type"): the nearest one up the tree, not crossing a
// node_modules directory.
func (nr *nodeRun) scope(dir string) {
	for {
		if nr.scopes[dir] {
			return
		}
		nr.scopes[dir] = true
		if _, ok := nr.c.use(path.Join(dir, "package.json")); ok {
			return
		}
		if dir == "/" || path.Base(dir) == "node_modules" {
			return
		}
		dir = path.Dir(dir)
	}
}

// resolve resolves a specifier from the directory of the requiring module.
func (nr *nodeRun) resolve(spec, dir string) (string, bool) {
	if spec == "" || strings.HasPrefix(spec, "node:") || strings.HasPrefix(spec, "#") ||
		strings.Contains(spec, "://") || strings.HasPrefix(spec, "data:") {
		return "", false
	}
	first, _, _ := strings.Cut(spec, "/")
	if nodeBuiltins[first] {
		return "", false
	}
	if strings.HasPrefix(spec, "./") || strings.HasPrefix(spec, "../") || spec == "." || spec == ".." || strings.HasPrefix(spec, "/") {
		x := cleanAbs(dir, spec)
		if f, ok := nr.loadAsFile(x); ok {
			return f, true
		}
		return nr.loadAsDir(x)
	}
	name, sub := spec, ""
	if strings.HasPrefix(spec, "@") {
		parts := strings.SplitN(spec, "/", 3)
		if len(parts) < 2 {
			return "", false
		}
		name = parts[0] + "/" + parts[1]
		if len(parts) == 3 {
			sub = parts[2]
		}
	} else if i := strings.IndexByte(spec, '/'); i >= 0 {
		name, sub = spec[:i], spec[i+1:]
	}
	var dirs []string
	for d := dir; ; d = path.Dir(d) {
		if path.Base(d) != "node_modules" {
			dirs = append(dirs, path.Join(d, "node_modules"))
		}
		if d == "/" {
			break
		}
	}
	dirs = append(dirs, nr.global...)
	for _, nm := range dirs {
		pkgDir := path.Join(nm, name)
		if _, ok := nr.c.isDir(pkgDir); !ok {
			continue
		}
		if pkg := nr.pkg(pkgDir); pkg != nil && len(pkg.exports) > 0 {
			sp := "."
			if sub != "" {
				sp = "./" + sub
			}
			if t, ok := exportsTarget(pkg.exports, sp); ok {
				f := cleanAbs(pkgDir, t)
				if _, ok := nr.c.resolveFile(f); ok {
					return f, true
				}
			}
		}
		if sub == "" {
			return nr.loadAsDir(pkgDir)
		}
		x := path.Join(pkgDir, sub)
		if f, ok := nr.loadAsFile(x); ok {
			return f, true
		}
		return nr.loadAsDir(x)
	}
	return "", false
}

// loadAsFile tries x itself and x with Node.js's extensions.
func (nr *nodeRun) loadAsFile(x string) (string, bool) {
	for _, ext := range []string{"", ".js", ".json", ".node", ".mjs", ".cjs"} {
		if _, ok := nr.c.resolveFile(x + ext); ok {
			return x + ext, true
		}
	}
	return "", false
}

// loadAsDir tries the "main" of x/package.json, then x/index.*.
func (nr *nodeRun) loadAsDir(x string) (string, bool) {
	if _, ok := nr.c.isDir(x); !ok {
		return "", false
	}
	if pkg := nr.pkg(x); pkg != nil && pkg.main != "" {
		m := cleanAbs(x, pkg.main)
		if f, ok := nr.loadAsFile(m); ok {
			return f, true
		}
		if f, ok := nr.loadIndex(m); ok {
			return f, true
		}
	}
	return nr.loadIndex(x)
}

func (nr *nodeRun) loadIndex(x string) (string, bool) {
	for _, ext := range []string{".js", ".json", ".node"} {
		f := path.Join(x, "index"+ext)
		if _, ok := nr.c.resolveFile(f); ok {
			return f, true
		}
	}
	return "", false
}

// pkg reads and records dir/package.json.
func (nr *nodeRun) pkg(dir string) *nodePkg {
	if p, ok := nr.pkgs[dir]; ok {
		return p
	}
	nr.pkgs[dir] = nil
	r, ok := nr.c.use(path.Join(dir, "package.json"))
	if !ok {
		return nil
	}
	b, ok := nr.c.readText(r.Real)
	if !ok {
		return nil
	}
	var doc struct {
		Main    any             `json:"main"`
		Exports json.RawMessage `json:"exports"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		nr.c.warnf("%s: %v", r.Real, err)
		return nil
	}
	p := &nodePkg{exports: doc.Exports}
	if s, ok := doc.Main.(string); ok {
		p.main = s
	}
	if bytes.Equal(bytes.TrimSpace(p.exports), []byte("null")) {
		p.exports = nil
	}
	nr.pkgs[dir] = p
	return p
}

// exportsTarget resolves a subpath ("." or "./x") through a package.json
// "exports" value: a string, an array of alternatives, a map of subpaths
// (with one "*" wildcard allowed) or a map of conditions.
func exportsTarget(raw json.RawMessage, sub string) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"', '[':
		if sub != "." {
			return "", false
		}
		return conditionTarget(raw, 0)
	case '{':
		kvs, ok := orderedObject(raw)
		if !ok {
			return "", false
		}
		if len(kvs) > 0 && strings.HasPrefix(kvs[0].key, ".") {
			for _, kv := range kvs {
				if kv.key == sub {
					return conditionTarget(kv.val, 0)
				}
			}
			for _, kv := range kvs {
				pre, post, ok := strings.Cut(kv.key, "*")
				if !ok || !strings.HasPrefix(sub, pre) || !strings.HasSuffix(sub, post) || len(sub) < len(pre)+len(post) {
					continue
				}
				star := sub[len(pre) : len(sub)-len(post)]
				if t, ok := conditionTarget(kv.val, 0); ok {
					return strings.ReplaceAll(t, "*", star), true
				}
			}
			return "", false
		}
		if sub != "." {
			return "", false
		}
		return conditionTarget(raw, 0)
	}
	return "", false
}

// conditionTarget picks the target of a conditional export.
func conditionTarget(raw json.RawMessage, depth int) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || depth > 16 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil || !strings.HasPrefix(s, "./") {
			return "", false
		}
		return s, true
	case '[':
		var alts []json.RawMessage
		if json.Unmarshal(raw, &alts) != nil {
			return "", false
		}
		for _, a := range alts {
			if t, ok := conditionTarget(a, depth+1); ok {
				return t, true
			}
		}
	case '{':
		kvs, ok := orderedObject(raw)
		if !ok {
			return "", false
		}
		for _, kv := range kvs {
			if nodeConditions[kv.key] {
				if t, ok := conditionTarget(kv.val, depth+1); ok {
					return t, true
				}
			}
		}
	}
	return "", false
}

type jsonKV struct {
	key string
	val json.RawMessage
}

// orderedObject decodes a JSON object keeping its key order, which decides
// which export condition wins.
func orderedObject(raw json.RawMessage) ([]jsonKV, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var out []jsonKV
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		k, ok := t.(string)
		if !ok {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, jsonKV{k, v})
	}
	return out, true
}

// jsSpecifiers lists, in source order, the modules a JavaScript file loads
// when it runs: require("x") calls, static import declarations and
// "export ... from" re-exports. Dynamic import() is lazy and left out.
// Comments and the contents of strings and templates are skipped.
func jsSpecifiers(src []byte) []string {
	toks := jsTokens(src)
	var out []string
	prevDot := func(i int) bool { return i > 0 && toks[i-1].text == "." && !toks[i-1].str }
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.str || prevDot(i) {
			continue
		}
		switch t.text {
		case "require":
			if i+3 < len(toks) && toks[i+1].text == "(" && !toks[i+1].str && toks[i+2].str && toks[i+3].text == ")" && !toks[i+3].str {
				out = append(out, toks[i+2].text)
				i += 3
			}
		case "import":
			if i+1 < len(toks) && toks[i+1].str {
				out = append(out, toks[i+1].text)
				i++
				continue
			}
			if i+1 < len(toks) && (toks[i+1].text == "(" || toks[i+1].text == ".") {
				continue // import() and import.meta
			}
			for j := i + 1; j < len(toks) && j < i+256; j++ {
				if toks[j].str || toks[j].text == ";" || toks[j].text == "import" {
					break
				}
				if toks[j].text == "from" && j+1 < len(toks) && toks[j+1].str {
					out = append(out, toks[j+1].text)
					i = j + 1
					break
				}
			}
		case "export":
			j := i + 1
			if j < len(toks) && toks[j].text == "*" {
				j++
				if j+1 < len(toks) && toks[j].text == "as" {
					j += 2
				}
			} else if j < len(toks) && toks[j].text == "{" {
				for j < len(toks) && !(toks[j].text == "}" && !toks[j].str) {
					j++
				}
				j++
			} else {
				continue
			}
			if j+1 < len(toks) && toks[j].text == "from" && toks[j+1].str {
				out = append(out, toks[j+1].text)
				i = j + 1
			}
		}
	}
	return out
}

type jsTok struct {
	text string
	str  bool // a string literal (text is its value)
}

// jsTokens is a small JavaScript tokenizer: identifiers, string literals,
// and single punctuation characters.
func jsTokens(src []byte) []jsTok {
	var out []jsTok
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := bytes.Index(src[i+2:], []byte("*/"))
			if end < 0 {
				return out
			}
			i += end + 4
		case c == '\'' || c == '"':
			var b strings.Builder
			i++
			for i < len(src) && src[i] != c && src[i] != '\n' {
				if src[i] == '\\' && i+1 < len(src) {
					i++
				}
				b.WriteByte(src[i])
				i++
			}
			i++
			out = append(out, jsTok{text: b.String(), str: true})
		case c == '`':
			var b strings.Builder
			plain := true
			i++
			for i < len(src) && src[i] != '`' {
				if src[i] == '\\' && i+1 < len(src) {
					i++
				} else if src[i] == '$' && i+1 < len(src) && src[i+1] == '{' {
					plain = false
				}
				b.WriteByte(src[i])
				i++
			}
			i++
			if plain {
				out = append(out, jsTok{text: b.String(), str: true})
			} else {
				out = append(out, jsTok{text: "`"})
			}
		case c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
			start := i
			for i < len(src) && (src[i] == '_' || src[i] == '$' || (src[i] >= 'a' && src[i] <= 'z') || (src[i] >= 'A' && src[i] <= 'Z') || (src[i] >= '0' && src[i] <= '9')) {
				i++
			}
			out = append(out, jsTok{text: string(src[start:i])})
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		default:
			out = append(out, jsTok{text: string(c)})
			i++
		}
	}
	return out
}
