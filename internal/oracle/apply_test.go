package oracle_test

import (
	"archive/tar"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coldstart-dev/coldstart/internal/oracle"
	ti "github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/google/go-cmp/cmp"
)

type N = oracle.NoteKind

// T2 and T3 are entry times other than ti.Epoch.
var (
	T2 = time.Date(2025, 2, 2, 0, 0, 0, 0, time.UTC)
	T3 = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
)

func TestApply(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers []ti.Layer
		want   string
		err    string
		notes  []oracle.NoteKind
	}{
		// The hard-link rules: a link shares the inode its target has
		// when the link applies; what happens to the target's path later
		// does not change the link.
		{
			name: "cross-layer link, then whiteout of the target",
			layers: []ti.Layer{
				{ti.Dir("d", 0o755), ti.File("d/f", "A", ti.Mode(0o640), ti.Owner(1, 2))},
				{ti.Hardlink("h", "d/f", ti.Mode(0o640), ti.Owner(1, 2))},
				{ti.Whiteout("d/f")},
			},
			want: lines(
				`d dir 0755 0:0 mtime=?`,
				`h file 0640 1:2 "A"`,
			),
			notes: []N{oracle.NoteCrossLayerLink},
		},
		{
			name: "cross-layer link, then whiteout of the target's parent",
			layers: []ti.Layer{
				{ti.Dir("d", 0o755), ti.File("d/f", "A")},
				{ti.Hardlink("h", "d/f")},
				{ti.Whiteout("d")},
			},
			want:  lines(`h file 0644 0:0 "A"`),
			notes: []N{oracle.NoteCrossLayerLink},
		},
		{
			name: "cross-layer link, then the target's parent made opaque",
			layers: []ti.Layer{
				{ti.Dir("d", 0o755), ti.File("d/f", "A"), ti.File("d/g", "G")},
				{ti.Hardlink("h", "d/f")},
				{ti.Dir("d", 0o700), ti.Opaque("d"), ti.File("d/new", "N")},
			},
			want: lines(
				`d dir 0700 0:0`,
				`d/new file 0644 0:0 "N"`,
				`h file 0644 0:0 "A"`,
			),
			notes: []N{oracle.NoteCrossLayerLink},
		},
		{
			name: "a chain of links across layers shares one inode",
			layers: []ti.Layer{
				{ti.File("f", "A")},
				{ti.Hardlink("h1", "f")},
				{ti.Hardlink("h2", "h1")},
			},
			want: lines(
				`f file 0644 0:0 "A" ino=1`,
				`h1 file 0644 0:0 "A" ino=1`,
				`h2 file 0644 0:0 "A" ino=1`,
			),
			notes: []N{oracle.NoteCrossLayerLink},
		},
		{
			name: "a chain of links outlives every earlier name",
			layers: []ti.Layer{
				{ti.File("f", "A")},
				{ti.Hardlink("h1", "f")},
				{ti.Hardlink("h2", "h1")},
				{ti.Whiteout("f"), ti.Whiteout("h1")},
			},
			want:  lines(`h2 file 0644 0:0 "A"`),
			notes: []N{oracle.NoteCrossLayerLink},
		},
		{
			name: "replacing the target makes a new inode; the link keeps the old one",
			layers: []ti.Layer{
				{ti.File("f", "A"), ti.Hardlink("h", "f")},
				{ti.File("f", "B", ti.Mode(0o600))},
			},
			want: lines(
				`f file 0600 0:0 "B"`,
				`h file 0644 0:0 "A"`,
			),
		},
		{
			name: "a name twice in one layer with a link to the first copy in between",
			layers: []ti.Layer{
				{ti.File("f", "one"), ti.Hardlink("h", "f"), ti.File("f", "two")},
			},
			want: lines(
				`f file 0644 0:0 "two"`,
				`h file 0644 0:0 "one"`,
			),
		},
		{
			name: "the link header's mode, owner, mtime and xattrs apply to the shared inode",
			layers: []ti.Layer{
				{ti.File("f", "A", ti.Mode(0o755), ti.Owner(1000, 1000), ti.Xattr("user.a", "1"))},
				{ti.Hardlink("h", "f", ti.Mode(0o600), ti.MTime(T2), ti.Xattr("user.b", "2"))},
			},
			want: lines(
				`f file 0600 0:0 "A" user.a=1 user.b=2 mtime=2025-02-02T00:00:00Z ino=1`,
				`h file 0600 0:0 "A" user.a=1 user.b=2 mtime=2025-02-02T00:00:00Z ino=1`,
			),
			notes: []N{oracle.NoteCrossLayerLink, oracle.NoteLinkMetadata},
		},
		{
			name: "a link to a symlink shares the symlink",
			layers: []ti.Layer{
				{ti.Symlink("s", "nowhere"), ti.Hardlink("h", "s", ti.Mode(0o777))},
			},
			want: lines(
				`h symlink 0777 0:0 -> nowhere ino=1`,
				`s symlink 0777 0:0 -> nowhere ino=1`,
			),
		},
		{
			name:   "a link to a missing path fails",
			layers: []ti.Layer{{ti.File("f", "A")}, {ti.Hardlink("h", "g")}},
			err:    "layer 1 entry 0 (h): hard link target /g does not exist",
		},
		{
			name:   "a link to a directory fails",
			layers: []ti.Layer{{ti.Dir("d", 0o755), ti.Hardlink("h", "d")}},
			err:    "hard link target /d is a directory",
		},
		{
			name:   "a link to the root fails",
			layers: []ti.Layer{{ti.Hardlink("h", "./")}},
			err:    "hard link to the root directory",
		},
		{
			name:   "a link to itself fails: the path is removed before the link is made",
			layers: []ti.Layer{{ti.File("f", "A")}, {ti.Hardlink("f", "f")}},
			err:    "hard link target /f does not exist",
		},
		// Whiteouts apply to the layers below only, wherever they are in
		// the tar.
		{
			name: "a whiteout after a same-layer entry of that name keeps the entry",
			layers: []ti.Layer{
				{ti.File("f", "A")},
				{ti.File("f", "B"), ti.Whiteout("f")},
			},
			want:  lines(`f file 0644 0:0 "B"`),
			notes: []N{oracle.NoteSameLayerWhiteout},
		},
		{
			name: "a whiteout before a same-layer entry of that name",
			layers: []ti.Layer{
				{ti.Dir("d", 0o755), ti.File("d/old", "A")},
				{ti.Whiteout("d"), ti.Dir("d", 0o700), ti.File("d/new", "B")},
			},
			want: lines(
				`d dir 0700 0:0`,
				`d/new file 0644 0:0 "B"`,
			),
			notes: []N{oracle.NoteSameLayerWhiteout},
		},
		{
			name: "a link placed before a same-layer whiteout of its target keeps the content",
			layers: []ti.Layer{
				{ti.File("f", "A")},
				{ti.Hardlink("h", "f"), ti.Whiteout("f")},
			},
			want:  lines(`h file 0644 0:0 "A"`),
			notes: []N{oracle.NoteCrossLayerLink},
		},
		{
			name: "a link placed before a same-layer whiteout of its target's parent keeps the content",
			layers: []ti.Layer{
				{ti.Dir("d", 0o755), ti.File("d/f", "A")},
				{ti.Dir("d", 0o755), ti.Hardlink("h", "d/f"), ti.Whiteout("d")},
			},
			want: lines(
				`d dir 0755 0:0`,
				`h file 0644 0:0 "A"`,
			),
			notes: []N{oracle.NoteCrossLayerLink, oracle.NoteSameLayerWhiteout},
		},
		{
			name: "a link placed after a same-layer whiteout of its target fails",
			layers: []ti.Layer{
				{ti.File("f", "A")},
				{ti.Whiteout("f"), ti.Hardlink("h", "f")},
			},
			err: "hard link target /f does not exist",
		},
		{
			name: "a link to a lower file that an earlier same-layer file replaced gets the new file",
			layers: []ti.Layer{
				{ti.File("f", "A")},
				{ti.File("f", "B"), ti.Hardlink("h", "f"), ti.Whiteout("f")},
			},
			want: lines(
				`f file 0644 0:0 "B" ino=1`,
				`h file 0644 0:0 "B" ino=1`,
			),
			notes: []N{oracle.NoteSameLayerWhiteout},
		},
		{
			name: "an opaque marker hides the lower children, not the layer's own",
			layers: []ti.Layer{
				{ti.Dir("d", 0o755), ti.File("d/a", "A"), ti.Dir("d/sub", 0o755), ti.File("d/sub/x", "X")},
				{ti.Dir("d", 0o755), ti.File("d/b", "B"), ti.Opaque("d")},
			},
			want: lines(
				`d dir 0755 0:0`,
				`d/b file 0644 0:0 "B"`,
			),
		},
		{
			name: "a whiteout of a missing path deletes nothing but makes its directory",
			layers: []ti.Layer{
				{ti.File("f", "A")},
				{ti.Whiteout("x/y/z")},
			},
			want: lines(
				`f file 0644 0:0 "A"`,
				`x dir 0755 0:0 mtime=?`,
				`x/y dir 0755 0:0 mtime=?`,
			),
		},
		{
			name: "other .wh..wh. names are ignored",
			layers: []ti.Layer{
				{ti.File("f", "A")},
				{ti.File(".wh..wh.plnk", ""), ti.File(".wh..wh.f", "")},
			},
			want: lines(`f file 0644 0:0 "A"`),
		},
		// Replacement.
		{
			name: "a file replaces a directory and its subtree, and a directory the file",
			layers: []ti.Layer{
				{ti.Dir("d", 0o755), ti.File("d/x", "X")},
				{ti.File("d", "F")},
				{ti.Dir("d", 0o750), ti.File("d/y", "Y")},
			},
			want: lines(
				`d dir 0750 0:0`,
				`d/y file 0644 0:0 "Y"`,
			),
		},
		{
			name: "file over directory and back within one layer",
			layers: []ti.Layer{
				{ti.Dir("d", 0o755), ti.File("d/x", "X"), ti.File("d", "F"), ti.Dir("d", 0o750), ti.File("d/y", "Y")},
			},
			want: lines(
				`d dir 0750 0:0`,
				`d/y file 0644 0:0 "Y"`,
			),
		},
		{
			name: "a directory over a directory changes its metadata and keeps its children and xattrs",
			layers: []ti.Layer{
				{ti.Dir("d", 0o755, ti.Xattr("user.old", "1")), ti.File("d/x", "X")},
				{ti.Dir("d", 0o700, ti.Owner(5, 5), ti.Xattr("user.new", "2"), ti.MTime(T2))},
			},
			want: lines(
				`d dir 0700 5:5 user.new=2 user.old=1 mtime=2025-02-02T00:00:00Z`,
				`d/x file 0644 0:0 "X"`,
			),
		},
		{
			name: "the later of two entries of one name in one layer wins",
			layers: []ti.Layer{
				{ti.File("f", "one"), ti.File("f", "two", ti.Mode(0o600)), ti.File("g", "G"), ti.Symlink("g", "f")},
			},
			want: lines(
				`f file 0600 0:0 "two"`,
				`g symlink 0777 0:0 -> f`,
			),
		},
		{
			name:   "missing parents are made 0755 root:root with an unknown mtime",
			layers: []ti.Layer{{ti.File("a/b/c", "C", ti.Owner(7, 7))}},
			want: lines(
				`a dir 0755 0:0 mtime=?`,
				`a/b dir 0755 0:0 mtime=?`,
				`a/b/c file 0644 7:7 "C"`,
			),
		},
		{
			name:   "a parent that is a file fails",
			layers: []ti.Layer{{ti.File("a", "A")}, {ti.File("a/b", "B")}},
			err:    "layer 1 entry 0 (a/b): parent /a is a file, not a directory",
		},
		{
			name:   "a root entry is ignored",
			layers: []ti.Layer{{ti.Dir("./", 0o700, ti.Owner(1, 1)), ti.File("f", "A")}},
			want:   lines(`f file 0644 0:0 "A"`),
			notes:  []N{oracle.NoteRootEntry},
		},
		{
			name: "absolute and ./ names are taken from the root; a/../b is b",
			layers: []ti.Layer{
				{ti.Dir("/etc", 0o755), ti.File("/etc/passwd", "P"), ti.File("./etc/./group", "G"), ti.File("x/../y", "Y")},
			},
			want: lines(
				`etc dir 0755 0:0`,
				`etc/group file 0644 0:0 "G"`,
				`etc/passwd file 0644 0:0 "P"`,
				`y file 0644 0:0 "Y"`,
			),
		},
		// Symlinks in parent paths are followed, inside the root.
		{
			name: "an entry below a symlinked directory lands in the target",
			layers: []ti.Layer{
				{ti.Dir("usr", 0o755), ti.Dir("usr/lib", 0o755), ti.Symlink("lib", "usr/lib")},
				{ti.File("lib/x", "X"), ti.Whiteout("lib/y")},
				{ti.Hardlink("h", "lib/x")},
			},
			want: lines(
				`h file 0644 0:0 "X" ino=1`,
				`lib symlink 0777 0:0 -> usr/lib`,
				`usr dir 0755 0:0`,
				`usr/lib dir 0755 0:0 mtime=?`,
				`usr/lib/x file 0644 0:0 "X" ino=1`,
			),
			notes: []N{oracle.NoteCrossLayerLink, oracle.NoteSymlinkParent},
		},
		{
			name: "absolute and climbing symlink targets stay inside the root",
			layers: []ti.Layer{
				{ti.Dir("real", 0o755), ti.Symlink("abs", "/real"), ti.Dir("d", 0o755), ti.Symlink("d/up", "../../../real")},
				{ti.File("abs/a", "A"), ti.File("d/up/b", "B")},
			},
			want: lines(
				`abs symlink 0777 0:0 -> /real`,
				`d dir 0755 0:0`,
				`d/up symlink 0777 0:0 -> ../../../real`,
				`real dir 0755 0:0 mtime=?`,
				`real/a file 0644 0:0 "A"`,
				`real/b file 0644 0:0 "B"`,
			),
			notes: []N{oracle.NoteSymlinkParent},
		},
		{
			name:   "a symlink loop fails",
			layers: []ti.Layer{{ti.Symlink("a", "b"), ti.Symlink("b", "a"), ti.File("a/x", "X")}},
			err:    "too many levels of symlinks",
		},
		// Metadata.
		{
			name: "xattrs: trusted.* are never set, user.* only on files and directories",
			layers: []ti.Layer{{
				ti.File("f", "A", ti.Xattr("user.a", "1"), ti.Xattr("trusted.t", "2"), ti.Xattr("security.capability", "3")),
				ti.Symlink("s", "f", ti.Xattr("user.a", "1"), ti.Xattr("security.selinux", "x")),
				ti.FIFO("p", ti.Xattr("user.a", "1")),
			}},
			want: lines(
				`f file 0644 0:0 "A" security.capability=3 user.a=1`,
				`p fifo 0644 0:0`,
				`s symlink 0777 0:0 -> f security.selinux=x`,
			),
			notes: []N{oracle.NoteXattrDropped},
		},
		{
			name: "symlinks are 0777 whatever the header says; setuid, setgid and sticky bits are kept",
			layers: []ti.Layer{{
				ti.Symlink("s", "x", ti.Mode(0o755)),
				ti.File("su", "", ti.Mode(0o4755)),
				ti.Dir("tmp", 0o1777),
				ti.Dir("sg", 0o2775),
			}},
			want: lines(
				`s symlink 0777 0:0 -> x`,
				`sg dir 2775 0:0`,
				`su file 4755 0:0 ""`,
				`tmp dir 1777 0:0`,
			),
		},
		{
			name: "devices and fifos",
			layers: []ti.Layer{{
				ti.Char("null", 1, 3), ti.Block("sda", 8, 0), ti.FIFO("fifo"),
			}},
			want: lines(
				`fifo fifo 0644 0:0`,
				`null char 0666 0:0 dev 1,3`,
				`sda block 0660 0:0 dev 8,0`,
			),
		},
		{
			name:   "a device number out of range fails",
			layers: []ti.Layer{{ti.Char("c", 1<<33, 0)}},
			err:    "device number 8589934592:0 out of range",
		},
		{
			name: "directory mtimes: set by the layer's directory entries, unknown once a later layer changes the children",
			layers: []ti.Layer{
				{ti.Dir("a", 0o755, ti.MTime(T2)), ti.File("a/x", "X"), ti.Dir("b", 0o755, ti.MTime(T2)), ti.File("b/x", "X"), ti.Dir("c", 0o755, ti.MTime(T2))},
				{ti.File("a/y", "Y"), ti.Whiteout("b/x"), ti.File("b/z", "Z"), ti.Dir("b", 0o755, ti.MTime(T3)), ti.Whiteout("c/none")},
			},
			want: lines(
				`a dir 0755 0:0 mtime=?`,
				`a/x file 0644 0:0 "X"`,
				`a/y file 0644 0:0 "Y"`,
				`b dir 0755 0:0 mtime=2025-03-03T00:00:00Z`,
				`b/z file 0644 0:0 "Z"`,
				`c dir 0755 0:0 mtime=2025-02-02T00:00:00Z`,
			),
		},
		{
			name: "a time before 1970 becomes the epoch",
			layers: []ti.Layer{{
				ti.File("old", "", ti.MTime(time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC))),
			}},
			want: lines(`old file 0644 0:0 "" mtime=1970-01-01T00:00:00Z`),
		},
		{
			name: "nanosecond mtimes from PAX records",
			layers: []ti.Layer{{
				ti.Raw(tar.Header{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644, ModTime: time.Unix(1700000000, 123456789), Format: tar.FormatPAX}, nil),
			}},
			want: lines(`f file 0644 0:0 "" mtime=2023-11-14T22:13:20.123456789Z`),
		},
		// Tar formats.
		{
			name: "a PAX global header is metadata, not a file",
			layers: []ti.Layer{{
				ti.Raw(tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "0123abcd"}}, nil),
				ti.File("f", "A"),
			}},
			want: lines(`f file 0644 0:0 "A"`),
		},
		{
			name: "a PAX global header removes what its name names, as containerd's applier does",
			layers: []ti.Layer{
				{ti.File("pax_global_header", "A"), ti.File("f", "F")},
				{ti.Raw(tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "x"}}, nil)},
			},
			want:  lines(`f file 0644 0:0 "F"`),
			notes: []N{oracle.NoteGlobalHeader},
		},
		{
			name: "long names, PAX and GNU",
			layers: []ti.Layer{{
				ti.File(strings.Repeat("p", 120)+"/f", "P"),
				ti.Raw(tar.Header{Typeflag: tar.TypeReg, Name: strings.Repeat("g", 150), Mode: 0o600, ModTime: ti.Epoch, Format: tar.FormatGNU}, nil),
				ti.Raw(tar.Header{Typeflag: tar.TypeSymlink, Name: "gl", Linkname: strings.Repeat("t", 150), Mode: 0o777, ModTime: ti.Epoch, Format: tar.FormatGNU}, nil),
				ti.Hardlink("hl", strings.Repeat("p", 120)+"/f"),
			}},
			want: lines(
				strings.Repeat("g", 150)+` file 0600 0:0 ""`,
				`gl symlink 0777 0:0 -> `+strings.Repeat("t", 150),
				`hl file 0644 0:0 "P" ino=1`,
				strings.Repeat("p", 120)+` dir 0755 0:0 mtime=?`,
				strings.Repeat("p", 120)+`/f file 0644 0:0 "P" ino=1`,
			),
		},
		{
			name:   "an old GNU sparse entry is not applied",
			layers: []ti.Layer{{ti.Raw(tar.Header{Typeflag: tar.TypeGNUSparse, Name: "s", Mode: 0o644, Format: tar.FormatGNU}, nil)}},
			err:    `unhandled tar header type 'S'`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := oracle.Apply(readLayers(t, tc.layers...)...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, oracle.ErrApply) {
					t.Fatalf("got error %v, want one wrapping ErrApply with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, render(fs, contentsOf(tc.layers...))); diff != "" {
				t.Errorf("filesystem (-want +got):\n%s", diff)
			}
			got := noteKinds(fs)
			want := slices.Clone(tc.notes)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				notes, _ := fs.Notes()
				t.Errorf("note kinds (-want +got):\n%s\nnotes: %v", diff, notes)
			}
		})
	}
}
