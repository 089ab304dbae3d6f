package podman

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/coldstart-dev/coldstart/internal/testimage"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BaseLayer is the base layer of the test images: a static busybox as
// /bin/busybox with /bin/sh and /bin/find, /etc with passwd, group and a
// shadow file of group 42, /etc/motd, and the directories a container
// needs.
func BaseLayer(busybox []byte) testimage.Layer {
	return testimage.Layer{
		testimage.Dir("bin", 0o755),
		testimage.File("bin/busybox", string(busybox), testimage.Mode(0o755)),
		testimage.Symlink("bin/sh", "busybox"),
		testimage.Symlink("bin/find", "busybox"),
		testimage.Dir("etc", 0o755),
		testimage.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", testimage.Mode(0o644)),
		testimage.File("etc/group", "root:x:0:\nshadow:x:42:\n", testimage.Mode(0o644)),
		testimage.File("etc/shadow", "root:*:19000:0:99999:7:::\n", testimage.Mode(0o640), testimage.Owner(0, 42)),
		testimage.File("etc/motd", "deleted above\n", testimage.Mode(0o644)),
		testimage.Dir("proc", 0o755), testimage.Dir("sys", 0o755), testimage.Dir("dev", 0o755),
		testimage.Dir("run", 0o755), testimage.Dir("tmp", 0o1777), testimage.Dir("root", 0o700),
	}
}

// Image is a two-layer gzip image that runs with a static busybox: the
// BaseLayer and the application layer app, whose /app/main.sh is the
// entrypoint.
func Image(busybox []byte, app testimage.Layer) (v1.Image, error) {
	var ls []v1.Layer
	for _, l := range []testimage.Layer{BaseLayer(busybox), app} {
		c, err := l.Compressed(compression.GZip, testimage.WithParents())
		if err != nil {
			return nil, err
		}
		ls = append(ls, c)
	}
	return testimage.Image(v1.Config{Entrypoint: []string{"/bin/sh", "/app/main.sh"}}, ls...)
}

// PseudoRandom returns n incompressible bytes that depend on seed.
func PseudoRandom(seed string, n int) string {
	b := make([]byte, 0, n+sha256.Size)
	for i := 0; len(b) < n; i++ {
		s := sha256.Sum256(fmt.Appendf(nil, "%s %d", seed, i))
		b = append(b, s[:]...)
	}
	return string(b[:n])
}

// AppVersion is an application layer of many files: /app/main.sh, which
// prints "ready", a 600 KiB data file and 200 modules of 2 to 40 KiB of
// compressible text; version v2 changes ten of the modules and adds one.
func AppVersion(v2 bool) testimage.Layer {
	l := testimage.Layer{
		testimage.Dir("app", 0o755),
		testimage.File("app/main.sh", "#!/bin/sh\necho ready\n", testimage.Mode(0o755)),
		testimage.File("app/data.bin", PseudoRandom("data", 600<<10), testimage.Mode(0o644)),
	}
	for i := range 200 {
		seed := fmt.Sprintf("module %d", i)
		if v2 && i%20 == 0 {
			seed += " v2"
		}
		text := strings.Repeat(PseudoRandom(seed, 64)+"\n", (2<<10+i*190)/65)
		l = append(l, testimage.File(fmt.Sprintf("app/lib/mod%03d.py", i), text, testimage.Mode(0o644)))
	}
	if v2 {
		l = append(l, testimage.File("app/lib/added.py", strings.Repeat(PseudoRandom("added", 64)+"\n", 100), testimage.Mode(0o644)))
	}
	return l
}
