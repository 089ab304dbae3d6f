package imageref

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Transport says where an image lives.
type Transport string

// The transports this package reads and writes. The values are skopeo's
// transport names.
const (
	// TransportRegistry is a registry speaking the OCI distribution API:
	// "REGISTRY/REPO[:TAG|@DIGEST]", optionally prefixed with "docker://".
	TransportRegistry Transport = "docker"
	// TransportOCI is an OCI image layout directory: "oci:DIR[:TAG]".
	TransportOCI Transport = "oci"
	// TransportDockerArchive is a `docker save` tarball:
	// "docker-archive:FILE[:REF]".
	TransportDockerArchive Transport = "docker-archive"
)

// Ref is a parsed image reference. The zero Ref is not valid; build one with
// Parse.
type Ref struct {
	// Transport says which of the other fields apply.
	Transport Transport
	// Name is the registry image reference, REGISTRY/REPO[:TAG|@DIGEST], as
	// written (without "docker://"). Only for TransportRegistry.
	Name string
	// Path is the layout directory (TransportOCI) or the archive file
	// (TransportDockerArchive).
	Path string
	// Tag selects an image inside a layout (the
	// org.opencontainers.image.ref.name annotation) or an archive (a
	// RepoTags entry such as "app:1.0"). Empty means the only image there
	// (when reading) or no name (when writing).
	Tag string
}

// String returns the reference in the form Parse accepts.
func (r Ref) String() string {
	switch r.Transport {
	case TransportRegistry:
		return r.Name
	case TransportOCI, TransportDockerArchive:
		if r.Tag == "" {
			return string(r.Transport) + ":" + r.Path
		}
		return string(r.Transport) + ":" + r.Path + ":" + r.Tag
	}
	return ""
}

// skopeo transports this package does not implement; naming one gives a
// specific error instead of a registry lookup of, say, "oci-archive:foo".
var unsupportedTransports = map[string]bool{
	"containers-storage": true,
	"dir":                true,
	"docker-daemon":      true,
	"oci-archive":        true,
	"ostree":             true,
	"sif":                true,
	"tarball":            true,
}

var (
	transportName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	dockerTag     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// refNameComponent follows the OCI image-layout grammar for the
	// org.opencontainers.image.ref.name annotation.
	refNameComponent = `[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*`
	ociRefName       = regexp.MustCompile(`^` + refNameComponent + `(?:/` + refNameComponent + `)*$`)
)

const supported = `supported: "docker://REGISTRY/REPO[:TAG|@DIGEST]" (or no prefix), "oci:DIR[:TAG]", "docker-archive:FILE[:REF]"`

// Parse parses a skopeo-style image reference:
//
//	REGISTRY/REPO[:TAG|@DIGEST]          a registry (Docker Hub when REGISTRY is left out)
//	docker://REGISTRY/REPO[:TAG|@DIGEST] the same, explicitly
//	oci:DIR[:TAG]                        an OCI image layout directory
//	docker-archive:FILE[:REF]            a `docker save` tarball; REF is a tag such as app:1.0
//
// DIR and FILE end at the first colon, as in skopeo. Registries on localhost
// and 127.0.0.1 are spoken to over plain HTTP; WithInsecure does the same for
// others. A reference without a transport prefix that starts with one of
// skopeo's other transports ("dir:", "oci-archive:", ...) is rejected with
// ErrUnsupportedTransport rather than looked up on Docker Hub.
func Parse(s string) (Ref, error) {
	if s == "" {
		return Ref{}, fmt.Errorf("%w: empty reference (%s)", ErrInvalidReference, supported)
	}
	if rest, ok := strings.CutPrefix(s, "docker://"); ok {
		return parseRegistry(s, rest)
	}
	if rest, ok := strings.CutPrefix(s, "oci:"); ok {
		return parseOCI(s, rest)
	}
	if rest, ok := strings.CutPrefix(s, "docker-archive:"); ok {
		return parseArchive(s, rest)
	}
	prefix, after, hasColon := strings.Cut(s, ":")
	if hasColon && unsupportedTransports[prefix] {
		return Ref{}, fmt.Errorf("%w: %q: transport %q is not supported (%s)", ErrUnsupportedTransport, s, prefix, supported)
	}
	if hasColon && transportName.MatchString(prefix) && !startsWithDigit(after) && !dockerTag.MatchString(after) {
		// "foo:/x": not REPO:TAG nor HOST:PORT/REPO, so a transport, but
		// not one we know.
		hint := ""
		if prefix == "docker" {
			hint = fmt.Sprintf("; did you mean %q?", "docker://"+strings.TrimLeft(after, "/"))
		}
		return Ref{}, fmt.Errorf("%w: %q: unknown transport %q (%s)%s", ErrUnsupportedTransport, s, prefix, supported, hint)
	}
	return parseRegistry(s, s)
}

func startsWithDigit(s string) bool {
	return s != "" && s[0] >= '0' && s[0] <= '9'
}

func parseRegistry(s, rest string) (Ref, error) {
	if rest == "" {
		return Ref{}, fmt.Errorf("%w: %q: no image after \"docker://\"", ErrInvalidReference, s)
	}
	if _, err := name.ParseReference(rest); err != nil {
		return Ref{}, fmt.Errorf("%w: %q: %w", ErrInvalidReference, s, err)
	}
	return Ref{Transport: TransportRegistry, Name: rest}, nil
}

func parseOCI(s, rest string) (Ref, error) {
	dir, tag, hasTag := strings.Cut(rest, ":")
	if dir == "" {
		return Ref{}, fmt.Errorf("%w: %q: no directory after \"oci:\" (want oci:DIR[:TAG])", ErrInvalidReference, s)
	}
	if hasTag {
		if tag == "" {
			return Ref{}, fmt.Errorf("%w: %q: empty tag after the directory (want oci:DIR[:TAG])", ErrInvalidReference, s)
		}
		if !ociRefName.MatchString(tag) {
			return Ref{}, fmt.Errorf("%w: %q: tag %q is not a valid org.opencontainers.image.ref.name", ErrInvalidReference, s, tag)
		}
	}
	return Ref{Transport: TransportOCI, Path: dir, Tag: tag}, nil
}

func parseArchive(s, rest string) (Ref, error) {
	file, ref, hasRef := strings.Cut(rest, ":")
	if file == "" {
		return Ref{}, fmt.Errorf("%w: %q: no file after \"docker-archive:\" (want docker-archive:FILE[:REF])", ErrInvalidReference, s)
	}
	if hasRef {
		if ref == "" {
			return Ref{}, fmt.Errorf("%w: %q: empty image reference after the file (want docker-archive:FILE[:REF])", ErrInvalidReference, s)
		}
		if strings.Contains(ref, "@") {
			return Ref{}, fmt.Errorf("%w: %q: a docker archive names images by tag, not by digest", ErrInvalidReference, s)
		}
		if _, err := name.NewTag(ref); err != nil {
			return Ref{}, fmt.Errorf("%w: %q: %q is not a tag such as app:1.0: %w", ErrInvalidReference, s, ref, err)
		}
	}
	return Ref{Transport: TransportDockerArchive, Path: file, Tag: ref}, nil
}

// SameDestination reports whether writing to dst could overwrite what src
// reads, so callers can refuse to copy an image onto itself:
//   - registry references are the same when they resolve to the same
//     repository and tag or digest ("ubuntu" equals
//     "docker.io/library/ubuntu:latest");
//   - layouts are the same when they are the same directory and their tags are
//     equal or either is empty (an untagged read may be that tag's image);
//   - archives are the same when they are the same file, whatever the tags (a
//     write replaces the whole file).
//
// Paths are compared after making them absolute and resolving symbolic links,
// so the files need not exist.
func SameDestination(src, dst Ref) bool {
	if src.Transport != dst.Transport {
		return false
	}
	switch src.Transport {
	case TransportRegistry:
		a, errA := name.ParseReference(src.Name)
		b, errB := name.ParseReference(dst.Name)
		if errA != nil || errB != nil {
			return src.Name == dst.Name
		}
		return a.Name() == b.Name()
	case TransportOCI:
		return samePath(src.Path, dst.Path) && (src.Tag == dst.Tag || src.Tag == "" || dst.Tag == "")
	case TransportDockerArchive:
		return samePath(src.Path, dst.Path)
	}
	return false
}

func samePath(a, b string) bool {
	ra, rb := resolvePath(a), resolvePath(b)
	if ra == rb {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// resolvePath makes p absolute and resolves symbolic links in its longest
// existing prefix.
func resolvePath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	var rest []string
	cur := abs
	for {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
		cur = parent
	}
}
