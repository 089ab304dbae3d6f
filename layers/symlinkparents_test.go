package layers

import (
	"reflect"
	"testing"
)

func TestSymlinkParents(t *testing.T) {
	dir := func(p string) Entry { return Entry{Path: p, Type: TypeDir, LinkIndex: -1} }
	file := func(p string) Entry { return Entry{Path: p, Type: TypeReg, LinkIndex: -1} }
	sym := func(p, target string) Entry {
		return Entry{Path: p, Type: TypeSymlink, Linkname: target, LinkIndex: -1}
	}
	hard := func(p, target string) Entry {
		return Entry{Path: p, Type: TypeHardlink, Linkname: target, LinkIndex: -1}
	}
	wh := func(p string) Entry { return Entry{Path: p, Type: TypeWhiteout, LinkIndex: -1} }
	opq := func(p string) Entry { return Entry{Path: p, Type: TypeOpaque, LinkIndex: -1} }
	usrLib := []Entry{dir("usr"), dir("usr/lib"), file("usr/lib/libc.so")}
	lib := []string{"lib"}
	for _, tc := range []struct {
		name   string
		layers [][]Entry
		want   []map[int]Moved
	}{
		{
			name:   "no symlinks",
			layers: [][]Entry{usrLib, {file("usr/lib/libfoo.so")}},
			want:   []map[int]Moved{nil, nil},
		},
		{
			name:   "relative symlink below",
			layers: [][]Entry{append(usrLib, sym("lib", "usr/lib")), {file("lib/libfoo.so"), dir("lib/sub"), file("lib/sub/x")}},
			want:   []map[int]Moved{nil, {0: {Path: "usr/lib/libfoo.so", Via: lib}, 1: {Path: "usr/lib/sub", Via: lib}, 2: {Path: "usr/lib/sub/x", Via: lib}}},
		},
		{
			name:   "absolute symlink, the entry's own name a symlink is not followed",
			layers: [][]Entry{append(usrLib, sym("lib", "/usr/lib")), {file("lib/libfoo.so"), dir("lib")}},
			want:   []map[int]Moved{nil, {0: {Path: "usr/lib/libfoo.so", Via: lib}}},
		},
		{
			name:   "a directory entry replaces the symlink before the next entry",
			layers: [][]Entry{append(usrLib, sym("lib", "usr/lib")), {dir("lib"), file("lib/libfoo.so")}},
			want:   []map[int]Moved{nil, nil},
		},
		{
			name:   "a symlink of the same layer",
			layers: [][]Entry{{dir("opt"), sym("app", "opt"), file("app/run")}},
			want:   []map[int]Moved{{2: {Path: "opt/run", Via: []string{"app"}}}},
		},
		{
			name:   "a chain of symlinks, one relative to its directory",
			layers: [][]Entry{{dir("a"), dir("a/real"), sym("a/rel", "real"), sym("top", "/a/rel")}, {file("top/f")}},
			want:   []map[int]Moved{nil, {0: {Path: "a/real/f", Via: []string{"top", "a/rel"}}}},
		},
		{
			name:   "dot-dot never goes above the root",
			layers: [][]Entry{{dir("d"), sym("d/up", "../../../d")}, {file("d/up/f")}},
			want:   []map[int]Moved{nil, {0: {Path: "d/f", Via: []string{"d/up"}}}},
		},
		{
			name:   "a dangling symlink: containerd makes its target",
			layers: [][]Entry{{sym("lib", "usr/lib64")}, {file("lib/f"), file("lib/g")}},
			want:   []map[int]Moved{nil, {0: {Path: "usr/lib64/f", Via: lib}, 1: {Path: "usr/lib64/g", Via: lib}}},
		},
		{
			name:   "whiteout and opaque marker through a symlink",
			layers: [][]Entry{append(usrLib, sym("lib", "usr/lib")), {wh("lib/libc.so"), opq("lib")}},
			want:   []map[int]Moved{nil, {0: {Path: "usr/lib/libc.so", Via: lib}, 1: {Path: "usr/lib", Via: lib}}},
		},
		{
			name:   "a hard link's target through a symlink",
			layers: [][]Entry{append(usrLib, sym("lib", "usr/lib")), {hard("libc-link", "lib/libc.so")}},
			want:   []map[int]Moved{nil, {0: {Path: "libc-link", Linkname: "usr/lib/libc.so", Via: lib}}},
		},
		{
			name:   "a symlink whited out, then written over by a directory",
			layers: [][]Entry{append(usrLib, sym("lib", "usr/lib")), {wh("lib")}, {file("lib/f")}},
			want:   []map[int]Moved{nil, nil, nil},
		},
		{
			name:   "an opaque marker hides the layers below, not the symlink its layer made",
			layers: [][]Entry{{dir("d"), dir("d/old"), sym("d/gone", "/d/old")}, {dir("d/t"), sym("d/l", "/d/t"), dir("d"), opq("d")}, {file("d/l/x"), file("d/gone/y")}},
			want:   []map[int]Moved{nil, nil, {0: {Path: "d/t/x", Via: []string{"d/l"}}}},
		},
		{
			name:   "a whiteout hides the layers below, not what its layer wrote",
			layers: [][]Entry{{dir("t"), sym("l", "t")}, {sym("l", "/t"), wh("l")}, {file("l/x")}},
			want:   []map[int]Moved{nil, nil, {0: {Path: "t/x", Via: []string{"l"}}}},
		},
		{
			name:   "a symlink loop is left alone",
			layers: [][]Entry{{sym("a", "b"), sym("b", "a")}, {file("a/f")}},
			want:   []map[int]Moved{nil, nil},
		},
		{
			name:   "a file on the way is left alone",
			layers: [][]Entry{{file("f"), sym("l", "f")}, {file("l/x")}},
			want:   []map[int]Moved{nil, nil},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var idxs []*Index
			for _, es := range tc.layers {
				idxs = append(idxs, &Index{Entries: es})
			}
			if got := SymlinkParents(idxs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SymlinkParents = %v, want %v", got, tc.want)
			}
		})
	}
}
