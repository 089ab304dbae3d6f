package profile

import (
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

// nodeSharedBuiltins returns the files a Node.js build loads built-in
// modules from at start, in the order its build configuration lists them.
// Node.js configured with --shared-builtin-NAME-path (Debian's and Ubuntu's
// nodejs, for acorn, cjs-module-lexer and undici) reads each such file as it
// boots, whatever the program; the paths are the NODE_SHARED_BUILTIN_*_PATH
// defines of the configuration the build embeds (process.config). They are
// looked for in the read-only data of the node executable and of libnode,
// among objs; other objects are not read.
func nodeSharedBuiltins(c *core, objs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, real := range objs {
		if real != objs[0] && !strings.HasPrefix(path.Base(real), "libnode.so") {
			continue
		}
		for _, f := range rodataDefines(c, real) {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
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

// scanDefines reads r in blocks and returns the path of each
// NODE_SHARED_BUILTIN_*_PATH=/path define, once each, in order. A define
// that straddles two blocks is found: each block keeps the tail of the last.
func scanDefines(r io.Reader) []string {
	const block, keep = 1 << 20, 4 << 10
	var out []string
	seen := map[string]bool{}
	buf := make([]byte, 0, block+keep)
	chunk := make([]byte, block)
	for {
		n, err := io.ReadFull(r, chunk)
		buf = append(buf, chunk[:n]...)
		last := err != nil
		for {
			i := bytes.Index(buf, nodeBuiltinMarker)
			if i < 0 {
				break
			}
			rest := buf[i+len(nodeBuiltinMarker):]
			end := bytes.IndexAny(rest, "\"\x00\n\\, ")
			if end < 0 && !last && len(rest) < keep {
				buf = buf[i:] // the define may go on in the next block
				break
			}
			if end < 0 {
				end = len(rest)
			}
			if name, file, ok := strings.Cut(string(rest[:end]), "="); ok && strings.HasSuffix(name, "_PATH") && path.IsAbs(file) && !seen[file] {
				seen[file] = true
				out = append(out, path.Clean(file))
			}
			buf = rest[end:]
		}
		if last {
			return out
		}
		if len(buf) > keep {
			buf = append(buf[:0], buf[len(buf)-keep:]...)
		}
	}
}
