package testimage

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/klauspost/compress/zstd"
)

// Regenerate the committed fixtures with:
//
//	go test ./internal/testimage -run TestFixtures -update
var update = flag.Bool("update", false, "rewrite the fixtures in testdata/")

const fixtureDir = "../../testdata"

// pseudo returns n deterministic pseudo-random bytes.
func pseudo(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return string(b)
}

var fixtureBase = Layer{
	Dir("etc", 0o755),
	File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
	File("etc/group", "root:x:0:\n"),
	File("etc/hostname", "base\n"),
	Dir("usr", 0o755),
	Dir("usr/bin", 0o755),
	File("usr/bin/tool", "#!/bin/sh\necho tool\n", Mode(0o755)),
	Dir("usr/lib", 0o755),
	File("usr/lib/libfoo.so.1", pseudo(1, 1024), Mode(0o755)),
	Symlink("bin", "usr/bin"),
	Symlink("lib", "usr/lib"),
	Dir("tmp", 0o1777),
	Dir("var", 0o755),
	Dir("var/cache", 0o755),
	Dir("var/cache/apt", 0o755),
	File("var/cache/apt/pkgcache.bin", pseudo(2, 512)),
	Dir("var/cache/apt/archives", 0o755),
	File("var/cache/apt/archives/foo.deb", pseudo(3, 512)),
	Dir("app", 0o755),
	File("app/data.txt", "data\n"),
	Dir("app/old", 0o755),
	File("app/old/x", "x\n"),
}

// fixtures returns every committed fixture by file name.
func fixtures(t *testing.T) map[string][]byte {
	t.Helper()
	baseTar := fixtureBase.Tar()
	// Cut 300 bytes into the content of usr/lib/libfoo.so.1 (entry 8):
	// the entries before it, without the 1024-byte end marker, then its
	// 512-byte header.
	cut := len(fixtureBase[:8].Tar()) - 1024 + 512 + 300
	gz, err := Compress(baseTar, compression.GZip)
	if err != nil {
		t.Fatal(err)
	}
	// Flip the CRC-32 in the gzip trailer: the stream inflates, then fails.
	gz[len(gz)-8] ^= 0xff
	zst, err := Compress(baseTar, compression.ZStd)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"base.tar": baseTar,
		"whiteout.tar": Layer{
			Dir("etc", 0o755),
			Whiteout("etc/hostname"),
			Dir("app", 0o755),
			Whiteout("app/old"),
		}.Tar(),
		"opaque.tar": Layer{
			Dir("var", 0o755),
			Dir("var/cache", 0o755),
			Opaque("var/cache"),
			File("var/cache/fresh", "fresh\n"),
		}.Tar(),
		"hardlink.tar": Layer{
			File("usr/bin/busybox", pseudo(4, 3000), Mode(0o755)),
			Hardlink("usr/bin/sh", "usr/bin/busybox"),
			Hardlink("usr/bin/ls", "./usr/bin/busybox"),
		}.Tar(WithParents()),
		"symlink.tar": Layer{
			File("usr/lib/libz.so.1.3", pseudo(5, 1500), Mode(0o755)),
			Symlink("usr/lib/libz.so.1", "libz.so.1.3"),
			Symlink("usr/lib/libz.so", "/usr/lib/libz.so.1"),
			Symlink("usr/lib/up", "../lib"),
			Symlink("lib", "usr/lib"),
			Symlink("dangling", "does/not/exist"),
		}.Tar(WithParents()),
		"overwrite.tar": Layer{
			Dir("etc", 0o755),
			File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n"),
			Dir("usr", 0o755),
			Dir("usr/bin", 0o755),
			File("usr/bin/tool", "#!/bin/sh\necho tool\n", Mode(0o755)),
		}.Tar(),
		"chmod.tar": Layer{
			Dir("etc", 0o755),
			File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", Owner(0, 42)),
			Dir("usr", 0o755),
			Dir("usr/bin", 0o755),
			File("usr/bin/tool", "#!/bin/sh\necho tool\n", Mode(0o4755)),
			Dir("app", 0o775),
		}.Tar(),
		"dir-to-file.tar": Layer{
			Dir("app", 0o755),
			Whiteout("app/old"),
			File("app/old", "now a file\n"),
		}.Tar(),
		"file-to-dir.tar": Layer{
			Dir("app", 0o755),
			Whiteout("app/data.txt"),
			Dir("app/data.txt", 0o755),
			File("app/data.txt/part1", "part one\n"),
		}.Tar(),
		"duplicate.tar": Layer{
			Dir("d", 0o755),
			File("d/f", "first\n"),
			File("d/f", "second\n", Mode(0o600)),
			Dir("d", 0o700),
			File("d/g", "a file first\n"),
			Symlink("d/g", "f"),
		}.Tar(),
		"dotslash.tar": Layer{
			Dir("./", 0o755),
			Dir("./etc", 0o755),
			File("./etc/motd", "hello\n"),
			Symlink("./etc/link", "motd"),
			Hardlink("./etc/hard", "./etc/motd"),
			Whiteout("./etc/gone"),
		}.Tar(),
		"special.tar": Layer{
			Char("dev/null", 1, 3),
			Block("dev/loop0", 7, 0),
			FIFO("dev/initctl", Mode(0o600)),
			File("usr/bin/ping", pseudo(6, 800), Mode(0o4755), Xattr("security.capability", "\x01\x00\x00\x02\x00\x20\x00\x00")),
			File("etc/shadow", "root:*:19000:0:99999:7:::\n", Mode(0o640), Owner(0, 42), Xattr("user.comment", "secret")),
			Dir("tmp", 0o1777),
		}.Tar(WithParents()),
		"bad-dotdot.tar": Layer{
			File("ok", "fine\n"),
			File("../etc/passwd", "escape\n"),
		}.Tar(),
		"bad-absolute.tar": Layer{
			Dir("/etc", 0o755),
			File("/etc/passwd", "absolute\n"),
		}.Tar(),
		"bad-truncated.tar":     baseTar[:cut],
		"bad-corrupt.tar.gz":    gz,
		"bad-truncated.tar.zst": zst[:len(zst)/2],
		"bad-notatar.bin":       []byte(strings.Repeat("this is not a tar archive\n", 40)),
	}
}

// compressedFixture reports whether a fixture's bytes depend on a
// compressor's implementation, so only its behaviour is checked.
func compressedFixture(name string) bool {
	return strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".zst")
}

func TestFixtures(t *testing.T) {
	want := fixtures(t)
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		p := filepath.Join(fixtureDir, name)
		if *update {
			if err := os.WriteFile(p, want[name], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (regenerate with -update)", err)
		}
		if !compressedFixture(name) && !bytes.Equal(got, want[name]) {
			t.Errorf("%s differs from its generator (regenerate with -update)", name)
		}
		if len(got) > 20<<10 {
			t.Errorf("%s is %d bytes; fixtures stay small", name, len(got))
		}
	}

	// Every fixture file has a line in the README, and the README names no
	// missing file.
	readme, err := os.ReadFile(filepath.Join(fixtureDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	onDisk := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "README.md" {
			continue
		}
		onDisk[e.Name()] = true
		if !strings.Contains(string(readme), "`"+e.Name()+"`") {
			t.Errorf("testdata/%s has no line in testdata/README.md", e.Name())
		}
	}
	for _, n := range names {
		if !onDisk[n] && !*update {
			t.Errorf("fixture %s is missing from testdata/", n)
		}
	}
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFixturesApply(t *testing.T) {
	baseTree, err := Apply(readFixture(t, "base.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := baseTree.Len(), len(fixtureBase); got != want {
		t.Fatalf("base.tar has %d paths, want %d", got, want)
	}
	type check struct {
		path string
		want string // Tree.String line without the path; "" means absent
	}
	line := func(tree *Tree, p string) string {
		for _, l := range strings.Split(tree.String(), "\n") {
			if rest, ok := strings.CutPrefix(l, p+" "); ok {
				return rest
			}
		}
		return ""
	}
	tests := []struct {
		fixture  string
		onBase   bool
		checks   []check
		paths    int
		wasted   int64
		unchange []string // paths whose base node must be kept as is
	}{
		{"whiteout.tar", true, []check{{"etc/hostname", ""}, {"app/old", ""}, {"app/old/x", ""}}, 19, 5 + 2, []string{"etc/passwd", "app/data.txt"}},
		{"opaque.tar", true, []check{
			{"var/cache/apt", ""},
			{"var/cache/fresh", "file 0644 0:0 6 " + digestOf("fresh\n")},
		}, 19, 1024, []string{"etc/passwd"}},
		{"overwrite.tar", true, []check{
			{"etc/passwd", "file 0644 0:0 60 " + digestOf("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n")},
		}, 22, 30 + 20, []string{"etc/group"}},
		{"chmod.tar", true, []check{
			{"usr/bin/tool", "file 4755 0:0 20 " + digestOf("#!/bin/sh\necho tool\n")},
			{"etc/passwd", "file 0644 0:42 30 " + digestOf("root:x:0:0:root:/root:/bin/sh\n")},
			{"app", "dir 0775 0:0"},
		}, 22, 30 + 20, []string{"app/data.txt"}},
		{"dir-to-file.tar", true, []check{{"app/old", "file 0644 0:0 11 " + digestOf("now a file\n")}, {"app/old/x", ""}}, 21, 2, nil},
		{"file-to-dir.tar", true, []check{{"app/data.txt", "dir 0755 0:0"}, {"app/data.txt/part1", "file 0644 0:0 9 " + digestOf("part one\n")}}, 23, 5, nil},
		{"hardlink.tar", false, []check{
			{"usr/bin/sh", "file 0755 0:0 3000 " + digestOf(pseudo(4, 3000)) + " -> usr/bin/busybox"},
			{"usr/bin/ls", "file 0755 0:0 3000 " + digestOf(pseudo(4, 3000)) + " -> usr/bin/busybox"},
		}, 5, 0, nil},
		{"symlink.tar", false, []check{
			{"usr/lib/libz.so", "symlink 0777 0:0 -> /usr/lib/libz.so.1"},
			{"dangling", "symlink 0777 0:0 -> does/not/exist"},
		}, 8, 0, nil},
		{"duplicate.tar", false, []check{
			{"d", "dir 0700 0:0"},
			{"d/f", "file 0600 0:0 7 " + digestOf("second\n")},
			{"d/g", "symlink 0777 0:0 -> f"},
		}, 3, 0, nil},
		{"dotslash.tar", false, []check{
			{".", "dir 0755 0:0"},
			{"etc/hard", "file 0644 0:0 6 " + digestOf("hello\n") + " -> etc/motd"},
		}, 5, 0, nil},
		{"special.tar", false, []check{
			{"dev/null", "char 0666 0:0 1,3"},
			{"dev/loop0", "block 0660 0:0 7,0"},
			{"dev/initctl", "fifo 0600 0:0"},
			{"usr/bin/ping", "file 4755 0:0 800 " + digestOf(pseudo(6, 800)) + ` security.capability="\x01\x00\x00\x02\x00 \x00\x00"`},
			{"tmp", "dir 1777 0:0"},
		}, 10, 0, nil},
		{"bad-absolute.tar", false, []check{{"etc/passwd", "file 0644 0:0 9 " + digestOf("absolute\n")}}, 2, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			layers := [][]byte{readFixture(t, tc.fixture)}
			if tc.onBase {
				layers = append([][]byte{readFixture(t, "base.tar")}, layers...)
			}
			tree, err := Apply(layers...)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.checks {
				if got := line(tree, c.path); got != c.want {
					t.Errorf("%s: got %q, want %q", c.path, got, c.want)
				}
			}
			if tree.Len() != tc.paths {
				t.Errorf("%d paths, want %d:\n%s", tree.Len(), tc.paths, tree)
			}
			for _, p := range tc.unchange {
				want, _ := baseTree.Get(p)
				got, _ := tree.Get(p)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s changed:\n%s", p, diff)
				}
			}
			wasted, err := WastedBytes(layers...)
			if err != nil {
				t.Fatal(err)
			}
			if wasted != tc.wasted {
				t.Errorf("WastedBytes = %d, want %d", wasted, tc.wasted)
			}
		})
	}
}

func TestBadFixtures(t *testing.T) {
	for name, want := range map[string]string{
		"bad-dotdot.tar":    `entry 1: path "../etc/passwd"`,
		"bad-truncated.tar": "reading tar entry 8 (usr/lib/libfoo.so.1): unexpected EOF",
		"bad-notatar.bin":   "reading tar entry 0: archive/tar: invalid tar header",
	} {
		_, err := Apply(readFixture(t, name))
		if !errors.Is(err, ErrBadLayer) || !strings.Contains(err.Error(), want) {
			t.Errorf("Apply(%s) = %v, want ErrBadLayer and %q", name, err, want)
		}
	}

	zr, err := gzip.NewReader(bytes.NewReader(readFixture(t, "bad-corrupt.tar.gz")))
	if err != nil {
		t.Fatalf("bad-corrupt.tar.gz must have a valid gzip header: %v", err)
	}
	if _, err := io.Copy(io.Discard, zr); !errors.Is(err, gzip.ErrChecksum) {
		t.Errorf("reading bad-corrupt.tar.gz: %v, want gzip.ErrChecksum", err)
	}

	zd, err := zstd.NewReader(bytes.NewReader(readFixture(t, "bad-truncated.tar.zst")))
	if err != nil {
		t.Fatal(err)
	}
	defer zd.Close()
	if _, err := io.Copy(io.Discard, zd); err == nil {
		t.Error("reading bad-truncated.tar.zst succeeded")
	}
}
