package build

import (
	"slices"
	"strings"
)

// defaultEnv is the environment of the base image (as in Debian's images).
var defaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// stepEnv is the environment build steps run with.
func stepEnv(imageEnv []string) []string {
	return mergeEnv(append(slices.Clone(defaultEnv), "HOME=/root", "DEBIAN_FRONTEND=noninteractive"), imageEnv)
}

// mergeEnv returns base with over applied: same keys replaced in place,
// new ones appended.
func mergeEnv(base, over []string) []string {
	out := slices.Clone(base)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		i := slices.IndexFunc(out, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		if i >= 0 {
			out[i] = kv
		} else {
			out = append(out, kv)
		}
	}
	return out
}

// createdBy is a step's history entry, in the words of a Dockerfile.
func createdBy(s Step) string {
	if s.Run != "" {
		return "RUN /bin/sh -c " + s.Run
	}
	var b strings.Builder
	b.WriteString("COPY ")
	if s.From != "" {
		b.WriteString("--from=" + s.From + " ")
	}
	if s.Chown != "" {
		b.WriteString("--chown=" + s.Chown + " ")
	}
	if s.Mode != "" {
		b.WriteString("--chmod=" + s.Mode + " ")
	}
	b.WriteString(s.Copy + " " + s.To)
	return b.String()
}
