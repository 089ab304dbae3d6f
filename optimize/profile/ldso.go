package profile

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"path"
	"sort"
	"strings"

	"github.com/coldstart-dev/coldstart/optimize/profile/internal/elfhdr"
)

// libcKind tells which dynamic loader runs a program.
type libcKind int

const (
	libcGlibc libcKind = iota
	libcMusl
)

// loadedObj is one object in a load: the program or a library.
type loadedObj struct {
	opened string // the path it was opened by
	real   string
	info   *elfInfo
	parent *loadedObj
}

// process is the loader context of one exec'ed program.
type process struct {
	libc     libcKind
	muslArch string
	main     *elfInfo
	arch     machineInfo
	env      map[string]string
	cwd      string
	names    map[string]bool // DT_NEEDED names and sonames already loaded
	libs     []string        // real paths of the libraries loaded, in load order
}

const (
	ldCachePath   = "/etc/ld.so.cache"
	ldPreloadPath = "/etc/ld.so.preload"
	ldConfPath    = "/etc/ld.so.conf"
	maxConfFiles  = 256
	maxCacheBytes = 16 << 20
)

// loadProgram walks what exec of an ELF program maps: its interpreter, the
// loader's own files, and its DT_NEEDED libraries breadth-first in load
// order. It returns the process context for libraries loaded later with
// dlopen (Python extensions, libjvm.so).
func (l *elfLoader) loadProgram(file, real string, info *elfInfo, env map[string]string, cwd string) *process {
	p := &process{main: info, arch: archOf(info), env: env, cwd: cwd}
	if info.Interp != "" {
		ip := cleanAbs(cwd, info.Interp)
		if r, ok := l.c.use(ip); !ok {
			l.c.warnf("%s: ELF interpreter %s not found in the image", file, info.Interp)
		} else if strings.HasPrefix(path.Base(r.Real), "ld-musl-") || strings.HasPrefix(path.Base(info.Interp), "ld-musl-") {
			p.libc = libcMusl
			b := path.Base(info.Interp)
			p.muslArch = strings.TrimSuffix(strings.TrimPrefix(b, "ld-musl-"), ".so.1")
		}
	}
	if !info.Dynamic || info.Interp == "" {
		// A static program maps nothing else; a dynamic object without an
		// interpreter cannot be exec'ed.
		return p
	}
	var preload []string
	if p.libc == libcGlibc {
		if r, ok := l.c.use(ldPreloadPath); ok {
			if b, ok := l.c.readText(r.Real); ok {
				preload = strings.FieldsFunc(string(b), func(c rune) bool {
					return c == ' ' || c == '\t' || c == '\n' || c == ':'
				})
			}
		}
	}
	if len(info.Needed) > 0 || len(preload) > 0 {
		if p.libc == libcGlibc {
			l.c.use(ldCachePath)
		} else {
			l.c.use("/etc/ld-musl-" + p.muslArch + ".path")
		}
	}
	main := &loadedObj{opened: file, real: real, info: info}
	l.loadDeps(p, main, preload)
	return p
}

// loadLibrary walks a library opened at run time (dlopen): the library and
// its dependencies.
func (l *elfLoader) loadLibrary(p *process, file string) {
	r, ok := l.c.resolveFile(file)
	if !ok {
		return
	}
	l.c.recordAll(r.Links, r.Real)
	info, err := l.open(r.Real)
	if err != nil {
		l.c.warnf("%s: %v", r.Real, err)
		return
	}
	if p == nil {
		p = &process{main: info, arch: archOf(info), env: map[string]string{}, cwd: "/"}
	}
	l.loadDeps(p, &loadedObj{opened: file, real: r.Real, info: info}, nil)
}

// loadDeps loads root's dependencies breadth-first, as glibc's
// _dl_map_object_deps does: first every DT_NEEDED of root in order, then
// theirs, skipping objects already loaded.
func (l *elfLoader) loadDeps(p *process, root *loadedObj, preload []string) {
	if p.names == nil {
		p.names = map[string]bool{}
	}
	names := p.names
	if root.info.SOName != "" {
		names[root.info.SOName] = true
	}
	if root.parent == nil && root.info.Type == elf.ET_DYN && root.opened != "" {
		names[path.Base(root.opened)] = true
	}
	loaded := map[string]bool{root.real: true}
	queue := []*loadedObj{}
	load := func(name string, from *loadedObj) {
		if names[name] {
			return
		}
		opened, r, info, ok := l.findLib(p, name, from)
		if !ok {
			l.c.warnf("%s: library %s not found in the image", from.real, name)
			names[name] = true
			return
		}
		names[name] = true
		if info.SOName != "" {
			names[info.SOName] = true
		}
		l.c.recordAll(r.Links, r.Real)
		if loaded[r.Real] {
			return
		}
		loaded[r.Real] = true
		p.libs = append(p.libs, r.Real)
		queue = append(queue, &loadedObj{opened: opened, real: r.Real, info: info, parent: from})
	}
	if l.walked[root.real] {
		return
	}
	// Preloaded objects are opened first but searched after the program.
	queue = append(queue, root)
	for _, name := range preload {
		load(name, root)
	}
	for len(queue) > 0 && !l.c.stopped() {
		obj := queue[0]
		queue = queue[1:]
		if l.walked[obj.real] && obj != root {
			continue
		}
		l.walked[obj.real] = true
		for _, n := range obj.info.Needed {
			load(n, obj)
		}
	}
}

// findLib searches for the library name needed by from, in the loader's
// order. glibc: DT_RPATH of from and its loaders (when from has no
// DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH, /etc/ld.so.cache (emulated from
// ld.so.conf when the cache is missing), then the default directories. musl:
// LD_LIBRARY_PATH, DT_RPATH/DT_RUNPATH, then /etc/ld-musl-ARCH.path or its
// defaults. A candidate of another machine or class is skipped, as the
// loader does.
func (l *elfLoader) findLib(p *process, name string, from *loadedObj) (string, resolved, *elfInfo, bool) {
	try := func(cand string) (resolved, *elfInfo, bool) {
		r, ok := l.c.resolveFile(cand)
		if !ok {
			return r, nil, false
		}
		info, err := l.open(r.Real)
		if err != nil {
			if !errors.Is(err, elfhdr.ErrNotELF) {
				l.c.warnf("%s: %v", r.Real, err)
			}
			return r, nil, false
		}
		if !compatible(p.main, info) {
			return r, nil, false
		}
		return r, info, true
	}
	if strings.Contains(name, "/") {
		cand := cleanAbs(p.cwd, name)
		r, info, ok := try(cand)
		return cand, r, info, ok
	}
	var dirs []string
	add := func(list string, obj *loadedObj) {
		for _, d := range strings.Split(list, ":") {
			if d == "" {
				continue
			}
			dirs = append(dirs, l.expandDST(d, obj, p))
		}
	}
	ldpath := p.env["LD_LIBRARY_PATH"]
	if p.libc == libcMusl {
		add(ldpath, from)
		add(from.info.RPath, from)
		add(from.info.RunPath, from)
		dirs = append(dirs, l.muslDirs(p)...)
	} else {
		if from.info.RunPath == "" {
			for o := from; o != nil; o = o.parent {
				if o.info.RunPath == "" {
					add(o.info.RPath, o)
				}
			}
		}
		add(ldpath, from)
		add(from.info.RunPath, from)
		if c := l.ldCache(); c != nil {
			for _, cand := range c.lookup(name, p.arch) {
				if r, info, ok := try(cand); ok {
					return cand, r, info, true
				}
			}
		} else {
			dirs = append(dirs, l.ldConfDirs()...)
		}
		dirs = append(dirs, defaultLibDirs(p.arch)...)
	}
	tried := map[string]bool{}
	for _, d := range dirs {
		cand := cleanAbs(cleanAbs(p.cwd, d), name)
		if tried[cand] {
			continue
		}
		tried[cand] = true
		if r, info, ok := try(cand); ok {
			return cand, r, info, true
		}
		if l.c.stopped() {
			break
		}
	}
	return "", resolved{}, nil, false
}

// expandDST expands the dynamic string tokens $ORIGIN, $LIB and $PLATFORM
// (also in ${...} form) in an RPATH or RUNPATH element.
func (l *elfLoader) expandDST(s string, obj *loadedObj, p *process) string {
	if !strings.Contains(s, "$") {
		return s
	}
	origin := path.Dir(obj.opened)
	if obj.parent == nil {
		origin = path.Dir(obj.real) // the kernel's view of the program: /proc/self/exe
	}
	lib := "lib"
	if p.arch.triplet != "" {
		lib = "lib/" + p.arch.triplet
	} else if p.arch.lib64 {
		lib = "lib64"
	}
	r := strings.NewReplacer(
		"${ORIGIN}", origin, "$ORIGIN", origin,
		"${LIB}", lib, "$LIB", lib,
		"${PLATFORM}", p.arch.platform, "$PLATFORM", p.arch.platform,
	)
	return r.Replace(s)
}

// defaultLibDirs are the loader's built-in directories: the multiarch ones of
// Debian-like images, /lib64 and /usr/lib64 of other 64-bit distributions,
// then /lib and /usr/lib.
func defaultLibDirs(a machineInfo) []string {
	var d []string
	if a.triplet != "" {
		d = append(d, "/lib/"+a.triplet, "/usr/lib/"+a.triplet)
	}
	if a.lib64 {
		d = append(d, "/lib64", "/usr/lib64")
	}
	return append(d, "/lib", "/usr/lib")
}

// muslDirs reads /etc/ld-musl-ARCH.path (directories separated by newlines
// or colons) or falls back to musl's defaults.
func (l *elfLoader) muslDirs(p *process) []string {
	if r, ok := l.c.resolveFile("/etc/ld-musl-" + p.muslArch + ".path"); ok {
		if b, ok := l.c.readText(r.Real); ok {
			return strings.FieldsFunc(string(b), func(c rune) bool { return c == '\n' || c == ':' })
		}
	}
	return []string{"/lib", "/usr/local/lib", "/usr/lib"}
}

// ldConfDirs parses /etc/ld.so.conf and its includes into the directory list
// ldconfig would have put in the cache. ld.so never reads these files itself,
// so they are not part of the profile.
func (l *elfLoader) ldConfDirs() []string {
	if l.confRead {
		return l.confDirs
	}
	l.confRead = true
	seenFile := map[string]bool{}
	var dirs []string
	var parse func(file string, depth int)
	parse = func(file string, depth int) {
		if depth > 8 || len(seenFile) >= maxConfFiles || seenFile[file] {
			return
		}
		seenFile[file] = true
		r, ok := l.c.resolveFile(file)
		if !ok {
			return
		}
		b, ok := l.c.readText(r.Real)
		if !ok {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			fields := strings.Fields(line)
			if len(fields) == 0 {
				continue
			}
			switch fields[0] {
			case "include":
				for _, pat := range fields[1:] {
					pat = cleanAbs(path.Dir(file), pat)
					for _, m := range l.globFlat(pat) {
						parse(m, depth+1)
					}
				}
				continue
			case "hwcap":
				continue
			}
			for _, f := range strings.FieldsFunc(line, func(c rune) bool {
				return c == ' ' || c == '\t' || c == ':' || c == ','
			}) {
				if i := strings.IndexByte(f, '='); i >= 0 {
					f = f[:i]
				}
				if path.IsAbs(f) {
					dirs = append(dirs, path.Clean(f))
				}
			}
		}
	}
	parse(ldConfPath, 0)
	l.confDirs = dirs
	return dirs
}

// globFlat expands a pattern whose wildcards are in its last element only
// (ld.so.conf's "include /etc/ld.so.conf.d/*.conf"), sorted by name.
func (l *elfLoader) globFlat(pat string) []string {
	dir, base := path.Split(pat)
	dir = path.Clean(dir)
	if !hasMeta(base) {
		return []string{pat}
	}
	r, ok := l.c.isDir(dir)
	if !ok {
		return nil
	}
	ents, err := l.c.fsys.ReadDir(r.Real)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if m, _ := path.Match(base, e.Name()); m {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// ldCache is the parsed "glibc-ld.so.cache1.1" format of /etc/ld.so.cache.
type ldCache struct {
	entries map[string][]ldCacheEntry
}

type ldCacheEntry struct {
	flags uint32
	path  string
	hwcap uint64
}

const (
	ldCacheMagicNew = "glibc-ld.so.cache1.1"
	ldCacheMagicOld = "ld.so-1.7.0"
)

func (l *elfLoader) ldCache() *ldCache {
	if l.cacheRead {
		return l.cache
	}
	l.cacheRead = true
	r, ok := l.c.resolveFile(ldCachePath)
	if !ok {
		return nil
	}
	b, err := l.c.readHead(r.Real, maxCacheBytes)
	if err != nil {
		return nil
	}
	c, err := parseLDCache(b)
	if err != nil {
		l.c.warnf("%s: %v; searching the ld.so.conf directories instead", ldCachePath, err)
		return nil
	}
	l.cache = c
	return c
}

// parseLDCache parses the new glibc cache format, alone or after the old
// libc5 table: a 20-byte magic, nlibs and len_strings (uint32), flags (uint8)
// and padding, an extension offset and three unused words, then nlibs entries
// of flags (int32), key and value string offsets (uint32), osversion (uint32)
// and hwcap (uint64). String offsets count from the start of the new-format
// header. The byte order is the target's; the one that gives a table that
// fits the file is used.
func parseLDCache(b []byte) (*ldCache, error) {
	base := 0
	if bytes.HasPrefix(b, []byte(ldCacheMagicOld)) {
		// Old format: magic (11 bytes, padded to 12), nlibs, then 12-byte
		// entries; the new format follows, aligned to 8 bytes.
		if len(b) < 16 {
			return nil, errCacheFormat
		}
		n := int(binary.LittleEndian.Uint32(b[12:]))
		if n > len(b)/12 {
			n = int(binary.BigEndian.Uint32(b[12:]))
		}
		if n < 0 || n > len(b)/12 {
			return nil, errCacheFormat
		}
		base = (16 + n*12 + 7) &^ 7
	}
	if base+48 > len(b) || !bytes.HasPrefix(b[base:], []byte(ldCacheMagicNew)) {
		return nil, errCacheFormat
	}
	h := b[base:]
	const entSize = 24
	maxLibs := uint32((len(h) - 48) / entSize)
	var bo binary.ByteOrder = binary.LittleEndian
	if bo.Uint32(h[20:]) > maxLibs {
		bo = binary.BigEndian
	}
	nlibs := bo.Uint32(h[20:])
	if nlibs > maxLibs {
		return nil, errCacheFormat
	}
	str := func(off uint32) (string, bool) {
		if uint64(off) >= uint64(len(h)) {
			return "", false
		}
		end := bytes.IndexByte(h[off:], 0)
		if end < 0 {
			return "", false
		}
		return string(h[off : int(off)+end]), true
	}
	c := &ldCache{entries: make(map[string][]ldCacheEntry)}
	for i := 0; i < int(nlibs); i++ {
		e := h[48+i*entSize:]
		flags := bo.Uint32(e[0:])
		key, ok1 := str(bo.Uint32(e[4:]))
		val, ok2 := str(bo.Uint32(e[8:]))
		if !ok1 || !ok2 || !path.IsAbs(val) {
			continue
		}
		c.entries[key] = append(c.entries[key], ldCacheEntry{
			flags: flags,
			path:  val,
			hwcap: bo.Uint64(e[16:]),
		})
	}
	return c, nil
}

var errCacheFormat = errors.New("not a glibc ld.so.cache in the new format")

// lookup returns the cached paths of name for the machine a, plain entries
// before glibc-hwcaps ones.
func (c *ldCache) lookup(name string, a machineInfo) []string {
	const (
		typeMask     = 0x00ff
		requiredMask = 0xff00
		elfLibc6     = 0x0003
		elfAny       = 0x0001
	)
	var plain, hw []string
	for _, e := range c.entries[name] {
		if t := e.flags & typeMask; t != elfLibc6 && t != elfAny {
			continue
		}
		if a.cache != nil {
			ok := false
			for _, want := range a.cache {
				if e.flags&requiredMask == want {
					ok = true
				}
			}
			if !ok {
				continue
			}
		}
		if e.hwcap == 0 {
			plain = append(plain, e.path)
		} else {
			hw = append(hw, e.path)
		}
	}
	return append(plain, hw...)
}
