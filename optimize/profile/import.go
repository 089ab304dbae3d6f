package profile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/coldstart-dev/coldstart/optimize/profile/internal/imagepath"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	maxListLine    = 64 << 10 // one line of a path list
	maxRecordLines = 1 << 20  // entries of a record-in file
)

// pathListVersion names the path list rules in the name of the Profiler
// that Parse returns for a path list. It changes whenever a rule changes
// what a path list lists. Version 2: a directory line means the directory
// alone (it meant every file below it).
const pathListVersion = "paths/2"

// ReadPathList imports a plain list of paths, one per line, in priority
// order. Blank lines and lines starting with "#" are skipped; paths are
// taken as absolute inside the image. A path list is text: a line with a
// control character other than tab (a NUL byte, say) is an error wrapping
// ErrInvalidProfile, and so is a line longer than 64 KiB.
//
// With fsys, each path is resolved through symbolic links inside the image
// (the links and the final entry are listed) and a path that does not exist
// is dropped with a warning. A directory means that directory alone, as in a
// trace, which names the directories a program lists; "DIR/**" means every
// file below DIR. The wildcards "*", "?" and "[...]" (within one path
// element) and "**" (any number of elements) are expanded to the files and
// symbolic links they match, not to directories; the matches of one line
// are sorted by path. Without fsys, paths are kept as written and wildcards
// are an error. The options bound the work as for Static.
func ReadPathList(r io.Reader, fsys FS, opts ...Option) (*Profile, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	l := scanPathList(r)
	return l.profile(fsys, o)
}

// pathList is a path list read by scanPathList: its lines, up to the first
// one that cannot be read.
type pathList struct {
	lines []pathLine
	err   error // what stopped the reading, nil at the end of the input
}

// pathLine is one path of a path list.
type pathLine struct {
	n    int    // line number
	text string // as written, trimmed
}

// scanPathList reads the path lines of r, skipping blank lines and
// comments, up to the end or the first line that is too long or not text.
func scanPathList(r io.Reader) pathList {
	var l pathList
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxListLine)
	line := 0
	for sc.Scan() {
		line++
		if err := checkText(sc.Bytes()); err != nil {
			l.err = fmt.Errorf("reading path list: line %d: %w", line, err)
			return l
		}
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		l.lines = append(l.lines, pathLine{line, s})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("%w: %w: a line is longer than %d bytes", ErrInvalidProfile, err, maxListLine)
		}
		l.err = fmt.Errorf("reading path list: line %d: %w", line+1, err)
	}
	return l
}

// checkText rejects a line of a path list that holds a control character
// other than tab: binary data, not a list of paths.
func checkText(b []byte) error {
	for i, c := range b {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return fmt.Errorf("%w: byte %#02x at column %d is not text", ErrInvalidProfile, c, i+1)
		}
	}
	return nil
}

// profile resolves the lines against fsys (see ReadPathList).
func (l pathList) profile(fsys FS, o *options) (*Profile, error) {
	c := newCore(context.Background(), fsys, o)
	for _, pl := range l.lines {
		line, s := pl.n, pl.text
		p := path.Clean("/" + s)
		if p == "/" && !hasMeta(s) {
			continue
		}
		switch {
		case fsys == nil && hasMeta(p):
			return nil, fmt.Errorf("reading path list: line %d: %q has wildcards, which need the image filesystem", line, s)
		case fsys == nil:
			c.record(p)
		case hasMeta(p):
			matches := c.glob(p)
			if len(matches) == 0 {
				c.warnf("path list line %d: %s matches nothing in the image", line, s)
			}
			for _, m := range matches {
				c.listed(m)
			}
		default:
			// A file, or a directory alone: a trace names the
			// directories a program lists, not everything below them
			// ("DIR/**" says that).
			rr, err := c.resolve(p)
			if err != nil {
				c.warnf("path list line %d: %s: %v", line, s, imagepath.Underlying(err))
				continue
			}
			c.recordAll(rr.Links, rr.Real)
		}
	}
	if l.err != nil {
		return nil, l.err
	}
	return c.profile(SourceFile), nil
}

// listed records a glob match: a symbolic link and what it resolves to, or a
// file.
func (c *core) listed(m string) {
	fi, err := c.fsys.Lstat(m)
	if err != nil {
		return
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		c.record(m)
		return
	}
	c.record(m)
	if r, ok := c.resolveFile(m); ok {
		c.recordAll(r.Links, r.Real)
	}
}

// hasMeta reports whether p has glob wildcards.
func hasMeta(p string) bool {
	return strings.ContainsAny(p, "*?[")
}

// glob expands an absolute pattern inside the image to the non-directory
// entries it matches, sorted. The literal elements before the first wildcard
// are resolved through links (and those links recorded); below that, links
// to directories are not followed, so "**" cannot loop.
func (c *core) glob(pattern string) []string { return c.globMatch(pattern, false) }

// globMatch is glob; with dirs, a directory that the last element matches
// is in the expansion too, as a shell's pathname expansion has it.
func (c *core) globMatch(pattern string, dirs bool) []string {
	elems := imagepath.Split(pattern)
	k := 0
	for k < len(elems) && !hasMeta(elems[k]) {
		k++
	}
	base := "/" + strings.Join(elems[:k], "/")
	r, ok := c.isDir(base)
	if !ok {
		return nil
	}
	for _, l := range r.Links {
		c.record(l)
	}
	var out []string
	budget := 4 * c.o.maxFiles
	var match func(dir string, rest []string)
	match = func(dir string, rest []string) {
		if budget <= 0 || c.stopped() {
			return
		}
		if len(rest) == 0 {
			if fi, err := c.fsys.Lstat(dir); err == nil && (dirs || !fi.IsDir()) {
				out = append(out, dir)
			}
			return
		}
		if rest[0] == "**" {
			match(dir, rest[1:])
		}
		if !hasMeta(rest[0]) {
			next := path.Join(dir, rest[0])
			budget--
			if fi, err := c.fsys.Lstat(next); err == nil && (len(rest) == 1 || fi.IsDir()) {
				match(next, rest[1:])
			}
			return
		}
		ents, err := c.fsys.ReadDir(dir)
		if err != nil {
			return
		}
		names := make([]string, 0, len(ents))
		isDir := make(map[string]bool, len(ents))
		for _, e := range ents {
			names = append(names, e.Name())
			isDir[e.Name()] = e.IsDir()
		}
		sort.Strings(names)
		for _, n := range names {
			budget--
			if budget <= 0 {
				c.warnf("%s: the expansion was cut after %d entries", pattern, 4*c.o.maxFiles)
				return
			}
			next := path.Join(dir, n)
			if rest[0] == "**" {
				if isDir[n] {
					match(next, rest)
				} else if len(rest) == 1 {
					out = append(out, next)
				}
				continue
			}
			if ok, _ := path.Match(rest[0], n); !ok {
				continue
			}
			if len(rest) == 1 {
				match(next, nil)
			} else if isDir[n] {
				match(next, rest[1:])
			}
		}
	}
	match(r.Real, elems[k:])
	sort.Strings(out)
	uniq := out[:0]
	for i, m := range out {
		if i == 0 || m != out[i-1] {
			uniq = append(uniq, m)
		}
	}
	return uniq
}

// recordEntry is one line of a ctr-remote / nerdctl record file
// ("ctr-remote image optimize --record-out"), as read by
// "nerdctl image convert --estargz-record-in".
type recordEntry struct {
	Path           string `json:"path"`
	ManifestDigest string `json:"manifestDigest,omitempty"`
	LayerIndex     *int   `json:"layerIndex,omitempty"`
}

// ReadRecordIn imports the JSON-lines record file that "ctr-remote image
// optimize --record-out" writes and "nerdctl image convert
// --estargz-record-in" reads: one {"path": "..."} object per line (other
// fields are ignored), paths relative to the image root. Paths are made
// absolute and clean; the first occurrence of a path decides its place.
func ReadRecordIn(r io.Reader) (*Profile, error) {
	dec := json.NewDecoder(r)
	p := &Profile{Source: SourceFile, Files: []string{}}
	seen := map[string]bool{}
	for n := 1; ; n++ {
		var e recordEntry
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading record entry %d: %w", n, err)
		}
		if n > maxRecordLines {
			return nil, fmt.Errorf("reading record entry %d: %w: more than %d entries", n, ErrInvalidProfile, maxRecordLines)
		}
		if e.Path == "" {
			continue
		}
		f := path.Clean("/" + e.Path)
		if f == "/" || seen[f] {
			continue
		}
		seen[f] = true
		p.Files = append(p.Files, f)
	}
	return p, nil
}

// ReadFile reads a profile file of any of the formats this package reads and
// returns it as a Profiler (see Parse). Errors name the file.
func ReadFile(name string) (Profiler, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading profile: %w", err)
	}
	return Parse(name, data)
}

// Parse recognises a profile file by its contents and returns it as a
// Profiler:
//
//   - a JSON object with "files", as WriteJSON writes it (see ReadJSON);
//   - other JSON, the record of "ctr-remote image optimize --record-out"
//     (see ReadRecordIn);
//   - anything else, a path list (see ReadPathList), whose paths and
//     wildcards the Profiler resolves against each image's filesystem.
//
// The Profiler's name is "file/" and the hex SHA-256 of data for the JSON
// formats, and "paths/2/" and the SHA-256 for a path list: 2 is the version
// of the path list rules (version 2: a directory means that directory
// alone), so that a profile cached under older rules is not reused.
//
// Data that is none of these (binary data, say) is an error wrapping
// ErrInvalidProfile that says what was expected; so is a profile or record
// document that its reader rejects. name names the data in errors.
func Parse(name string, data []byte) (Profiler, error) {
	sum := sha256.Sum256(data)
	id := "file/" + hex.EncodeToString(sum[:])
	pathsID := pathListVersion + "/" + hex.EncodeToString(sum[:])
	trimmed := bytes.TrimSpace(data)
	var probe map[string]json.RawMessage
	var p *Profile
	var err error
	switch {
	case json.Unmarshal(trimmed, &probe) == nil && probe["files"] != nil:
		p, err = ReadJSON(bytes.NewReader(data))
	case bytes.HasPrefix(trimmed, []byte("{")):
		p, err = ReadRecordIn(bytes.NewReader(data))
	default:
		l := scanPathList(bytes.NewReader(data))
		if l.err != nil {
			return nil, fmt.Errorf("profile %s: not a profile: want profile JSON ({\"files\": [...]}), JSON lines of {\"path\": ...} (ctr-remote --record-out) or a path list (text, one path per line): %w", name, l.err)
		}
		return ProfilerFunc(pathsID, func(_ context.Context, _ v1.Image, fsys FS) (*Profile, error) {
			p, err := l.profile(fsys, defaultOptions())
			if err != nil {
				return nil, fmt.Errorf("profile %s: %w", name, err)
			}
			return p, nil
		}), nil
	}
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", name, err)
	}
	return ProfilerFunc(id, func(context.Context, v1.Image, FS) (*Profile, error) { return p.clone(), nil }), nil
}
