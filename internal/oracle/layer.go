package oracle

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Type is the kind of a layer entry or of a filesystem node.
type Type uint8

// The types. Nodes of an [FS] are only TypeFile, TypeDir, TypeSymlink,
// TypeChar, TypeBlock and TypeFIFO; the others exist in a [Layer] only.
const (
	TypeFile Type = iota + 1
	TypeDir
	TypeSymlink
	// TypeHardlink is a tar hard link entry; Entry.Linkname is the
	// cleaned path it links to.
	TypeHardlink
	TypeChar
	TypeBlock
	TypeFIFO
	// TypeWhiteout is a ".wh.NAME" entry; Entry.Path is the path it
	// deletes from the layers below.
	TypeWhiteout
	// TypeOpaque is a "DIR/.wh..wh..opq" entry; Entry.Path is DIR.
	TypeOpaque
	// TypeReserved is a ".wh..wh.NAME" entry other than the opaque
	// marker (AUFS metadata such as ".wh..wh.plnk"): nothing is written
	// and nothing is deleted. Entry.Path is its own cleaned name.
	TypeReserved
	// TypeGlobalHeader is a PAX global extended header ("g"), which
	// git archive writes first. It is metadata, not a file.
	TypeGlobalHeader
	// TypeOther is any other tar type flag (Entry.Typeflag has it), such
	// as the old GNU sparse "S" or contiguous "7" files; containerd
	// refuses to apply them and so does [Apply].
	TypeOther
)

var typeNames = [...]string{
	TypeFile: "file", TypeDir: "dir", TypeSymlink: "symlink", TypeHardlink: "hardlink",
	TypeChar: "char", TypeBlock: "block", TypeFIFO: "fifo", TypeWhiteout: "whiteout",
	TypeOpaque: "opaque", TypeReserved: "reserved", TypeGlobalHeader: "global-header",
	TypeOther: "other",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// IsMarker reports whether t is a whiteout, opaque or reserved marker.
func (t Type) IsMarker() bool { return t == TypeWhiteout || t == TypeOpaque || t == TypeReserved }

// Digest is the SHA-256 of a file's content.
type Digest [32]byte

// String returns "sha256:HEX".
func (d Digest) String() string { return "sha256:" + hex.EncodeToString(d[:]) }

// Short returns "sha256:" and the first 12 hex digits.
func (d Digest) Short() string { return "sha256:" + hex.EncodeToString(d[:6]) }

// Entry is one tar header of a layer, read and cleaned.
type Entry struct {
	// Index is the position of the entry in the tar stream, counting
	// every header tar.Reader.Next returns (global headers included),
	// from 0.
	Index int
	// Name is the name as written in the tar (after PAX and GNU long
	// names are applied).
	Name string
	// Path is the cleaned name, relative to the root ("etc/passwd"; the
	// root is "."). For a whiteout it is the path deleted, for an opaque
	// marker the directory made opaque.
	Path string
	Type Type
	// Typeflag is the tar type flag as read.
	Typeflag byte
	// Mode holds the permission bits plus setuid, setgid and sticky
	// (0o7777 of the tar mode).
	Mode     int64
	UID, GID int
	// ModTime is the modification time with the nanoseconds a PAX mtime
	// record carries.
	ModTime time.Time
	// Size and Digest are the length and SHA-256 of the content of a
	// regular file (zero for other types).
	Size   int64
	Digest Digest
	// Linkname is a symlink's target as written, or the cleaned path a
	// hard link points to.
	Linkname           string
	Devmajor, Devminor int64
	// Xattrs are the PAX "SCHILY.xattr." records; nil when there are none.
	Xattrs map[string]string
}

func (e *Entry) String() string {
	return fmt.Sprintf("entry %d (%s)", e.Index, e.Name)
}

// Hidden is an entry a lazy puller does not present (see [ReadTOC]).
type Hidden struct {
	Path   string
	Reason string
}

// Layer is the list of entries of one layer, in tar order.
type Layer struct {
	Entries []Entry
	// Bytes is the length of the uncompressed stream, read to its end
	// (past the end-of-archive blocks): the length the DiffID covers.
	Bytes int64
	// Hidden lists what a lazy puller hides, for layers read by
	// [ReadTOC]; nil for layers read from a tar stream.
	Hidden []Hidden
	// TOCDigest is the digest of the TOC JSON of a layer read by
	// [ReadTOC].
	TOCDigest string
}

// Errors. Every error of this package that is about the input wraps one of
// them.
var (
	// ErrBadLayer: a layer cannot be read (not a tar, truncated, an
	// entry that escapes the root, a bad whiteout name).
	ErrBadLayer = errors.New("bad layer")
	// ErrApply: a layer cannot be applied the way containerd would
	// (a hard link to a missing path or a directory, a parent that is
	// not a directory, a symlink loop, an unhandled type).
	ErrApply = errors.New("layer does not apply")
	// ErrTOC: the lazy view of a layer cannot be built or does not
	// verify (bad footer or TOC, TOC digest mismatch, a chunk or file
	// whose digest does not match).
	ErrTOC = errors.New("bad eStargz or zstd:chunked layer")
)

const (
	whiteoutPrefix = ".wh."
	opaqueName     = ".wh..wh..opq"
	reservedPrefix = ".wh..wh."
)

// CleanName turns a tar entry name into a path relative to the root, the
// way containerd's applier reads it: "./a/b/", "/a/b" and "a//b" become
// "a/b", "a/../b" becomes "b", and "", ".", "./" and "/" become ".". A
// name whose ".." elements climb above the root is an error; an absolute
// name is taken from the root (containerd joins every name to the root).
func CleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("name %q contains NUL", name)
	}
	rel := strings.TrimLeft(name, "/")
	depth := 0
	for rest := rel; rest != ""; {
		var elem string
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			elem, rest = rest[:i], rest[i+1:]
		} else {
			elem, rest = rest, ""
		}
		switch elem {
		case "", ".":
		case "..":
			if depth == 0 {
				return "", fmt.Errorf("name %q climbs out of the root", name)
			}
			depth--
		default:
			depth++
		}
	}
	if rel == "" {
		return ".", nil
	}
	return cleanRel(rel), nil
}

// cleanRel cleans a relative path without allocating when it is clean
// already or only has a trailing slash.
func cleanRel(p string) string {
	clean := true
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && (i+1 == len(p) || p[i+1] == '/') {
			if i+1 == len(p) {
				continue
			}
			clean = false
			break
		}
		if p[i] == '.' && (i == 0 || p[i-1] == '/') {
			end := i + 1
			if end < len(p) && p[end] == '.' {
				end++
			}
			if end == len(p) || p[end] == '/' {
				clean = false
				break
			}
		}
	}
	if clean {
		return strings.TrimSuffix(p, "/")
	}
	return cleanSlow(p)
}

func cleanSlow(p string) string {
	var out []string
	for _, elem := range strings.Split(p, "/") {
		switch elem {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, elem)
		}
	}
	if len(out) == 0 {
		return "."
	}
	return strings.Join(out, "/")
}

// parentOf returns the parent of a clean relative path, "." for a
// top-level path.
func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}

// baseOf returns the last element of a clean relative path.
func baseOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// joinPath joins a clean relative directory ("." for the root) and a name.
func joinPath(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return dir + "/" + name
}

// classify sets e.Type and e.Path from a cleaned name and a tar type flag;
// whiteout names win over the type flag, as in containerd, where whiteouts
// are converted before the type is looked at.
func classify(e *Entry, clean string, typeflag byte) error {
	e.Path = clean
	base := baseOf(clean)
	if clean != "." && strings.HasPrefix(base, whiteoutPrefix) {
		dir := parentOf(clean)
		switch {
		case base == opaqueName:
			e.Type, e.Path = TypeOpaque, dir
		case strings.HasPrefix(base, reservedPrefix):
			e.Type = TypeReserved
		default:
			victim := base[len(whiteoutPrefix):]
			if victim == "" || victim == "." || victim == ".." {
				return fmt.Errorf("whiteout %q names no file", e.Name)
			}
			e.Type, e.Path = TypeWhiteout, joinPath(dir, victim)
		}
		return nil
	}
	switch typeflag {
	case '0':
		e.Type = TypeFile
	case '1':
		e.Type = TypeHardlink
	case '2':
		e.Type = TypeSymlink
	case '3':
		e.Type = TypeChar
	case '4':
		e.Type = TypeBlock
	case '5':
		e.Type = TypeDir
	case '6':
		e.Type = TypeFIFO
	case 'g':
		e.Type = TypeGlobalHeader
	default:
		e.Type = TypeOther
	}
	return nil
}
