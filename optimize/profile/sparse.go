package profile

import (
	"path"
	"strings"
)

// ReadInPart reports whether programs usually read the file at p (a path in
// the image) in part, mapping it into memory and touching only the pages
// they need, rather than whole: a shared object ("*.so", "*.so.N") or the
// JDK's class image (".../lib/modules"). A lazy puller then fetches only
// the chunks touched, so putting a large one in the prefetch section costs
// more than it saves (the optimizer and the cost model both use this).
func ReadInPart(p string) bool {
	base := path.Base(p)
	return strings.HasSuffix(base, ".so") || strings.Contains(base, ".so.") || ClassImage(p)
}

// ClassImage reports whether the file at p is the JDK's class image
// (".../lib/modules"), which the JVM maps and reads in part.
func ClassImage(p string) bool {
	return path.Base(p) == "modules" && path.Base(path.Dir(p)) == "lib"
}
