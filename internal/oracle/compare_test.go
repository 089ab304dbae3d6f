package oracle_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/coldstart-dev/coldstart/internal/oracle"
	ti "github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/google/go-cmp/cmp"
)

func short(content string) string { return oracle.Digest(sha256.Sum256([]byte(content))).Short() }

// compareBase is the filesystem the cases of TestCompare change.
func compareBase() ti.Layer {
	return ti.Layer{
		ti.Dir("d", 0o755),
		ti.File("d/f", "AAAA"),
		ti.Symlink("s", "d"),
		ti.Char("c", 1, 3),
		ti.File("x", "X", ti.Xattr("user.a", "1")),
		ti.File("g", "G"),
		ti.Hardlink("h", "g"),
		ti.File("k", "K"),
	}
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(ti.Layer) ti.Layer
		opts   []oracle.CompareOption
		want   []string
	}{
		{"equal", func(l ti.Layer) ti.Layer { return l }, nil, nil},
		{"content", set(1, ti.File("d/f", "BBBBBB")), nil, []string{
			"/d/f: content " + short("AAAA") + " (4 bytes), target has " + short("BBBBBB") + " (6 bytes)",
		}},
		{"mode", set(1, ti.File("d/f", "AAAA", ti.Mode(0o4755))), nil, []string{"/d/f: mode 0644, target has 4755"}},
		{"owner", set(1, ti.File("d/f", "AAAA", ti.Owner(1, 2))), nil, []string{"/d/f: owner 0:0, target has 1:2"}},
		{"mtime", set(1, ti.File("d/f", "AAAA", ti.MTime(T2))), nil, []string{
			"/d/f: mtime 2024-01-01T00:00:00Z, target has 2025-02-02T00:00:00Z",
		}},
		{"mtime ignored", set(1, ti.File("d/f", "AAAA", ti.MTime(T2))), []oracle.CompareOption{oracle.IgnoreMTime()}, nil},
		{"symlink target", set(2, ti.Symlink("s", "d/f")), nil, []string{`/s: target "d", target has "d/f"`}},
		{"device", set(3, ti.Char("c", 1, 5)), nil, []string{"/c: device 1,3, target has 1,5"}},
		{"xattrs", set(4, ti.File("x", "X", ti.Xattr("user.a", "2"), ti.Xattr("user.b", ""))), nil, []string{
			`/x: xattrs {user.a="1"}, target has {user.a="2" user.b=""}`,
		}},
		{"type", set(7, ti.Symlink("k", "g")), nil, []string{"/k: type file, 1 bytes, target has symlink -> g"}},
		{"missing and extra", set(7, ti.File("k2", "K")), nil, []string{
			"/k: missing from target (file, 1 bytes in source)",
			"/k2: only in target (file, 1 bytes)",
		}},
		{"hard links", set(6, ti.File("h", "G")), nil, []string{
			"/g: hard links with /h in source, none (a separate inode) in target",
			"/h: hard links with /g in source, none (a separate inode) in target",
		}},
		{"hard links, other side", set(7, ti.Hardlink("k", "d/f")), nil, []string{
			"/d/f: hard links none (a separate inode) in source, with /k in target",
			"/k: content " + short("K") + " (1 bytes), target has " + short("AAAA") + " (4 bytes)",
			"/k: hard links none (a separate inode) in source, with /d/f in target",
		}},
		{"ignored root names", func(l ti.Layer) ti.Layer {
			return append(l, ti.File("stargz.index.json", "{}"), ti.File(".prefetch.landmark", "\x0f"))
		}, []oracle.CompareOption{oracle.IgnoreRootNames(oracle.LazyOnlyNames...)}, nil},
		{"sides", set(1, ti.File("d/f", "AAAA", ti.Mode(0o600))), []oracle.CompareOption{oracle.Sides("tar", "lazy")}, []string{
			"/d/f: mode 0644, lazy has 0600",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := mustApply(t, compareBase())
			got := mustApply(t, tc.change(compareBase()))
			c := oracle.Compare(want, got, tc.opts...)
			var msgs []string
			for _, d := range c.Differences {
				msgs = append(msgs, d.String())
			}
			if diff := cmp.Diff(tc.want, msgs); diff != "" {
				t.Errorf("differences (-want +got):\n%s", diff)
			}
			if c.Equal() != (len(tc.want) == 0) || c.Total != len(tc.want) {
				t.Errorf("Equal %v, Total %d, for %d differences", c.Equal(), c.Total, len(tc.want))
			}
		})
	}
}

// set returns a change that replaces entry i.
func set(i int, e ti.Entry) func(ti.Layer) ti.Layer {
	return func(l ti.Layer) ti.Layer {
		l[i] = e
		return l
	}
}

func TestCompareCapAndOrder(t *testing.T) {
	var a, b ti.Layer
	for i := range 30 {
		name := string(rune('a'+i%26)) + strings.Repeat("z", i/26)
		a = append(a, ti.File(name, "x"))
		b = append(b, ti.File(name, "y"))
	}
	want, got := mustApply(t, a), mustApply(t, b)
	c := oracle.Compare(want, got, oracle.MaxDifferences(3))
	if c.Total != 30 || len(c.Differences) != 3 || c.Paths != 30 {
		t.Fatalf("Total %d, listed %d, paths %d", c.Total, len(c.Differences), c.Paths)
	}
	var paths []string
	for _, d := range c.Differences {
		paths = append(paths, d.Path)
	}
	if diff := cmp.Diff([]string{"a", "az", "b"}, paths); diff != "" {
		t.Errorf("first differences (-want +got):\n%s", diff)
	}
	if !strings.HasSuffix(c.String(), "... and 27 more differences\n") {
		t.Errorf("String() = %q", c.String())
	}
	// Tree order: a directory's children come before a sibling whose
	// name extends the directory's name.
	c = oracle.Compare(mustApply(t, ti.Layer{ti.File("a.b", "1"), ti.File("a/b", "1")}), mustApply(t, ti.Layer{ti.File("a.b", "2"), ti.File("a/b", "2")}))
	if len(c.Differences) != 2 || c.Differences[0].Path != "a/b" || c.Differences[1].Path != "a.b" {
		t.Errorf("order: %v", c.Differences)
	}
}
