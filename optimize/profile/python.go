package profile

import (
	"encoding/binary"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/coldstart-dev/coldstart/optimize/profile/internal/imagepath"
)

// maxImportDepth bounds the nesting of one import chain.
const maxImportDepth = 64

// pythonVersion returns "3.11" for "python3.11" and "" for other names.
func pythonVersion(name string) string {
	v, ok := strings.CutPrefix(name, "python")
	if !ok {
		return ""
	}
	major, minor, ok := strings.Cut(v, ".")
	if !ok || major == "" || minor == "" {
		return ""
	}
	if _, err := strconv.Atoi(major); err != nil {
		return ""
	}
	if _, err := strconv.Atoi(minor); err != nil {
		return ""
	}
	return v
}

// pyStartup lists the standard library modules CPython imports before it
// runs any user code, in the order it imports them: the codec machinery while
// it sets up the standard streams, then site and what site imports. Each is
// listed as the file CPython reads (the bytecode when it is fresh).
// pyFrozen are the standard modules CPython 3.11 and later build into the
// interpreter ("frozen") and, unless run with -X frozen_modules=off, never
// read from the file system.
var pyFrozen = map[string]bool{
	"importlib._bootstrap": true, "importlib._bootstrap_external": true, "zipimport": true,
	"abc": true, "codecs": true, "io": true, "_collections_abc": true, "_sitebuiltins": true,
	"genericpath": true, "ntpath": true, "posixpath": true, "os": true, "site": true, "stat": true,
	"importlib.util": true, "importlib.machinery": true, "runpy": true,
}

var pyStartup = []string{
	"encodings/__init__", "codecs", "encodings/aliases", "encodings/utf_8", "io", "abc",
	"site", "os", "stat", "_collections_abc", "posixpath", "genericpath", "_sitebuiltins",
}

// pythonAnalyzer follows CPython programs (python, python3, pythonX.Y):
// the standard library the interpreter reads at start, the site directories'
// .pth files, then the import graph of the main script or module. Its own
// state across the interpreters of a profile is the list of modules whose
// bytecode is stale, reported once at the end.
type pythonAnalyzer struct {
	c        *core
	stale    []string // Python sources whose bytecode is stale
	staleSet map[string]bool
}

func newPythonAnalyzer(c *core) *pythonAnalyzer {
	return &pythonAnalyzer{c: c, staleSet: map[string]bool{}}
}

// finish warns about the stale bytecode found.
func (py *pythonAnalyzer) finish() {
	if len(py.stale) > 0 {
		py.c.warnf("python bytecode is stale for %d modules (e.g. %s): python will recompile at every start", len(py.stale), py.stale[0])
	}
}

// pyRun is one Python interpreter being profiled.
type pyRun struct {
	py      *pythonAnalyzer
	c       *core
	p       *process
	tag     string // "cpython-311"
	opt     string // "", ".opt-1", ".opt-2"
	triplet string
	frozen  bool // the interpreter has the pyFrozen modules built in
	path    []string
	visited map[string]*pyMod
}

// pyMod is a module found on sys.path.
type pyMod struct {
	file  string   // "" for a namespace package
	isPkg bool     // a package: submodules are looked up in dirs
	dirs  []string // __path__ of a package
	// parsed is the module's source as read when it was imported, nil for
	// an extension module, bytecode without source or a frozen module
	// that could not be read; pkg the package its relative imports name.
	parsed *pySource
	pkg    string
}

// setSource keeps the parsed source of the module named name.
func (m *pyMod) setSource(name string, src []byte) {
	parsed := parsePySource(src)
	m.parsed = &parsed
	m.pkg = name
	if !m.isPkg {
		m.pkg = ""
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			m.pkg = name[:i]
		}
	}
}

// start follows CPython's start: the standard library it reads during
// initialisation, site-packages' .pth files and sitecustomize, then the main
// script or module and everything it imports.
func (py *pythonAnalyzer) start(x *execution) {
	c, p, file, real, argv, env, cwd := py.c, x.proc, x.file, x.real, x.argv, x.env, x.cwd
	var (
		isolated, ignoreEnv, noSite, noUserSite, safePath bool
		frozenOff                                         bool
		optLevel                                          int
		mode, target                                      string // "script", "module", "command"
	)
	args := argv[1:]
opts:
	for len(args) > 0 {
		a := args[0]
		if a == "-" || !strings.HasPrefix(a, "-") {
			break
		}
		args = args[1:]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "--") {
			if a == "--check-hash-based-pycs" && len(args) > 0 {
				args = args[1:]
			}
			continue
		}
		for k := 1; k < len(a); k++ {
			switch a[k] {
			case 'I':
				isolated = true
			case 'E':
				ignoreEnv = true
			case 'S':
				noSite = true
			case 's':
				noUserSite = true
			case 'P':
				safePath = true
			case 'O':
				optLevel++
			case 'c', 'm':
				mode = map[byte]string{'c': "command", 'm': "module"}[a[k]]
				if k+1 < len(a) {
					target = a[k+1:]
				} else if len(args) > 0 {
					target, args = args[0], args[1:]
				}
				break opts
			case 'W', 'X':
				val := a[k+1:]
				if k+1 == len(a) && len(args) > 0 {
					val, args = args[0], args[1:]
				}
				if a[k] == 'X' && strings.HasPrefix(val, "frozen_modules=") {
					frozenOff = val != "frozen_modules=on"
				}
				k = len(a)
			}
		}
	}
	if mode == "" && len(args) > 0 && args[0] != "-" {
		mode, target = "script", args[0]
	}
	if isolated {
		ignoreEnv, noUserSite, safePath = true, true, true
	}
	if !ignoreEnv {
		if env["PYTHONNOUSERSITE"] != "" {
			noUserSite = true
		}
		if env["PYTHONSAFEPATH"] != "" {
			safePath = true
		}
		if n, err := strconv.Atoi(env["PYTHONOPTIMIZE"]); err == nil && n > optLevel {
			optLevel = n
		} else if err != nil && env["PYTHONOPTIMIZE"] != "" && optLevel == 0 {
			optLevel = 1
		}
	}

	// The standard library: PYTHONHOME, else the first ancestor directory of
	// the real executable holding lib/pythonX.Y/os.py.
	ver := pythonVersion(path.Base(real))
	if ver == "" {
		ver = pythonVersion(path.Base(file))
	}
	var homes []string
	if h := env["PYTHONHOME"]; h != "" && !ignoreEnv {
		h, _, _ = strings.Cut(h, ":")
		homes = append(homes, cleanAbs(cwd, h))
	}
	// A virtual environment: pyvenv.cfg next to the executable or one level
	// up; its "home" names the base interpreter's directory.
	var venv string
	includeSystem := true
	for _, dir := range []string{path.Dir(file), path.Dir(path.Dir(file))} {
		r, ok := c.use(path.Join(dir, "pyvenv.cfg"))
		if !ok {
			continue
		}
		venv = dir
		includeSystem = false
		if b, ok := c.readText(r.Real); ok {
			for _, line := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(line, "=")
				if !ok {
					continue
				}
				k, v = strings.TrimSpace(k), strings.TrimSpace(v)
				switch k {
				case "home":
					if path.IsAbs(v) {
						homes = append(homes, path.Dir(path.Clean(v)))
					}
				case "include-system-site-packages":
					includeSystem = strings.EqualFold(v, "true")
				case "version", "version_info":
					if ver == "" {
						parts := strings.SplitN(v, ".", 3)
						if len(parts) >= 2 {
							ver = parts[0] + "." + parts[1]
						}
					}
				}
			}
		}
		break
	}
	for d := path.Dir(real); ; d = path.Dir(d) {
		homes = append(homes, d)
		if d == "/" {
			break
		}
	}
	homes = append(homes, "/usr/local", "/usr")
	prefix, stdlib := "", ""
	for _, h := range homes {
		if ver == "" {
			ver = py.findPythonVersion(path.Join(h, "lib"))
		}
		if ver == "" {
			continue
		}
		cand := path.Join(h, "lib", "python"+ver)
		if _, ok := c.resolveFile(path.Join(cand, "os.py")); ok {
			prefix, stdlib = h, cand
			break
		}
		if _, ok := c.resolveFile(path.Join(cand, "__pycache__", "os.cpython-"+strings.ReplaceAll(ver, ".", "")+".pyc")); ok {
			prefix, stdlib = h, cand
			break
		}
	}
	if stdlib == "" {
		c.warnf("%s: the Python standard library was not found in the image", real)
		return
	}
	pr := &pyRun{
		py:      py,
		c:       c,
		p:       p,
		tag:     "cpython-" + strings.ReplaceAll(ver, ".", ""),
		triplet: p.arch.triplet,
		visited: map[string]*pyMod{},
	}
	if optLevel > 0 {
		pr.opt = ".opt-" + strconv.Itoa(min(optLevel, 2))
	}
	if v := env["PYTHON_FROZEN_MODULES"]; v != "" && !ignoreEnv && !frozenOff {
		frozenOff = v != "on"
	}
	if major, minor, ok := strings.Cut(ver, "."); ok && !frozenOff {
		mj, _ := strconv.Atoi(major)
		mn, _ := strconv.Atoi(minor)
		pr.frozen = mj > 3 || (mj == 3 && mn >= 11)
	}
	c.o.logger.Debug("profile: python", "stdlib", stdlib, "venv", venv)

	// sys.path before the main module's directory is known.
	if pp := env["PYTHONPATH"]; pp != "" && !ignoreEnv {
		for _, d := range strings.Split(pp, ":") {
			if d != "" {
				pr.path = append(pr.path, cleanAbs(cwd, d))
			}
		}
	}
	pr.path = append(pr.path, stdlib, path.Join(stdlib, "lib-dynload"))

	for _, m := range pyStartup {
		if noSite && (m == "site" || m == "_sitebuiltins") {
			continue
		}
		name := strings.TrimSuffix(strings.ReplaceAll(m, "/", "."), ".__init__")
		f := path.Join(stdlib, m+".py")
		r, ok := c.resolveFile(f)
		if !ok {
			continue
		}
		if !pr.frozen || !pyFrozen[name] {
			pr.source(f)
		}
		mod := &pyMod{file: f}
		if strings.HasSuffix(m, "__init__") {
			mod.isPkg, mod.dirs = true, []string{path.Dir(f)}
		}
		if src, ok := c.readText(r.Real); ok {
			mod.setSource(name, src) // for the functions main may call
		}
		pr.visited[name] = mod
	}

	if !noSite {
		var sites []string
		if !noUserSite && venv == "" {
			sites = append(sites, path.Join(env["HOME"], ".local/lib/python"+ver, "site-packages"))
		}
		if venv != "" {
			sites = append(sites, path.Join(venv, "lib/python"+ver, "site-packages"))
		}
		if venv == "" || includeSystem {
			if _, debian := c.isDir("/usr/lib/python3/dist-packages"); debian && prefix == "/usr" {
				sites = append(sites,
					"/usr/local/lib/python"+ver+"/dist-packages",
					"/usr/lib/python3/dist-packages",
					"/usr/lib/python"+ver+"/dist-packages")
			} else {
				sites = append(sites, path.Join(prefix, "lib/python"+ver, "site-packages"))
			}
		}
		var pthImports [][]pyStmt
		for _, s := range sites {
			if _, ok := c.isDir(s); !ok {
				continue
			}
			pr.path = append(pr.path, s)
			pthImports = append(pthImports, pr.pthFiles(s)...)
		}
		for _, stmts := range pthImports {
			pr.runStmts(stmts, "", 1)
		}
		pr.importModule("sitecustomize", 1)
		if !noUserSite && venv == "" {
			pr.importModule("usercustomize", 1)
		}
	}

	switch mode {
	case "script":
		f := cleanAbs(cwd, target)
		r, err := c.resolve(f)
		if err != nil {
			c.warnf("%s: Python script %s: %v", real, target, imagepath.Underlying(err))
			return
		}
		if r.Info.IsDir() {
			// A directory with __main__.py runs like a script.
			if !safePath {
				pr.path = append([]string{r.Real}, pr.path...)
			}
			pr.importModule("__main__", 1)
			return
		}
		if !r.Info.Mode().IsRegular() {
			c.warnf("%s: Python script %s is %s", real, target, imagepath.Describe(r.Info.Mode()))
			return
		}
		c.recordAll(r.Links, r.Real)
		if !safePath {
			pr.path = append([]string{path.Dir(r.Real)}, pr.path...)
		}
		if src, ok := c.readText(r.Real); ok {
			pr.visited["__main__"] = &pyMod{file: r.Real}
			pr.runMain(parsePySource(src), "")
		}
	case "module":
		pr.importModule("runpy", 1)
		if !safePath {
			pr.path = append([]string{cwd}, pr.path...)
		}
		m := pr.importModule(target, 1)
		if m != nil && m.isPkg {
			m = pr.importModule(target+".__main__", 1)
		} else if m == nil {
			c.warnf("%s: Python module %s not found on sys.path", real, target)
		}
		if m != nil && m.parsed != nil {
			pr.callMain(*m.parsed, m.pkg)
		}
	case "command":
		if !safePath {
			pr.path = append([]string{cwd}, pr.path...)
		}
		pr.runMain(parsePySource([]byte(target)), "")
	}
}

// findPythonVersion picks the highest pythonX.Y directory under lib that
// holds os.py.
func (py *pythonAnalyzer) findPythonVersion(lib string) string {
	c := py.c
	r, ok := c.isDir(lib)
	if !ok {
		return ""
	}
	ents, err := c.fsys.ReadDir(r.Real)
	if err != nil {
		return ""
	}
	type v struct {
		s            string
		major, minor int
	}
	var vs []v
	for _, e := range ents {
		s := pythonVersion(e.Name())
		if s == "" {
			continue
		}
		if _, ok := c.resolveFile(path.Join(r.Real, e.Name(), "os.py")); !ok {
			continue
		}
		a, b, _ := strings.Cut(s, ".")
		ma, _ := strconv.Atoi(a)
		mi, _ := strconv.Atoi(b)
		vs = append(vs, v{s, ma, mi})
	}
	if len(vs) == 0 {
		return ""
	}
	sort.Slice(vs, func(i, j int) bool {
		if vs[i].major != vs[j].major {
			return vs[i].major > vs[j].major
		}
		return vs[i].minor > vs[j].minor
	})
	return vs[0].s
}

// pthFiles records the .pth files of a site directory in the order site.py
// reads them (sorted by name), adds their directories to sys.path and
// returns their "import" lines.
func (pr *pyRun) pthFiles(site string) [][]pyStmt {
	c := pr.c
	r, _ := c.isDir(site)
	ents, err := c.fsys.ReadDir(r.Real)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".pth") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out [][]pyStmt
	for _, n := range names {
		fr, ok := c.use(path.Join(site, n))
		if !ok {
			continue
		}
		b, ok := c.readText(fr.Real)
		if !ok {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimRight(line, " \t\r")
			switch {
			case line == "" || strings.HasPrefix(line, "#"):
			case strings.HasPrefix(line, "import ") || strings.HasPrefix(line, "import\t"):
				out = append(out, parsePyImports([]byte(line)))
			default:
				d := cleanAbs(site, line)
				if _, ok := c.isDir(d); ok {
					pr.path = append(pr.path, d)
				}
			}
		}
	}
	return out
}

// runStmts runs the import statements of one module in order. The imports
// of an "except" block are fallbacks: they run only when an import of the
// matching "try" block failed.
func (pr *pyRun) runStmts(stmts []pyStmt, pkg string, depth int) {
	pr.run(stmts, pkg, depth, func(st pyStmt) bool { return !st.deferred && !st.mainOnly })
}

// run runs the import statements of stmts that sel selects.
func (pr *pyRun) run(stmts []pyStmt, pkg string, depth int, sel func(pyStmt) bool) {
	failed := map[int]bool{}
	for _, st := range stmts {
		if !sel(st) {
			continue
		}
		if st.fallback > 0 && !failed[st.fallback] {
			continue
		}
		if !pr.handleImport(st, pkg, depth) && st.try > 0 {
			failed[st.try] = true
		}
	}
}

// pyBuiltins are modules compiled into common CPython builds: they have no
// file, and importing them succeeds.
var pyBuiltins = map[string]bool{
	"sys": true, "builtins": true, "marshal": true, "posix": true, "time": true, "gc": true,
	"itertools": true, "errno": true, "pwd": true, "atexit": true, "faulthandler": true,
	"math": true, "cmath": true, "array": true, "select": true, "fcntl": true, "grp": true,
	"binascii": true, "zlib": true, "unicodedata": true, "resource": true, "syslog": true,
	"mmap": true, "termios": true, "xxsubtype": true, "zipimport": true,
}

// handleImport imports what one import statement names, relative to the
// package pkg of the importing module, and reports whether the import would
// succeed. A module without a file whose name is private ("_sha512") or a
// known built-in counts as built into the interpreter.
func (pr *pyRun) handleImport(st pyStmt, pkg string, depth int) bool {
	name := absModule(st, pkg)
	if name == "" {
		return false
	}
	m := pr.importModule(name, depth)
	if m == nil {
		top, _, _ := strings.Cut(name, ".")
		return pyBuiltins[top] || (strings.HasPrefix(top, "_") && top == name)
	}
	if st.from && m.isPkg {
		for _, n := range st.names {
			if n != "*" {
				pr.importModule(name+"."+n, depth)
			}
		}
	}
	return true
}

// absModule returns the absolute name of the module an import statement in
// package pkg names, or "" for a relative import outside a package.
func absModule(st pyStmt, pkg string) string {
	name := st.module
	if st.level == 0 {
		return name
	}
	base := pkg
	for k := 1; k < st.level; k++ {
		i := strings.LastIndexByte(base, '.')
		if i < 0 {
			base = ""
			break
		}
		base = base[:i]
	}
	if base == "" {
		return "" // a relative import outside a package
	}
	if name != "" {
		return base + "." + name
	}
	return base
}

// runMain runs the imports of the main module (src, in package pkg),
// including its "if __name__ == '__main__'" block, and then the start of
// its program: the imports inside its own functions, and those inside the
// functions and classes of the modules it imports itself that its code
// names, directly or through other definitions of the same module (main
// calls argparse.ArgumentParser, whose default formatter_class is
// HelpFormatter, whose __init__ imports shutil). Imports in the functions
// of modules further down are not followed: whether those functions run at
// start cannot be told without running them.
func (pr *pyRun) runMain(src pySource, pkg string) {
	pr.run(src.stmts, pkg, 1, func(st pyStmt) bool { return !st.deferred })
	pr.callMain(src, pkg)
}

// callMain follows the deferred imports of a main module whose module-level
// imports have run: see runMain.
func (pr *pyRun) callMain(main pySource, pkg string) {
	stmts := main.stmts
	pr.run(stmts, pkg, 1, func(st pyStmt) bool { return st.deferred })
	var direct []string
	seen := map[string]bool{}
	add := func(n string) {
		if m := pr.visited[n]; m != nil && m.parsed != nil && !seen[n] {
			seen[n] = true
			direct = append(direct, n)
		}
	}
	for _, st := range stmts {
		name := absModule(st, pkg)
		if name == "" {
			continue
		}
		add(name)
		if st.from {
			for _, n := range st.names {
				if n != "*" {
					add(name + "." + n)
				}
			}
		}
	}
	for _, name := range direct {
		if pr.c.stopped() {
			return
		}
		m := pr.visited[name]
		called := m.parsed.reached(main.idents)
		pr.run(m.parsed.stmts, m.pkg, 2, func(st pyStmt) bool { return st.deferred && called[st.owner] })
	}
}

// importModule imports a dotted module name, parents first, and follows its
// imports depth-first in source order, as the interpreter executes them.
func (pr *pyRun) importModule(fullname string, depth int) *pyMod {
	c := pr.c
	if m, ok := pr.visited[fullname]; ok {
		return m
	}
	if c.stopped() {
		return nil
	}
	if depth > maxImportDepth {
		c.warnf("python imports nested deeper than %d levels are not followed", maxImportDepth)
		return nil
	}
	search := pr.path
	short := fullname
	if i := strings.LastIndexByte(fullname, '.'); i >= 0 {
		parent := pr.importModule(fullname[:i], depth)
		if parent == nil || !parent.isPkg {
			pr.visited[fullname] = nil
			return nil
		}
		search, short = parent.dirs, fullname[i+1:]
	}
	m := pr.find(short, search)
	pr.visited[fullname] = m
	if m == nil || m.file == "" {
		return m
	}
	if !c.takeModule() {
		return m
	}
	defer pr.implicit(fullname, depth)
	switch {
	case strings.HasSuffix(m.file, ".so"):
		c.elf.loadLibrary(pr.p, m.file)
	case strings.HasSuffix(m.file, ".pyc"):
		if !pr.frozen || !pyFrozen[fullname] {
			c.use(m.file)
		}
	default:
		// A frozen module is not read, but what it imports is.
		if !pr.frozen || !pyFrozen[fullname] {
			pr.source(m.file)
		}
		r, ok := c.resolveFile(m.file)
		if !ok {
			return m
		}
		src, ok := c.readText(r.Real)
		if !ok {
			return m
		}
		m.setSource(fullname, src)
		pr.runStmts(m.parsed.stmts, m.pkg, depth+1)
	}
	return m
}

// pyImplicit lists what the standard library's C code imports by name, which
// no import statement shows: the initialisation of extension modules
// (CPython 3.11), and the idna codec, which socket's name lookups
// (getaddrinfo, getfqdn, ...) encode host names with through the codec
// registry.
var pyImplicit = map[string][]string{
	"_decimal":     {"numbers", "collections"},
	"_pickle":      {"copyreg", "_compat_pickle", "functools"},
	"_elementtree": {"copy", "xml.etree.ElementPath", "pyexpat"},
	"_asyncio":     {"asyncio"},
	"socket":       {"encodings.idna"},
}

// pyOpenSSL are the extension modules that initialise OpenSSL when loaded,
// which reads its configuration file.
var pyOpenSSL = map[string]bool{"_ssl": true, "_hashlib": true}

// implicit follows what module name's C code imports or reads once the
// module is loaded (pyImplicit, pyOpenSSL).
func (pr *pyRun) implicit(name string, depth int) {
	if pyOpenSSL[name] {
		pr.c.useOpenSSLConf("", pr.p.env, pr.p.cwd)
	}
	for _, dep := range pyImplicit[name] {
		pr.importModule(dep, depth+1)
	}
}

// find looks a module up in the directories of search, the way CPython's
// path finder does: a package directory with __init__ first, then an
// extension module, source, bytecode; a directory without __init__ is a
// namespace package portion if nothing else matches.
func (pr *pyRun) find(name string, search []string) *pyMod {
	c := pr.c
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return nil
	}
	suffixes := []string{}
	if pr.triplet != "" {
		suffixes = append(suffixes, "."+pr.tag+"-"+pr.triplet+".so")
	}
	suffixes = append(suffixes, ".abi3.so", ".so", ".py", ".pyc")
	var ns []string
	for _, dir := range search {
		base := path.Join(dir, name)
		if _, ok := c.isDir(base); ok {
			for _, s := range suffixes {
				init := path.Join(base, "__init__"+s)
				if _, ok := c.resolveFile(init); ok {
					return &pyMod{file: init, isPkg: true, dirs: []string{base}}
				}
			}
			ns = append(ns, base)
		}
		for _, s := range suffixes {
			if _, ok := c.resolveFile(base + s); ok {
				return &pyMod{file: base + s}
			}
		}
		if c.stopped() {
			return nil
		}
	}
	if len(ns) > 0 {
		return &pyMod{isPkg: true, dirs: ns}
	}
	return nil
}

// source records a Python source module the way the interpreter reads it:
// the cached bytecode in __pycache__ when its header matches the source's
// mtime and size, otherwise (stale or missing bytecode) the source itself.
func (pr *pyRun) source(file string) {
	c := pr.c
	r, ok := c.resolveFile(file)
	if !ok {
		return
	}
	pyc := path.Join(path.Dir(file), "__pycache__", strings.TrimSuffix(path.Base(file), ".py")+"."+pr.tag+pr.opt+".pyc")
	pr2, ok := c.resolveFile(pyc)
	if !ok {
		c.recordAll(r.Links, r.Real)
		return
	}
	c.recordAll(pr2.Links, pr2.Real)
	head, err := c.readHead(pr2.Real, 16)
	if err == nil && pycFresh(head, r.Info.ModTime().Unix(), r.Info.Size()) {
		return
	}
	if !pr.py.staleSet[r.Real] {
		pr.py.staleSet[r.Real] = true
		pr.py.stale = append(pr.py.stale, r.Real)
	}
	c.recordAll(r.Links, r.Real)
}

// pycFresh checks a .pyc header (PEP 552): magic, flags, then for
// timestamp-based files the source mtime and size, both as little-endian
// 32-bit values. Hash-based files cannot be checked without the source's
// SipHash and are taken as fresh.
func pycFresh(h []byte, mtime, size int64) bool {
	if len(h) < 16 || h[2] != '\r' || h[3] != '\n' {
		return false
	}
	flags := binary.LittleEndian.Uint32(h[4:])
	switch {
	case flags == 0:
		return binary.LittleEndian.Uint32(h[8:]) == uint32(mtime) &&
			binary.LittleEndian.Uint32(h[12:]) == uint32(size)
	case flags&^3 == 0:
		return true
	}
	return false
}

// pyStmt is one import statement.
type pyStmt struct {
	from     bool
	module   string   // dotted name, "" in "from . import x"
	level    int      // leading dots
	names    []string // the names of "from m import a, b"
	try      int      // > 0: in the body of the try block with this number
	fallback int      // > 0: in an except block of the try with this number
	deferred bool     // in a function body: runs when the function is called
	mainOnly bool     // in an "if __name__ == '__main__'" block
	owner    string   // the module-level def or class the statement is in
}

// pySource is what the profiler reads from one module's source.
type pySource struct {
	stmts []pyStmt
	// bodies holds, for each module-level def and class, the identifiers
	// its lines name.
	bodies map[string]map[string]bool
	idents map[string]bool // every identifier of the module
}

// reached returns the module-level definitions of s that names reach: the
// ones named there, and the ones their bodies name, transitively.
func (s pySource) reached(names map[string]bool) map[string]bool {
	out := map[string]bool{}
	var todo []string
	for n := range names {
		if s.bodies[n] != nil {
			out[n] = true
			todo = append(todo, n)
		}
	}
	for len(todo) > 0 {
		n := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		for id := range s.bodies[n] {
			if s.bodies[id] != nil && !out[id] {
				out[id] = true
				todo = append(todo, id)
			}
		}
	}
	return out
}

// pyIdent matches a Python identifier (ASCII; others never name a module-
// level definition the profiler needs).
var pyIdent = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)

// parsePyImports finds the import statements a module executes when it is
// imported: at module level and in class bodies, if/try/except blocks; not
// inside "if TYPE_CHECKING:" blocks. Imports inside function bodies are
// returned marked deferred: they run only when the function is called.
// Statements in try and except blocks are numbered so that the fallbacks
// can be skipped.
func parsePyImports(src []byte) []pyStmt {
	return parsePySource(src).stmts
}

// parsePySource parses a module's import statements (see parsePyImports)
// and which identifiers each module-level definition names.
func parsePySource(src []byte) pySource {
	p := &pyParser{lastTry: map[int]int{}}
	out := pySource{bodies: map[string]map[string]bool{}, idents: map[string]bool{}}
	owner := ""
	for _, ll := range pyLogicalLines(src) {
		for len(p.stack) > 0 && ll.indent <= p.stack[len(p.stack)-1].indent {
			p.stack = p.stack[:len(p.stack)-1]
		}
		ids := pyIdent.FindAllString(ll.text, -1)
		if ll.indent == 0 {
			owner = ""
			if len(ids) >= 2 && (ids[0] == "def" || ids[0] == "class") {
				owner = ids[1]
			} else if len(ids) >= 3 && ids[0] == "async" && ids[1] == "def" {
				owner = ids[2]
			}
			if owner != "" && out.bodies[owner] == nil {
				out.bodies[owner] = map[string]bool{}
			}
		}
		for _, id := range ids {
			out.idents[id] = true
			if owner != "" {
				out.bodies[owner][id] = true
			}
		}
		skipped := false
		ctx := pyStmt{owner: owner}
		for i := len(p.stack) - 1; i >= 0; i-- {
			switch b := p.stack[i]; b.kind {
			case 's':
				skipped = true
			case 'm':
				ctx.mainOnly = true
			case 'd':
				ctx.deferred = true
			case 't':
				if ctx.try == 0 && ctx.fallback == 0 {
					ctx.try = b.id
				}
			case 'e':
				if ctx.try == 0 && ctx.fallback == 0 {
					ctx.fallback = b.id
				}
			}
		}
		if !skipped {
			p.statements(ll.indent, ll.text, ctx)
		}
	}
	out.stmts = p.out
	return out
}

type pyBlock struct {
	indent int
	kind   byte // 's' skipped body, 'm' main guard, 'd' function body, 't' try body, 'e' except body
	id     int
}

type pyParser struct {
	out     []pyStmt
	stack   []pyBlock
	lastTry map[int]int // indent -> number of the last try at that indent
	tries   int
}

// statements parses the simple statements of one logical line; ctx carries
// the try/except numbers of the enclosing block. A block opener pushes the
// block its body belongs to, and a body on the same line is parsed in it.
func (p *pyParser) statements(indent int, text string, ctx pyStmt) {
	for _, s := range strings.Split(text, ";") {
		s = strings.TrimSpace(s)
		first, rest, _ := strings.Cut(s, " ")
		switch {
		case first == "def" || first == "async":
			p.stack = append(p.stack, pyBlock{indent, 'd', 0})
			if _, body, ok := strings.Cut(rest, ":"); ok && first == "def" {
				ctx.deferred = true
				p.statements(indent, body, ctx)
			}
			return
		case first == "try:":
			p.tries++
			p.lastTry[indent] = p.tries
			p.stack = append(p.stack, pyBlock{indent, 't', p.tries})
			p.statements(indent, rest, pyStmt{try: p.tries})
			return
		case first == "except" || first == "except:" || strings.HasPrefix(first, "except("):
			id := p.lastTry[indent]
			p.stack = append(p.stack, pyBlock{indent, 'e', id})
			_, body, _ := strings.Cut(s, ":")
			p.statements(indent, body, pyStmt{fallback: id})
			return
		case first == "else:" || first == "finally:":
			p.statements(indent, rest, ctx)
			return
		case first == "if":
			cond, body, ok := strings.Cut(rest, ":")
			cond = strings.TrimSpace(cond)
			if cond == "TYPE_CHECKING" || cond == "typing.TYPE_CHECKING" || cond == "t.TYPE_CHECKING" {
				p.stack = append(p.stack, pyBlock{indent, 's', 0})
				return
			}
			// String literals read as "": this is __name__ == "__main__"
			// (or a comparison with another string, equally rare).
			if strings.ReplaceAll(cond, " ", "") == `__name__==""` || strings.ReplaceAll(cond, " ", "") == `""==__name__` {
				p.stack = append(p.stack, pyBlock{indent, 'm', 0})
				ctx.mainOnly = true
			}
			if ok {
				p.statements(indent, body, ctx)
			}
			return
		case first == "elif" || first == "with" || first == "for" || first == "while" || first == "class":
			if _, body, ok := strings.Cut(rest, ":"); ok {
				p.statements(indent, body, ctx)
			}
			return
		case first == "import":
			for _, part := range strings.Split(rest, ",") {
				f := strings.Fields(part)
				if len(f) > 0 && validDotted(f[0]) {
					st := ctx
					st.module = f[0]
					p.out = append(p.out, st)
				}
			}
		case first == "from":
			mod, names, ok := strings.Cut(rest, " import ")
			if !ok {
				continue
			}
			mod = strings.TrimSpace(mod)
			level := len(mod) - len(strings.TrimLeft(mod, "."))
			mod = strings.TrimSpace(mod[level:])
			if mod != "" && !validDotted(mod) {
				continue
			}
			st := ctx
			st.from, st.module, st.level = true, mod, level
			names = strings.NewReplacer("(", " ", ")", " ").Replace(names)
			for _, part := range strings.Split(names, ",") {
				if f := strings.Fields(part); len(f) > 0 {
					st.names = append(st.names, f[0])
				}
			}
			p.out = append(p.out, st)
		}
	}
}

func validDotted(s string) bool {
	if s == "" {
		return false
	}
	for _, p := range strings.Split(s, ".") {
		if p == "" {
			return false
		}
		for i, c := range p {
			if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c > 127 || (i > 0 && c >= '0' && c <= '9') {
				continue
			}
			return false
		}
	}
	return true
}

type pyLine struct {
	indent int
	text   string
}

// pyLogicalLines joins physical lines into logical ones (brackets and
// backslash continuations), drops comments, and replaces every string
// literal by "" so that text inside strings is never mistaken for code.
func pyLogicalLines(src []byte) []pyLine {
	var out []pyLine
	var b strings.Builder
	indent, depth := 0, 0
	atStart := true
	i := 0
	emit := func() {
		if t := strings.TrimSpace(b.String()); t != "" {
			out = append(out, pyLine{indent: indent, text: t})
		}
		b.Reset()
		atStart = true
	}
	for i < len(src) {
		if atStart {
			col := 0
			for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\f') {
				if src[i] == '\t' {
					col = (col/8 + 1) * 8
				} else if src[i] == ' ' {
					col++
				}
				i++
			}
			indent = col
			atStart = false
			continue
		}
		c := src[i]
		switch {
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '\\' && i+1 < len(src) && src[i+1] == '\n':
			i += 2
			b.WriteByte(' ')
		case c == '\\' && i+2 < len(src) && src[i+1] == '\r' && src[i+2] == '\n':
			i += 3
			b.WriteByte(' ')
		case c == '\'' || c == '"':
			i = skipPyString(src, i)
			b.WriteString(`""`)
		case c == '(' || c == '[' || c == '{':
			depth++
			b.WriteByte(c)
			i++
		case c == ')' || c == ']' || c == '}':
			if depth > 0 {
				depth--
			}
			b.WriteByte(c)
			i++
		case c == '\n':
			i++
			if depth > 0 {
				b.WriteByte(' ')
				continue
			}
			emit()
		case c == '\r':
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	emit()
	return out
}

// skipPyString returns the index after the string literal starting at i.
func skipPyString(src []byte, i int) int {
	q := src[i]
	triple := i+2 < len(src) && src[i+1] == q && src[i+2] == q
	if triple {
		i += 3
		for i < len(src) {
			switch {
			case src[i] == '\\':
				i += 2
			case src[i] == q && i+2 < len(src) && src[i+1] == q && src[i+2] == q:
				return i + 3
			default:
				i++
			}
		}
		return len(src)
	}
	i++
	for i < len(src) {
		switch src[i] {
		case '\\':
			i += 2
		case q:
			return i + 1
		case '\n':
			return i
		default:
			i++
		}
	}
	return len(src)
}
