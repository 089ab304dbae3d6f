package profile

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/coldstart-dev/coldstart/optimize/profile/internal/imagepath"
)

const (
	maxListLine    = 64 << 10 // one line of a path list
	maxRecordLines = 1 << 20  // entries of a record-in file
)

// ReadPathList imports a plain list of paths, one per line, in priority
// order. Blank lines and lines starting with "#" are skipped; paths are
// taken as absolute inside the image.
//
// With fsys, each path is resolved through symbolic links inside the image
// (the links and the final file are listed), a path that does not exist is
// dropped with a warning, a directory stands for every file below it, and the
// wildcards "*" and "?" and "[...]" (within one path element) and "**" (any
// number of elements) are expanded; the matches of one line are sorted by
// path. Without fsys, paths are kept as written and wildcards are an error.
// The options bound the work as for Static.
func ReadPathList(r io.Reader, fsys FS, opts ...Option) (*Profile, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	w := newWalker(context.Background(), fsys, o)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxListLine)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		p := path.Clean("/" + s)
		if p == "/" && !hasMeta(s) {
			continue
		}
		switch {
		case fsys == nil && hasMeta(p):
			return nil, fmt.Errorf("reading path list: line %d: %q has wildcards, which need the image filesystem", line, s)
		case fsys == nil:
			w.record(p)
		case hasMeta(p):
			matches := w.glob(p)
			if len(matches) == 0 {
				w.warnf("path list line %d: %s matches nothing in the image", line, s)
			}
			for _, m := range matches {
				w.listed(m)
			}
		default:
			rr, err := w.resolve(p)
			if err != nil {
				w.warnf("path list line %d: %s: %v", line, s, imagepath.Underlying(err))
				continue
			}
			if rr.Info.IsDir() {
				for _, l := range rr.Links {
					w.record(l)
				}
				for _, m := range w.glob(path.Join(rr.Real, "**")) {
					w.listed(m)
				}
				continue
			}
			w.recordAll(rr.Links, rr.Real)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading path list: line %d: %w", line+1, err)
	}
	return w.profile(SourceFile), nil
}

// listed records a glob match: a symbolic link and what it resolves to, or a
// file.
func (w *walker) listed(m string) {
	fi, err := w.fsys.Lstat(m)
	if err != nil {
		return
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		w.record(m)
		return
	}
	w.record(m)
	if r, ok := w.resolveFile(m); ok {
		w.recordAll(r.Links, r.Real)
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
func (w *walker) glob(pattern string) []string {
	elems := imagepath.Split(pattern)
	k := 0
	for k < len(elems) && !hasMeta(elems[k]) {
		k++
	}
	base := "/" + strings.Join(elems[:k], "/")
	r, ok := w.isDir(base)
	if !ok {
		return nil
	}
	for _, l := range r.Links {
		w.record(l)
	}
	var out []string
	budget := 4 * w.o.maxFiles
	var match func(dir string, rest []string)
	match = func(dir string, rest []string) {
		if budget <= 0 || w.stopped() {
			return
		}
		if len(rest) == 0 {
			if fi, err := w.fsys.Lstat(dir); err == nil && !fi.IsDir() {
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
			if fi, err := w.fsys.Lstat(next); err == nil && (len(rest) == 1 || fi.IsDir()) {
				match(next, rest[1:])
			}
			return
		}
		ents, err := w.fsys.ReadDir(dir)
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
				w.warnf("%s: the expansion was cut after %d entries", pattern, 4*w.o.maxFiles)
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
