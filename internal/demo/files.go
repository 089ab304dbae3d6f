package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"

	"github.com/coldstart-dev/coldstart/internal/testimage"
)

// kib is the unit of the synthetic files' sizes.
const kib = 1 << 10

// newRand returns a generator seeded by name, so a file's content depends
// on its name only.
func newRand(name string) *rand.Rand {
	return rand.New(rand.NewChaCha8(sha256.Sum256([]byte(name))))
}

// noise is n incompressible bytes, like a compressed archive or a binary.
func noise(name string, n int) string {
	b := make([]byte, n)
	r := rand.NewChaCha8(sha256.Sum256([]byte(name)))
	_, _ = r.Read(b) // ChaCha8.Read never fails
	return string(b)
}

// binaryish is n bytes that compress about as well as machine code and
// shared libraries (about 2.5 to 1 with gzip): incompressible runs between
// runs of two byte values.
func binaryish(name string, n int) string {
	b := make([]byte, n)
	seed := sha256.Sum256([]byte(name))
	r := rand.New(rand.NewChaCha8(seed))
	bytes := rand.NewChaCha8(sha256.Sum256(seed[:]))
	for i := 0; i < n; {
		run := min(n-i, 256+r.IntN(1024))
		chunk := b[i : i+run]
		_, _ = bytes.Read(chunk) // ChaCha8.Read never fails
		if r.IntN(5) >= 2 {
			// Keep one byte in eight, as one of two values.
			a, c := byte(r.Uint32()), byte(r.Uint32())
			for j, x := range chunk {
				if x&7 == 0 {
					chunk[j] = c
				} else {
					chunk[j] = a
				}
			}
		}
		i += run
	}
	return string(b)
}

// prose is n bytes of text (documentation, translations, source), which
// compresses about 3 to 1.
func prose(name string, n int) string {
	r := newRand(name)
	var b strings.Builder
	for b.Len() < n {
		for range 8 + r.IntN(8) {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteString(fmt.Sprintf("%d.\n", r.IntN(1000)))
	}
	return b.String()[:n]
}

var words = strings.Fields(`lib data util common core base tools dev doc bin
	runtime perl python ssl crypt zlib gnu linux debian main contrib security
	update amd64 all stable bookworm package version depends size sha256 md5sum
	description maintainer section priority optional required important standard`)

// stanzas is n bytes of Debian control-file text (Packages, status,
// InRelease), which compresses about as well as the real thing.
func stanzas(name string, n int) string {
	r := newRand(name)
	var b strings.Builder
	for b.Len() < n {
		w := func() string { return words[r.IntN(len(words))] }
		fmt.Fprintf(&b, "Package: %s-%s%d\n", w(), w(), r.IntN(40))
		fmt.Fprintf(&b, "Version: %d.%d.%d-%d\n", r.IntN(9), r.IntN(30), r.IntN(20), 1+r.IntN(5))
		fmt.Fprintf(&b, "Architecture: amd64\nMaintainer: Debian %s Team <%s@debian.org>\n", w(), w())
		fmt.Fprintf(&b, "Installed-Size: %d\nDepends: %s, %s-%s (>= %d.%d)\n", r.IntN(9000), w(), w(), w(), r.IntN(9), r.IntN(20))
		fmt.Fprintf(&b, "Description: %s %s %s %s\n", w(), w(), w(), w())
		fmt.Fprintf(&b, "SHA256: %x\n\n", r.Uint64())
	}
	return b.String()[:n]
}

// logText is n bytes of log lines.
func logText(name string, n int) string {
	r := newRand(name)
	var b strings.Builder
	for b.Len() < n {
		fmt.Fprintf(&b, "2024-01-01 00:00:%02d status unpacked %s-%s:amd64 %d.%d\n",
			r.IntN(60), words[r.IntN(len(words))], words[r.IntN(len(words))], r.IntN(9), r.IntN(30))
	}
	return b.String()[:n]
}

// pemBundle is a CA bundle of count fake certificates of size bytes each.
func pemBundle(name string, count, size int) string {
	var b strings.Builder
	for i := range count {
		b.WriteString(pemCert(fmt.Sprintf("%s#%d", name, i), size))
	}
	return b.String()
}

func pemCert(name string, size int) string {
	der := base64.StdEncoding.EncodeToString([]byte(noise(name, size*3/4)))
	var b strings.Builder
	b.WriteString("-----BEGIN CERTIFICATE-----\n")
	for len(der) > 64 {
		b.WriteString(der[:64] + "\n")
		der = der[64:]
	}
	b.WriteString(der + "\n-----END CERTIFICATE-----\n")
	return b.String()
}

// tzifUTC is a minimal valid TZif (version 1) file for UTC.
func tzifUTC() string {
	var b bytes.Buffer
	b.WriteString("TZif")
	b.Write(make([]byte, 16)) // version 1 + 15 reserved bytes
	// isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
	for _, n := range []uint32{0, 0, 0, 0, 1, 4} {
		_ = binary.Write(&b, binary.BigEndian, n)
	}
	b.Write([]byte{0, 0, 0, 0, 0, 0}) // utoff 0, isdst 0, abbreviation index 0
	b.WriteString("UTC\x00")
	return b.String()
}

// walkLess orders paths the way a directory walk emits them: component by
// component, so "a/x" comes before "a-b".
func walkLess(a, b string) int {
	return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
}

// sortWalk sorts a layer's entries in walk order of their cleaned names.
func sortWalk(l testimage.Layer) testimage.Layer {
	l = slices.Clone(l)
	slices.SortStableFunc(l, func(a, b testimage.Entry) int {
		return walkLess(path.Clean(a.Header.Name), path.Clean(b.Header.Name))
	})
	return l
}

const (
	appMode    = 0o755
	configJSON = `{"greeting": "hello from the coldstart demo", "addr": ":8080"}` + "\n"
	indexHTML  = "<!doctype html>\n<title>coldstart demo</title>\n<p>hello from the coldstart demo</p>\n"
)

var aptLists = []struct {
	name string
	text bool
	size int
}{
	{"deb.debian.org_debian_dists_bookworm_InRelease", true, 48 * kib},
	{"deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4", false, 160 * kib},
	{"deb.debian.org_debian_dists_bookworm-updates_InRelease", true, 16 * kib},
	{"deb.debian.org_debian-security_dists_bookworm-security_InRelease", true, 16 * kib},
	{"deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages.lz4", false, 48 * kib},
}

var aptCaches = []struct {
	name string
	size int
}{
	{"var/cache/apt/pkgcache.bin", 96 * kib},
	{"var/cache/apt/srcpkgcache.bin", 96 * kib},
	{"var/cache/apt/archives/ca-certificates_20230311_all.deb", 40 * kib},
	{"var/cache/apt/archives/tzdata_2024a-0+deb12u1_all.deb", 64 * kib},
}

var mozillaCerts = []string{
	"ISRG_Root_X1", "DigiCert_Global_Root_G2", "GlobalSign_Root_CA", "Amazon_Root_CA_1",
}

// debianPackages name the packages whose files fill the base: a
// minimal Debian has about this many.
var debianPackages = strings.Fields(`adduser apt base-files base-passwd bash bsdutils coreutils dash
	debconf debian-archive-keyring debianutils diffutils dpkg e2fsprogs findutils gcc-12-base gpgv
	grep gzip hostname init-system-helpers libacl1 libapt-pkg6.0 libattr1 libaudit1 libblkid1 libbz2-1.0
	libc-bin libc6 libcap-ng0 libcap2 libcom-err2 libcrypt1 libdb5.3 libdebconfclient0 libext2fs2
	libffi8 libgcc-s1 libgcrypt20 libgmp10 libgnutls30 libgpg-error0 libhogweed6 libidn2-0 liblz4-1
	liblzma5 libmd0 libmount1 libnettle8 libp11-kit0 libpam-modules libpam-runtime libpam0g libpcre2-8-0
	libseccomp2 libselinux1 libsemanage2 libsepol2 libsmartcols1 libss2 libstdc++6 libsystemd0
	libtasn1-6 libtinfo6 libudev1 libunistring2 libxxhash0 libzstd1 login logsave mawk mount
	ncurses-base ncurses-bin passwd perl-base sed sysvinit-utils tar tzdata usr-is-merged util-linux zlib1g`)

var locales = strings.Fields(`ca cs da de el es eu fi fr gl hu id it ja ko nb nl pl pt pt_BR ro ru sk sl sr sv tr uk vi zh_CN zh_TW`)

// debianBase is what a Debian base image holds besides the few files the
// demo looks at: per package its libraries or programs, documentation,
// translations and dpkg's file lists, about 20 MiB.
func debianBase(scale int) testimage.Layer {
	dir := testimage.Dir
	file := testimage.File
	mode := testimage.Mode
	l := testimage.Layer{
		dir("usr/share/doc", 0o755), dir("usr/share/locale", 0o755), dir("usr/share/perl5", 0o755),
		dir("var/lib/dpkg/info", 0o755),
	}
	for _, lang := range locales {
		l = append(l, dir("usr/share/locale/"+lang, 0o755), dir("usr/share/locale/"+lang+"/LC_MESSAGES", 0o755))
	}
	for i, p := range debianPackages {
		l = append(l, dir("usr/share/doc/"+p, 0o755),
			file("usr/share/doc/"+p+"/copyright", prose(p+"/copyright", (4+i%9)*kib/scale)),
			file("usr/share/doc/"+p+"/changelog.Debian.gz", noise(p+"/changelog", (3+i%5)*kib/scale)),
			file("var/lib/dpkg/info/"+p+".list", prose(p+".list", (1+i%4)*kib/scale)),
			file("var/lib/dpkg/info/"+p+".md5sums", prose(p+".md5sums", (1+i%3)*kib/scale)))
		switch {
		case p == "dash": // the base's own /usr/bin/dash
		case strings.HasPrefix(p, "lib"):
			so := strings.TrimSuffix(p, "-0") + ".so." + fmt.Sprint(1+i%3)
			l = append(l, file("usr/lib/x86_64-linux-gnu/"+so, binaryish(so, (60+(i*37)%400)*kib/scale), mode(0o644)))
		default:
			l = append(l, file("usr/bin/"+p, binaryish("bin/"+p, (30+(i*53)%250)*kib/scale), mode(0o755)))
		}
		if i%3 == 0 {
			for _, lang := range locales {
				mo := "usr/share/locale/" + lang + "/LC_MESSAGES/" + p + ".mo"
				l = append(l, file(mo, prose(mo, (6+i%7)*kib/scale)))
			}
		}
	}
	for i := range 120 {
		pm := fmt.Sprintf("usr/share/perl5/Debian/Module%03d.pm", i)
		if i == 0 {
			l = append(l, dir("usr/share/perl5/Debian", 0o755))
		}
		l = append(l, file(pm, prose(pm, (8+i%16)*kib/scale)))
	}
	return l
}

// assets is what a web service ships beside its binary and never reads at
// start-up: images, fonts and a JavaScript bundle, about 12 MiB.
func assets(extra int64, scale int) testimage.Layer {
	dir := testimage.Dir
	file := testimage.File
	mode := testimage.Mode
	l := testimage.Layer{
		dir("app/static/img", appMode|extra), dir("app/static/fonts", appMode|extra), dir("app/static/js", appMode|extra),
		file("app/static/js/app.bundle.js", prose("bundle", 1536*kib/scale), mode(0o644|extra)),
	}
	for i := range 36 {
		name := fmt.Sprintf("app/static/img/photo-%02d.jpg", i)
		l = append(l, file(name, noise(name, (160+(i*71)%320)*kib/scale), mode(0o644|extra)))
	}
	for _, f := range []string{"inter-regular", "inter-bold", "mono-regular"} {
		name := "app/static/fonts/" + f + ".woff2"
		l = append(l, file(name, noise(name, 96*kib/scale), mode(0o644|extra)))
	}
	return l
}

// Filesystem returns the six layers of the demo image, around the given
// demoapp binary. Entries are in directory-walk order, parent directories
// included, as a Docker build writes them.
func Filesystem(app []byte) []testimage.Layer { return filesystem(app, 1) }

// filesystem is Filesystem with the filler files (the base's packages, the
// app's assets) scale times smaller.
func filesystem(app []byte, scale int) []testimage.Layer {
	dir := testimage.Dir
	file := testimage.File
	sym := testimage.Symlink
	mode := testimage.Mode

	base := testimage.Layer{
		sym("bin", "usr/bin"),
		sym("lib", "usr/lib"),
		sym("lib64", "usr/lib64"),
		sym("sbin", "usr/sbin"),
		dir("boot", 0o755), dir("dev", 0o755), dir("etc", 0o755), dir("home", 0o755),
		dir("media", 0o755), dir("mnt", 0o755), dir("opt", 0o755), dir("proc", 0o555),
		dir("root", 0o700), dir("run", 0o755), dir("srv", 0o755), dir("sys", 0o555),
		dir("tmp", 0o1777), dir("usr", 0o755), dir("usr/bin", 0o755), dir("usr/lib", 0o755),
		dir("usr/lib64", 0o755), dir("usr/local", 0o755), dir("usr/sbin", 0o755),
		dir("usr/share", 0o755), dir("var", 0o755), dir("var/cache", 0o755),
		dir("var/lib", 0o755), dir("var/log", 0o755), dir("var/tmp", 0o1777),
		file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"+
			"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"+
			"_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
		file("etc/group", "root:x:0:\ndaemon:x:1:\nshadow:x:42:\nnogroup:x:65534:\n"),
		file("etc/shadow", "root:*:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n"+
			"_apt:*:19700:0:99999:7:::\nnobody:*:19700:0:99999:7:::\n", mode(0o640), testimage.Owner(0, 42)),
		file("etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"+
			"networks: files\nprotocols: db files\nservices: db files\n"),
		file("etc/debian_version", "12.5\n"),
		file("etc/issue", "Debian GNU/Linux 12 \\n \\l\n\n"),
		sym("etc/os-release", "../usr/lib/os-release"),
		file("usr/lib/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n"+
			"VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n"+
			"HOME_URL=\"https://www.debian.org/\"\n"),
		file("usr/bin/dash", noise("usr/bin/dash", 96*kib), mode(0o755)),
		sym("usr/bin/sh", "dash"),
		file("usr/bin/cat", noise("usr/bin/cat", 40*kib), mode(0o755)),
		file("usr/bin/ls", noise("usr/bin/ls", 64*kib), mode(0o755)),
		dir("usr/lib/x86_64-linux-gnu", 0o755),
		file("usr/lib/x86_64-linux-gnu/libc.so.6", noise("libc.so.6", 160*kib), mode(0o755)),
		file("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", noise("ld.so", 24*kib), mode(0o755)),
		sym("usr/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
		dir("var/lib/dpkg", 0o755),
		file("var/lib/dpkg/status", stanzas("status-base", 12*kib)),
	}
	base = append(base, debianBase(scale)...)

	install := testimage.Layer{
		dir("var/lib/apt", 0o755),
		dir("var/lib/apt/lists", 0o755),
		file("var/lib/apt/lists/lock", "", mode(0o640)),
		dir("var/lib/apt/lists/partial", 0o700, testimage.Owner(42, 0)),
		dir("var/cache/apt", 0o755),
		dir("var/cache/apt/archives", 0o755),
		file("var/cache/apt/archives/lock", "", mode(0o640)),
		dir("var/cache/apt/archives/partial", 0o700, testimage.Owner(42, 0)),
		file("var/lib/dpkg/status", stanzas("status-installed", 16*kib)),
		dir("var/log/apt", 0o755),
		file("var/log/apt/history.log", logText("history.log", 2*kib)),
		file("var/log/apt/term.log", logText("term.log", 6*kib), mode(0o640), testimage.Owner(0, 4)),
		file("var/log/dpkg.log", logText("dpkg.log", 8*kib)),
		// ca-certificates
		dir("etc/ssl", 0o755),
		dir("etc/ssl/certs", 0o755),
		file("etc/ssl/certs/ca-certificates.crt", pemBundle("bundle", 64, 1500)),
		dir("usr/share/ca-certificates", 0o755),
		dir("usr/share/ca-certificates/mozilla", 0o755),
		dir("usr/share/doc", 0o755),
		dir("usr/share/doc/ca-certificates", 0o755),
		file("usr/share/doc/ca-certificates/copyright", stanzas("copyright", 1*kib)),
		// tzdata
		dir("usr/share/zoneinfo", 0o755),
		dir("usr/share/zoneinfo/Etc", 0o755),
		file("usr/share/zoneinfo/Etc/UTC", tzifUTC()),
		testimage.Hardlink("usr/share/zoneinfo/Etc/Zulu", "usr/share/zoneinfo/Etc/UTC"),
		testimage.Hardlink("usr/share/zoneinfo/UTC", "usr/share/zoneinfo/Etc/UTC"),
		dir("usr/share/zoneinfo/Europe", 0o755),
		file("usr/share/zoneinfo/Europe/Paris", "TZif2"+noise("Paris", 2*kib)),
		dir("usr/share/zoneinfo/America", 0o755),
		file("usr/share/zoneinfo/America/New_York", "TZif2"+noise("New_York", 3*kib)),
		dir("usr/share/zoneinfo/Asia", 0o755),
		file("usr/share/zoneinfo/Asia/Tokyo", "TZif2"+noise("Tokyo", 1*kib)),
		sym("etc/localtime", "/usr/share/zoneinfo/Etc/UTC"),
		file("etc/timezone", "Etc/UTC\n"),
		dir("etc", 0o755), dir("usr", 0o755), dir("usr/share", 0o755),
		dir("var", 0o755), dir("var/cache", 0o755), dir("var/lib", 0o755), dir("var/log", 0o755),
	}
	for _, c := range mozillaCerts {
		crt := c + ".crt"
		install = append(install,
			file("usr/share/ca-certificates/mozilla/"+crt, pemCert(crt, 1500)),
			sym("etc/ssl/certs/"+c+".pem", "/usr/share/ca-certificates/mozilla/"+crt))
	}
	for _, l := range aptLists {
		content := noise(l.name, l.size)
		if l.text {
			content = stanzas(l.name, l.size)
		}
		install = append(install, file("var/lib/apt/lists/"+l.name, content))
	}
	for _, c := range aptCaches {
		install = append(install, file(c.name, noise(c.name, c.size)))
	}

	cleanup := testimage.Layer{
		dir("var", 0o755), dir("var/lib", 0o755), dir("var/lib/apt", 0o755),
		dir("var/lib/apt/lists", 0o755),
		testimage.Whiteout("var/lib/apt/lists/lock"),
		testimage.Whiteout("var/lib/apt/lists/partial"),
		dir("var/cache", 0o755), dir("var/cache/apt", 0o755), dir("var/cache/apt/archives", 0o755),
	}
	for _, l := range aptLists {
		cleanup = append(cleanup, testimage.Whiteout("var/lib/apt/lists/"+l.name))
	}
	for _, c := range aptCaches {
		cleanup = append(cleanup, testimage.Whiteout(c.name))
	}

	copyApp := func(extra int64) testimage.Layer {
		return append(testimage.Layer{
			dir("app", appMode|extra),
			file("app/demoapp", string(app), mode(appMode|extra)),
			file("app/config.json", configJSON, mode(0o644|extra)),
			dir("app/static", appMode|extra),
			file("app/static/index.html", indexHTML, mode(0o644|extra)),
		}, assets(extra, scale)...)
	}

	return []testimage.Layer{
		sortWalk(base),
		sortWalk(install),
		sortWalk(cleanup),
		sortWalk(copyApp(0)),
		sortWalk(copyApp(0o020)), // chmod -R g+w /app
		sortWalk(copyApp(0)),
	}
}
