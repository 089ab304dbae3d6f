package profile

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/coldstart-dev/coldstart/optimize/profile/internal/imagepath"
)

// walker holds the state of one profiling run: the files recorded so far in
// access order, the warnings, and caches shared by every process the
// entrypoint starts.
type walker struct {
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

	startDone bool
	ld        *loaderState

	elfCache map[string]elfResult
	modules  int // Python and Node.js modules visited
	modFull  bool
	stale    []string // Python sources whose bytecode is stale
	staleSet map[string]bool

	execSeen map[string]bool // programs already followed with the same argv, cwd and PATH
	commands int             // shell commands followed in the whole profile
}

type elfResult struct {
	info *elfInfo
	err  error
}

func newWalker(ctx context.Context, fsys FS, o *options) *walker {
	return &walker{
		ctx:      ctx,
		fsys:     fsys,
		o:        o,
		seen:     make(map[string]bool),
		warnSeen: make(map[string]bool),
		elfCache: make(map[string]elfResult),
		staleSet: make(map[string]bool),
		execSeen: make(map[string]bool),
	}
}

// stopped reports whether the walk must end: the context is done.
func (w *walker) stopped() bool {
	if w.err != nil {
		return true
	}
	if err := w.ctx.Err(); err != nil {
		w.err = err
		return true
	}
	return false
}

// record appends name to the profile unless it is already there or the file
// cap is reached.
func (w *walker) record(name string) {
	if w.seen[name] || w.stopped() {
		return
	}
	if len(w.files) >= w.o.maxFiles {
		if !w.full {
			w.full = true
			w.warnf("file cap of %d reached: the profile is truncated (see WithMaxFiles)", w.o.maxFiles)
		}
		return
	}
	w.seen[name] = true
	w.files = append(w.files, name)
	w.o.logger.Debug("profile: file", "path", name)
}

// recordAll records the links met on the way to a file, then the file.
func (w *walker) recordAll(links []string, name string) {
	for _, l := range links {
		w.record(l)
	}
	w.record(name)
}

// warnf adds a warning once; after maxWarnings only a count is kept.
func (w *walker) warnf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if w.warnSeen[msg] {
		return
	}
	w.warnSeen[msg] = true
	w.o.logger.Debug("profile: warning", "msg", msg)
	if len(w.warnings) >= maxWarnings {
		w.dropped++
		return
	}
	w.warnings = append(w.warnings, msg)
}

// profile returns what the walk found.
func (w *walker) profile(source string) *Profile {
	files := w.files
	if files == nil {
		files = []string{}
	}
	return &Profile{Source: source, Files: files, Warnings: w.finishWarnings()}
}

func (w *walker) finishWarnings() []string {
	out := w.warnings
	if w.dropped > 0 {
		out = append(out, fmt.Sprintf("%d more warnings not shown", w.dropped))
	}
	return out
}

// resolved is a path resolved inside the image: Real, the Links followed
// in order, and Info, the Lstat of Real.
type resolved = imagepath.Resolved

// resolve follows name (absolute) through symbolic links inside the image
// root, the way the kernel walks a path (see imagepath.Resolve).
func (w *walker) resolve(name string) (resolved, error) {
	if w.stopped() {
		return resolved{}, w.err
	}
	return imagepath.Resolve(w.fsys, name)
}

// resolveFile resolves name and reports whether it is a regular file.
func (w *walker) resolveFile(name string) (resolved, bool) {
	r, err := w.resolve(name)
	if err != nil || !r.Info.Mode().IsRegular() {
		return r, false
	}
	return r, true
}

// use records a file that the container reads if it exists: its links and the
// file itself. It reports whether the file exists.
func (w *walker) use(name string) (resolved, bool) {
	r, ok := w.resolveFile(name)
	if ok {
		w.recordAll(r.Links, r.Real)
	}
	return r, ok
}

// isDir reports whether name resolves to a directory.
func (w *walker) isDir(name string) (resolved, bool) {
	r, err := w.resolve(name)
	if err != nil || !r.Info.IsDir() {
		return r, false
	}
	return r, true
}

// readHead reads at most n bytes from the start of the regular file real.
func (w *walker) readHead(real string, n int64) ([]byte, error) {
	f, err := w.fsys.Open(real)
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
func (w *walker) readText(real string) ([]byte, bool) {
	b, err := w.readHead(real, w.o.maxRead+1)
	if err != nil {
		w.warnf("%s: %v", real, imagepath.Underlying(err))
		return nil, false
	}
	if int64(len(b)) > w.o.maxRead {
		w.warnf("%s: only the first %d bytes were read (see WithMaxReadBytes)", real, w.o.maxRead)
		b = b[:w.o.maxRead]
	}
	return b, true
}

// lookPath finds a command the way execvp does: a name with a slash is a path
// (relative to cwd); otherwise each PATH element is tried in order and the
// first executable regular file wins.
func (w *walker) lookPath(name, pathVar, cwd string) (string, bool) {
	if name == "" {
		return "", false
	}
	if strings.Contains(name, "/") {
		p := cleanAbs(cwd, name)
		_, ok := w.resolveFile(p)
		return p, ok
	}
	for _, dir := range strings.Split(pathVar, ":") {
		if dir == "" {
			dir = "."
		}
		p := cleanAbs(cleanAbs(cwd, dir), name)
		r, ok := w.resolveFile(p)
		if ok && r.Info.Mode().Perm()&0o111 != 0 {
			return p, true
		}
		if w.stopped() {
			return "", false
		}
	}
	return "", false
}
