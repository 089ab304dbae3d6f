package profile

import (
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/coldstart-dev/coldstart/optimize/profile/internal/imagepath"
)

// core drives one profile: it resolves commands (PATH, links, "#!"
// chains, wrappers such as env and tini) and hands each program it starts to
// the analyzer of its kind. It owns what every analyzer shares: the image's
// FS, the file list in access order, the warnings and the bounds. The
// analyzers add to the profile only through its methods (use, record,
// warnf, takeModule) and start commands only through run.
//
// The ELF loader (elfLoader, in elf.go and ldso.go) follows the ELF
// interpreter and libraries of every program the core executes, and the
// libraries the language analyzers load at run time. The language analyzers
// sit behind the analyzer interface: shell (shell.go), Python (python.go),
// Node.js (node.go) and Java (java.go).
type core struct {
	ctx  context.Context
	fsys FS
	o    *options

	files    []string
	seen     map[string]bool
	full     bool
	warnings []string
	warnSeen map[string]bool
	dropped  int
	err      error // set when ctx is done; stops all work

	execSeen map[string]bool // programs already followed with the same argv, cwd and PATH
	modules  int             // Python and Node.js modules visited (WithMaxModules)
	modFull  bool

	elf       *elfLoader
	shell     *shellAnalyzer
	analyzers map[kind]analyzer
}

// An analyzer follows what one kind of program reads once the core has
// started it: a shell its script and the commands in it, an interpreter
// its modules, a JVM its runtime and class path. It keeps its own state
// across the processes of one profile.
type analyzer interface {
	// start follows the program that x started.
	start(x *execution)
	// finish adds, at the end of the profile, what only the whole run
	// tells (a summary warning).
	finish()
}

// execution is one program the core started, as its analyzer sees it.
type execution struct {
	proc *process // the ELF loader's view of the program, for dlopen
	file string   // the path it was executed by
	real string   // file with every link resolved
	argv []string // argv[0] names the program (after busybox's applet)
	env  map[string]string
	cwd  string
	fr   frame
}

func newCore(ctx context.Context, fsys FS, o *options) *core {
	c := &core{
		ctx:      ctx,
		fsys:     fsys,
		o:        o,
		seen:     make(map[string]bool),
		warnSeen: make(map[string]bool),
		execSeen: make(map[string]bool),
	}
	c.elf = newELFLoader(c)
	c.shell = &shellAnalyzer{c: c}
	c.analyzers = map[kind]analyzer{
		kindShell:  c.shell,
		kindPython: newPythonAnalyzer(c),
		kindNode:   &nodeAnalyzer{c: c, defines: map[string][]string{}},
		kindJava:   &javaAnalyzer{c: c},
		kindReader: &readerAnalyzer{c: c},
	}
	return c
}

// finish lets every analyzer add its summary, in a fixed order.
func (c *core) finish() {
	for _, k := range []kind{kindShell, kindPython, kindNode, kindJava, kindReader} {
		c.analyzers[k].finish()
	}
}

// takeModule counts one more Python or Node.js module against
// WithMaxModules; it reports false, with a warning the first time, when the
// cap is reached.
func (c *core) takeModule() bool {
	if c.modules >= c.o.maxModules {
		if !c.modFull {
			c.modFull = true
			c.warnf("module cap of %d reached: further imports are not followed (see WithMaxModules)", c.o.maxModules)
		}
		return false
	}
	c.modules++
	return true
}

// stopped reports whether the profile must end: the context is done.
func (c *core) stopped() bool {
	if c.err != nil {
		return true
	}
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return true
	}
	return false
}

// record appends name to the profile unless it is already there or the file
// cap is reached.
func (c *core) record(name string) {
	if c.seen[name] || c.stopped() {
		return
	}
	if len(c.files) >= c.o.maxFiles {
		if !c.full {
			c.full = true
			c.warnf("file cap of %d reached: the profile is truncated (see WithMaxFiles)", c.o.maxFiles)
		}
		return
	}
	c.seen[name] = true
	c.files = append(c.files, name)
	c.o.logger.Debug("profile: file", "path", name)
}

// recordAll records the links met on the way to a file, then the file.
func (c *core) recordAll(links []string, name string) {
	for _, l := range links {
		c.record(l)
	}
	c.record(name)
}

// warnf adds a warning once; after maxWarnings only a count is kept.
func (c *core) warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if c.warnSeen[msg] {
		return
	}
	c.warnSeen[msg] = true
	c.o.logger.Debug("profile: warning", "msg", msg)
	if len(c.warnings) >= maxWarnings {
		c.dropped++
		return
	}
	c.warnings = append(c.warnings, msg)
}

// profile returns what the profile found.
func (c *core) profile(source string) *Profile {
	files := c.files
	if files == nil {
		files = []string{}
	}
	return &Profile{Source: source, Files: files, Warnings: c.finishWarnings()}
}

func (c *core) finishWarnings() []string {
	out := c.warnings
	if c.dropped > 0 {
		out = append(out, fmt.Sprintf("%d more warnings not shown", c.dropped))
	}
	return out
}

// resolved is a path resolved inside the image: Real, the Links followed
// in order, and Info, the Lstat of Real.
type resolved = imagepath.Resolved

// resolve follows name (absolute) through symbolic links inside the image
// root, the way the kernel walks a path (see imagepath.Resolve).
func (c *core) resolve(name string) (resolved, error) {
	if c.stopped() {
		return resolved{}, c.err
	}
	return imagepath.Resolve(c.fsys, name)
}

// resolveFile resolves name and reports whether it is a regular file.
func (c *core) resolveFile(name string) (resolved, bool) {
	r, err := c.resolve(name)
	if err != nil || !r.Info.Mode().IsRegular() {
		return r, false
	}
	return r, true
}

// use records a file that the container reads if it exists: its links and the
// file itself. It reports whether the file exists.
func (c *core) use(name string) (resolved, bool) {
	r, ok := c.resolveFile(name)
	if ok {
		c.recordAll(r.Links, r.Real)
	}
	return r, ok
}

// isDir reports whether name resolves to a directory.
func (c *core) isDir(name string) (resolved, bool) {
	r, err := c.resolve(name)
	if err != nil || !r.Info.IsDir() {
		return r, false
	}
	return r, true
}

// readHead reads at most n bytes from the start of the regular file real.
func (c *core) readHead(real string, n int64) ([]byte, error) {
	f, err := c.fsys.Open(real)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, n))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// readText reads a script or source file up to the read cap. A file that is
// longer is cut with a warning.
func (c *core) readText(real string) ([]byte, bool) {
	b, err := c.readHead(real, c.o.maxRead+1)
	if err != nil {
		c.warnf("%s: %v", real, imagepath.Underlying(err))
		return nil, false
	}
	if int64(len(b)) > c.o.maxRead {
		c.warnf("%s: only the first %d bytes were read (see WithMaxReadBytes)", real, c.o.maxRead)
		b = b[:c.o.maxRead]
	}
	return b, true
}

// lookPath finds a command the way execvp does: a name with a slash is a path
// (relative to cwd); otherwise each PATH element is tried in order and the
// first executable regular file wins.
func (c *core) lookPath(name, pathVar, cwd string) (string, bool) {
	if name == "" {
		return "", false
	}
	if strings.Contains(name, "/") {
		p := cleanAbs(cwd, name)
		_, ok := c.resolveFile(p)
		return p, ok
	}
	for _, dir := range strings.Split(pathVar, ":") {
		if dir == "" {
			dir = "."
		}
		p := cleanAbs(cleanAbs(cwd, dir), name)
		r, ok := c.resolveFile(p)
		if ok && r.Info.Mode().Perm()&0o111 != 0 {
			return p, true
		}
		if c.stopped() {
			return "", false
		}
	}
	return "", false
}

// useTree records the regular files of a directory in name order, descending
// depth levels.
func (c *core) useTree(dir string, depth int) {
	r, ok := c.isDir(dir)
	if !ok || depth <= 0 {
		return
	}
	for _, l := range r.Links {
		c.record(l)
	}
	ents, err := c.fsys.ReadDir(r.Real)
	if err != nil {
		return
	}
	names := make([]string, 0, len(ents))
	isDir := map[string]bool{}
	for _, e := range ents {
		names = append(names, e.Name())
		isDir[e.Name()] = e.IsDir()
	}
	sort.Strings(names)
	for _, n := range names {
		if isDir[n] {
			c.useTree(path.Join(r.Real, n), depth-1)
		} else {
			c.use(path.Join(r.Real, n))
		}
	}
}
