package lazypull

import (
	"path"
	"strings"

	"github.com/coldstart-dev/coldstart/layers"
)

// MaxSymlinks is how many symbolic links one resolution follows before it
// gives up, as the kernel's ELOOP does.
const MaxSymlinks = 40

// Resolve follows the absolute path p through the merged filesystem ov, as
// the kernel does when a process opens it: every symbolic link on the way
// is followed inside the image root (absolute targets start again at the
// root, ".." stops at the root). It returns the entry reached; ok is false
// when the path leads nowhere (a missing component, a loop, a file used as
// a directory). A directory that only exists implicitly, as the parent of
// entries, is walked through.
func Resolve(ov *layers.Overlay, p string) (ref layers.Ref, ok bool) {
	rest := split(p)
	cur := "."
	hops := 0
	found := false
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case ".":
			continue
		case "..":
			if cur != "." {
				cur = path.Dir(cur)
			}
			found = false
			continue
		}
		next := c
		if cur != "." {
			next = cur + "/" + c
		}
		r, exists := ov.Lookup(next)
		if !exists {
			// An implicit directory, or nothing: the next lookup says.
			cur, found = next, false
			continue
		}
		e := ov.Entry(r)
		switch e.Type {
		case layers.TypeSymlink:
			if hops++; hops > MaxSymlinks {
				return layers.Ref{}, false
			}
			if strings.HasPrefix(e.Linkname, "/") {
				cur = "."
			}
			rest = append(split(e.Linkname), rest...)
			found = false
			continue
		case layers.TypeDir:
		default:
			if len(rest) > 0 {
				return layers.Ref{}, false // a file used as a directory
			}
		}
		cur, ref, found = next, r, true
	}
	return ref, found
}

func split(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}
