package testimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func at(layer, entry int) Origin { return Origin{Layer: layer, Entry: entry} }

func fileNode(p, content string, o Origin, mods ...func(*Node)) Node {
	n := Node{Path: p, Type: TypeFile, Mode: 0o644, Size: int64(len(content)), Digest: digestOf(content), Origin: o}
	for _, m := range mods {
		m(&n)
	}
	return n
}

func dirNode(p string, mode int64, o Origin, mods ...func(*Node)) Node {
	n := Node{Path: p, Type: TypeDir, Mode: mode, Origin: o}
	for _, m := range mods {
		m(&n)
	}
	return n
}

func linkNode(p, target string, o Origin) Node {
	return Node{Path: p, Type: TypeSymlink, Mode: 0o777, Linkname: target, Origin: o}
}

func tars(ls ...Layer) [][]byte {
	out := make([][]byte, len(ls))
	for i, l := range ls {
		out[i] = l.Tar()
	}
	return out
}

func TestApply(t *testing.T) {
	base := Layer{
		Dir("etc", 0o755),                   // 0
		File("etc/passwd", "root"),          // 1
		File("etc/group", "wheel"),          // 2
		Dir("var", 0o755),                   // 3
		Dir("var/cache", 0o755),             // 4
		File("var/cache/a", "aaaa"),         // 5
		Dir("var/cache/sub", 0o700),         // 6
		File("var/cache/sub/b", "bb"),       // 7
		Symlink("bin", "usr/bin"),           // 8
		File("big", strings.Repeat("x", 5)), // 9
	}
	baseNodes := []Node{
		fileNode("big", "xxxxx", at(0, 9)),
		linkNode("bin", "usr/bin", at(0, 8)),
		dirNode("etc", 0o755, at(0, 0)),
		fileNode("etc/group", "wheel", at(0, 2)),
		fileNode("etc/passwd", "root", at(0, 1)),
		dirNode("var", 0o755, at(0, 3)),
		dirNode("var/cache", 0o755, at(0, 4)),
		fileNode("var/cache/a", "aaaa", at(0, 5)),
		dirNode("var/cache/sub", 0o700, at(0, 6)),
		fileNode("var/cache/sub/b", "bb", at(0, 7)),
	}
	// without returns baseNodes minus the given paths, plus extra.
	without := func(drop []string, extra ...Node) []Node {
		var out []Node
	next:
		for _, n := range baseNodes {
			for _, d := range drop {
				if n.Path == d {
					continue next
				}
			}
			out = append(out, n)
		}
		out = append(out, extra...)
		sortNodes(out)
		return out
	}

	tests := []struct {
		name   string
		layers []Layer
		want   []Node
	}{
		{
			name:   "single layer",
			layers: []Layer{base},
			want:   baseNodes,
		},
		{
			name: "names are cleaned",
			layers: []Layer{{
				Dir("./a/", 0o755),
				File("/a/f", "1"),
				File("a//g", "2"),
				Symlink("./a/./l", "../x"),
			}},
			want: []Node{
				dirNode("a", 0o755, at(0, 0)),
				fileNode("a/f", "1", at(0, 1)),
				fileNode("a/g", "2", at(0, 2)),
				linkNode("a/l", "../x", at(0, 3)),
			},
		},
		{
			name:   "root entry",
			layers: []Layer{{Dir("./", 0o700, Owner(1, 2)), File("./f", "x")}},
			want: []Node{
				dirNode(".", 0o700, at(0, 0), func(n *Node) { n.UID, n.GID = 1, 2 }),
				fileNode("f", "x", at(0, 1)),
			},
		},
		{
			name:   "whiteout deletes a lower file",
			layers: []Layer{base, {Whiteout("etc/group")}},
			want:   without([]string{"etc/group"}),
		},
		{
			name:   "whiteout deletes a lower directory and its subtree",
			layers: []Layer{base, {Dir("var", 0o755), Whiteout("var/cache")}},
			want:   without([]string{"var", "var/cache", "var/cache/a", "var/cache/sub", "var/cache/sub/b"}, dirNode("var", 0o755, at(1, 0))),
		},
		{
			name:   "whiteout of a missing path does nothing",
			layers: []Layer{base, {Whiteout("etc/nothing"), Whiteout("nowhere/x")}},
			want:   baseNodes,
		},
		{
			name: "whiteout spares the same layer, before or after it in the tar",
			layers: []Layer{base, {
				File("etc/group", "new"),  // 0
				Whiteout("etc/group"),     // 1
				Whiteout("etc/passwd"),    // 2
				File("etc/passwd", "new"), // 3
			}},
			want: without([]string{"etc/group", "etc/passwd"},
				fileNode("etc/group", "new", at(1, 0)),
				fileNode("etc/passwd", "new", at(1, 3))),
		},
		{
			name: "opaque hides lower children only",
			layers: []Layer{base, {
				File("var/cache/early", "e"), // 0
				Dir("var/cache", 0o750),      // 1
				Opaque("var/cache"),          // 2
				File("var/cache/late", "l"),  // 3
			}},
			want: without([]string{"var/cache", "var/cache/a", "var/cache/sub", "var/cache/sub/b"},
				dirNode("var/cache", 0o750, at(1, 1)),
				fileNode("var/cache/early", "e", at(1, 0)),
				fileNode("var/cache/late", "l", at(1, 3))),
		},
		{
			name:   "opaque marker without a directory entry keeps the lower directory",
			layers: []Layer{base, {Opaque("var/cache/")}},
			want:   without([]string{"var/cache/a", "var/cache/sub", "var/cache/sub/b"}),
		},
		{
			name:   "opaque root hides everything below",
			layers: []Layer{base, {Opaque("."), File("n", "n")}},
			want:   []Node{fileNode("n", "n", at(1, 1))},
		},
		{
			name: "later entry for a path in one layer wins",
			layers: []Layer{{
				File("f", "first"),
				File("f", "second", Mode(0o600)),
				File("g", "file"),
				Symlink("g", "elsewhere"),
			}},
			want: []Node{
				fileNode("f", "second", at(0, 1), func(n *Node) { n.Mode = 0o600 }),
				linkNode("g", "elsewhere", at(0, 3)),
			},
		},
		{
			name:   "file replacing a lower directory removes its subtree",
			layers: []Layer{base, {File("var/cache", "now a file")}},
			want: without([]string{"var/cache", "var/cache/a", "var/cache/sub", "var/cache/sub/b"},
				fileNode("var/cache", "now a file", at(1, 0))),
		},
		{
			name: "file replacing a directory in the same layer removes its subtree",
			layers: []Layer{{
				Dir("d", 0o755),
				File("d/x", "x"),
				Symlink("d", "elsewhere"),
			}},
			want: []Node{linkNode("d", "elsewhere", at(0, 2))},
		},
		{
			name:   "directory replacing a lower file after its whiteout",
			layers: []Layer{base, {Whiteout("etc/group"), Dir("etc/group", 0o711), File("etc/group/x", "x")}},
			want: without([]string{"etc/group"},
				dirNode("etc/group", 0o711, at(1, 1)),
				fileNode("etc/group/x", "x", at(1, 2))),
		},
		{
			name:   "directory replacing a lower file without whiteout",
			layers: []Layer{base, {Dir("big", 0o755)}},
			want:   without([]string{"big"}, dirNode("big", 0o755, at(1, 0))),
		},
		{
			name:   "directory over directory changes metadata and keeps children",
			layers: []Layer{base, {Dir("var/cache", 0o775, Owner(5, 6), Xattr("user.a", "b"))}},
			want: without([]string{"var/cache"},
				dirNode("var/cache", 0o775, at(1, 0), func(n *Node) {
					n.UID, n.GID = 5, 6
					n.Xattrs = map[string]string{"user.a": "b"}
				})),
		},
		{
			name: "hard link shares the target's content and metadata",
			layers: []Layer{{
				File("a", "shared", Mode(0o4755), Owner(7, 8), Xattr("security.capability", "cap")),
				Hardlink("b", "./a", Mode(0o600), Owner(1, 1)),
			}},
			want: []Node{
				fileNode("a", "shared", at(0, 0), func(n *Node) {
					n.Mode, n.UID, n.GID = 0o4755, 7, 8
					n.Xattrs = map[string]string{"security.capability": "cap"}
				}),
				fileNode("b", "shared", at(0, 1), func(n *Node) {
					n.Mode, n.UID, n.GID, n.Linkname = 0o4755, 7, 8, "a"
					n.Xattrs = map[string]string{"security.capability": "cap"}
				}),
			},
		},
		{
			name: "hard link keeps the content it was made with",
			layers: []Layer{
				{File("a", "v1"), Hardlink("b", "a"), File("a", "v2")},
				{File("a", "v3"), Hardlink("c", "b")},
			},
			want: []Node{
				fileNode("a", "v3", at(1, 0)),
				fileNode("b", "v1", at(0, 1), func(n *Node) { n.Linkname = "a" }),
				fileNode("c", "v1", at(1, 1), func(n *Node) { n.Linkname = "b" }),
			},
		},
		{
			name: "hard link to a symlink copies the symlink",
			layers: []Layer{{
				Symlink("s", "t"),
				Hardlink("h", "s"),
			}},
			want: []Node{linkNode("h", "t", at(0, 1)), linkNode("s", "t", at(0, 0))},
		},
		{
			name: "whiteout and opaque files never appear",
			layers: []Layer{{
				Dir("d", 0o755),
				Opaque("d"),
				Whiteout("d/x"),
				File("d/.wh..wh.plnk", ""),
			}},
			want: []Node{dirNode("d", 0o755, at(0, 0))},
		},
		{
			name: "special files, modes and xattrs",
			layers: []Layer{{
				Char("null", 1, 3),
				Block("sda", 8, 0, Mode(0o640), Owner(0, 6)),
				FIFO("pipe"),
				Dir("tmp", 0o1777),
				File("su", "", Mode(0o104755), Xattr("user.x", "y"), Xattr("user.z", "")),
			}},
			want: []Node{
				{Path: "null", Type: TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, Origin: at(0, 0)},
				{Path: "pipe", Type: TypeFIFO, Mode: 0o644, Origin: at(0, 2)},
				{Path: "sda", Type: TypeBlock, Mode: 0o640, GID: 6, Devmajor: 8, Origin: at(0, 1)},
				fileNode("su", "", at(0, 4), func(n *Node) {
					n.Mode = 0o4755
					n.Xattrs = map[string]string{"user.x": "y", "user.z": ""}
				}),
				dirNode("tmp", 0o1777, at(0, 3)),
			},
		},
		{
			name:   "missing parents are created as 0755 directories",
			layers: []Layer{{File("a/b/c", "c", Owner(3, 3))}},
			want: []Node{
				dirNode("a", 0o755, at(0, 0)),
				dirNode("a/b", 0o755, at(0, 0)),
				fileNode("a/b/c", "c", at(0, 0), func(n *Node) { n.UID, n.GID = 3, 3 }),
			},
		},
		{
			name: "entry indexes count whiteouts and PAX-headed entries once",
			layers: []Layer{{
				Whiteout("x"),                        // 0
				File("a", "a", Xattr("user.k", "v")), // 1 (PAX header + file)
				File("b", "b"),                       // 2
			}},
			want: []Node{
				fileNode("a", "a", at(0, 1), func(n *Node) { n.Xattrs = map[string]string{"user.k": "v"} }),
				fileNode("b", "b", at(0, 2)),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree, err := Apply(tars(tc.layers...)...)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if diff := cmp.Diff(tc.want, tree.Nodes()); diff != "" {
				t.Errorf("Apply mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func sortNodes(ns []Node) {
	for i := 1; i < len(ns); i++ {
		for j := i; j > 0 && ns[j].Path < ns[j-1].Path; j-- {
			ns[j], ns[j-1] = ns[j-1], ns[j]
		}
	}
}

func TestApplyErrors(t *testing.T) {
	good := Layer{Dir("d", 0o755), File("d/f", strings.Repeat("z", 3000))}.Tar()
	tests := []struct {
		name   string
		layers [][]byte
		want   string
	}{
		{"dot-dot name", tars(Layer{File("../etc/passwd", "x")}), `".." element`},
		{"dot-dot inside", tars(Layer{File("a/../../b", "x")}), `".." element`},
		{"dot-dot hard link", tars(Layer{File("a", "x"), Hardlink("b", "../a")}), `".." element`},
		{"hard link to missing", tars(Layer{Hardlink("b", "a")}), "does not exist"},
		{"hard link to directory", tars(Layer{Dir("a", 0o755), Hardlink("b", "a")}), "is a directory"},
		{"parent is a file", tars(Layer{File("a", "x"), File("a/b", "y")}), "parent a is a file"},
		{"parent is a symlink", tars(Layer{Symlink("lib", "usr/lib"), File("lib/x", "y")}), "parent lib is a symlink"},
		{"root is a file", tars(Layer{File(".", "x")}), "root entry"},
		{"bad whiteout", tars(Layer{File("d/.wh.", "")}), "bad whiteout"},
		{"path inside a whiteout", tars(Layer{File("d/.wh.x/y", "")}), "path inside a whiteout d/.wh.x"},
		{"truncated", [][]byte{good[:1500]}, "unexpected EOF"},
		{"not a tar", [][]byte{[]byte(strings.Repeat("this is not a tar archive\n", 40))}, "reading tar entry 0"},
		{"bad second layer", [][]byte{good, good[:700]}, "bad layer 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Apply(tc.layers...)
			if err == nil {
				t.Fatal("Apply succeeded, want an error")
			}
			if !errors.Is(err, ErrBadLayer) {
				t.Errorf("error %v does not wrap ErrBadLayer", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if _, err := WastedBytes(tc.layers...); err == nil {
				t.Error("WastedBytes succeeded, want an error")
			}
		})
	}
}

func TestWastedBytes(t *testing.T) {
	base := Layer{
		Dir("d", 0o755),
		File("d/a", "aaaa"),     // 4
		File("d/b", "bbbbbbbb"), // 8
		Dir("d/sub", 0o755),
		File("d/sub/c", "cccccccccccc"), // 16? no: 12
		File("keep", "kk"),
	}
	tests := []struct {
		name   string
		layers []Layer
		want   int64
	}{
		{"nothing hidden", []Layer{base}, 0},
		{"replaced in the same layer is not counted", []Layer{{File("f", "12345"), File("f", "1")}}, 0},
		{"same-layer ancestor replaced is not counted", []Layer{{Dir("x", 0o755), File("x/f", "123"), File("x", "")}}, 0},
		{"overwritten by a later layer", []Layer{base, {File("d/a", "new content")}}, 4},
		{"identical re-add hides the lower copy", []Layer{base, {File("d/b", "bbbbbbbb")}}, 8},
		{"chmod copy-up hides the lower copy", []Layer{base, {File("keep", "kk", Mode(0o600))}}, 2},
		{"deleted by whiteout", []Layer{base, {Whiteout("d/b")}}, 8},
		{"directory deleted by whiteout", []Layer{base, {Whiteout("d/sub")}}, 12},
		{"hidden by opaque directory", []Layer{base, {Dir("d", 0o755), Opaque("d"), File("d/a", "")}}, 4 + 8 + 12},
		{"ancestor replaced by a file", []Layer{base, {File("d/sub", "x")}}, 12},
		{"ancestor replaced by a symlink two layers up", []Layer{base, {File("d/b", "B")}, {Symlink("d", "elsewhere")}}, 4 + 12 + 8 + 1},
		{"hard link entries carry no bytes", []Layer{{File("a", "123"), Hardlink("b", "a")}, {Whiteout("b")}}, 0},
		{"a file counts even when a hard link keeps its content", []Layer{{File("a", "123"), Hardlink("b", "a")}, {Whiteout("a")}}, 3},
		{"empty files count zero", []Layer{{File("e", "")}, {Whiteout("e")}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := WastedBytes(tars(tc.layers...)...)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("WastedBytes = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestTreeAccessors(t *testing.T) {
	tree, err := Apply(Layer{
		Dir("etc", 0o755),
		File("etc/f", "hello", Xattr("user.a", "1")),
		Symlink("l", "etc/f"),
		Char("c", 4, 5),
		Hardlink("h", "etc/f"),
	}.Tar())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tree.Len(), 5; got != want {
		t.Errorf("Len = %d, want %d", got, want)
	}
	for _, p := range []string{"etc/f", "/etc/f", "./etc//f", "etc/f/"} {
		if _, ok := tree.Get(p); !ok {
			t.Errorf("Get(%q) found nothing", p)
		}
	}
	if _, ok := tree.Get("../etc/f"); ok {
		t.Error(`Get("../etc/f") found a node`)
	}
	// Get returns copies.
	n, _ := tree.Get("etc/f")
	n.Xattrs["user.a"] = "changed"
	if n2, _ := tree.Get("etc/f"); n2.Xattrs["user.a"] != "1" {
		t.Error("changing a returned node changed the tree")
	}
	if diff := cmp.Diff([]string{"c", "etc", "etc/f", "h", "l"}, tree.Paths()); diff != "" {
		t.Errorf("Paths (-want +got):\n%s", diff)
	}
	want := "c char 0666 0:0 4,5\n" +
		"etc dir 0755 0:0\n" +
		"etc/f file 0644 0:0 5 " + digestOf("hello") + ` user.a="1"` + "\n" +
		"h file 0644 0:0 5 " + digestOf("hello") + ` -> etc/f user.a="1"` + "\n" +
		"l symlink 0777 0:0 -> etc/f\n"
	if diff := cmp.Diff(want, tree.String()); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
}

func TestDiff(t *testing.T) {
	a, err := Apply(Layer{File("f", "1"), File("g", "2")}.Tar())
	if err != nil {
		t.Fatal(err)
	}
	// Same filesystem, other origins.
	b, err := Apply(Layer{File("g", "2")}.Tar(), Layer{File("f", "1")}.Tar())
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(a, b); d != "" {
		t.Errorf("Diff of equal filesystems:\n%s", d)
	}
	c, err := Apply(Layer{File("f", "1"), File("g", "2", Mode(0o600))}.Tar())
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(a, c); !strings.Contains(d, "Mode") {
		t.Errorf("Diff does not report the mode change:\n%s", d)
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{
		TypeFile: "file", TypeDir: "dir", TypeSymlink: "symlink", TypeChar: "char",
		TypeBlock: "block", TypeFIFO: "fifo", Type(tar.TypeCont): `type('7')`,
	} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%q).String() = %q, want %q", byte(typ), got, want)
		}
	}
}

// rawTarBlock returns one 512-byte ustar header block.
func rawTarBlock(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:], name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	copy(b[257:], "ustar\x0000")
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func TestApplySparseEntry(t *testing.T) {
	// A PAX 0.1 sparse file: 1 TiB of holes around one empty data block,
	// which tar.Writer cannot write. The check must fire before reading.
	var records string
	for _, kv := range []string{"GNU.sparse.size=1099511627776", "GNU.sparse.numblocks=1", "GNU.sparse.map=0,0"} {
		n := len(kv) + 2
		n += len(fmt.Sprint(n + len(fmt.Sprint(n)))) // "NN key=value\n"
		records += fmt.Sprintf("%d %s\n", n, kv)
	}
	var b bytes.Buffer
	b.Write(rawTarBlock("PaxHeaders/huge", tar.TypeXHeader, int64(len(records))))
	b.WriteString(records)
	b.Write(make([]byte, 512-len(records)%512))
	b.Write(rawTarBlock("huge", tar.TypeReg, 0))
	b.Write(make([]byte, 1024))

	h, err := tar.NewReader(bytes.NewReader(b.Bytes())).Next()
	if err != nil || h.Size != 1<<40 || !isSparse(h) {
		t.Fatalf("hand-made sparse entry reads as %+v, %v", h, err)
	}
	_, err = Apply(b.Bytes())
	if !errors.Is(err, ErrBadLayer) || !strings.Contains(err.Error(), "sparse files are not supported") {
		t.Errorf("Apply = %v", err)
	}
}
