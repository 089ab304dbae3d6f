package profile

import (
	"bufio"
	"bytes"
	"debug/elf"
	"io"
	"path"
	"strings"
)

// maxRodata bounds the read-only data section searched for the build
// configuration of Node.js (libnode's is about 6 MiB).
const maxRodata = 64 << 20

// nodeBuiltinMarker starts each define that names an externalized built-in.
var nodeBuiltinMarker = []byte("NODE_SHARED_BUILTIN_")

// sharedBuiltins returns the files a Node.js build loads built-in modules
// from at start, in the order its build configuration lists them. Node.js
// configured with --shared-builtin-NAME-path (Debian's and Ubuntu's nodejs,
// for acorn, cjs-module-lexer and undici) reads each such file as it boots,
// whatever the program; the paths are the NODE_SHARED_BUILTIN_*_PATH
// defines of the configuration the build embeds (process.config). They are
// looked for in the read-only data of exe, the node executable, and of the
// libnode among libs; other objects are not read, and each object once per
// profile.
func (na *nodeAnalyzer) sharedBuiltins(exe string, libs []string) []string {
	var out []string
	for _, real := range append([]string{exe}, libs...) {
		if real != exe && !strings.HasPrefix(path.Base(real), "libnode.so") {
			continue
		}
		defs, ok := na.defines[real]
		if !ok {
			defs = rodataDefines(na.c, real)
			na.defines[real] = defs
		}
		out = append(out, defs...)
	}
	return out
}

// rodataDefines scans the .rodata section of the ELF object real for
// NODE_SHARED_BUILTIN_*_PATH=/path. A file the FS cannot read at offsets, or
// without such a section, gives nothing.
func rodataDefines(c *core, real string) []string {
	f, err := c.fsys.Open(real)
	if err != nil {
		return nil
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return nil
	}
	ef, err := elf.NewFile(ra)
	if err != nil {
		return nil
	}
	sec := ef.Section(".rodata")
	if sec == nil || sec.Type != elf.SHT_PROGBITS || sec.Size > maxRodata {
		return nil
	}
	return scanDefines(io.NewSectionReader(ra, int64(sec.Offset), int64(sec.Size)))
}

// scanDefines returns the path of each NODE_SHARED_BUILTIN_*_PATH=/path
// define in r, once each, in order. r is read as tokens ending at a quote,
// NUL, newline, backslash, comma or space; a run of 32 KiB without one is
// cut into pieces that start 256 bytes before the previous piece's end, so
// a define no longer than that is found wherever it falls.
func scanDefines(r io.Reader) []string {
	const maxRun, overlap = 32 << 10, 256
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 2*maxRun), 2*maxRun)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\"\x00\n\\, "); i >= 0 {
			return i + 1, data[:i], nil
		}
		switch {
		case atEOF && len(data) > 0:
			return len(data), data, nil
		case len(data) >= maxRun:
			return len(data) - overlap, data, nil
		}
		return 0, nil, nil
	})
	var out []string
	seen := map[string]bool{}
	for sc.Scan() {
		tok := sc.Bytes()
		i := bytes.Index(tok, nodeBuiltinMarker)
		if i < 0 {
			continue
		}
		name, file, ok := strings.Cut(string(tok[i+len(nodeBuiltinMarker):]), "=")
		if !ok || !strings.HasSuffix(name, "_PATH") || !path.IsAbs(file) {
			continue
		}
		if file = path.Clean(file); !seen[file] {
			seen[file] = true
			out = append(out, file)
		}
	}
	return out
}
