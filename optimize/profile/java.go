package profile

import (
	"path"
	"sort"
	"strings"
)

// maxArgFiles bounds the @argfiles one java command line may read.
const maxArgFiles = 16

// javaAnalyzer follows Java programs (java): the JVM's runtime under
// JAVA_HOME, @argfiles, -jar, agents and the class and module paths. It
// keeps no state across processes.
type javaAnalyzer struct {
	c *core
}

func (ja *javaAnalyzer) finish() {}

// start follows a JVM start: @argfiles, the -jar file (the launcher reads
// its manifest), jvm.cfg, libjvm.so and its libraries, libjimage, the
// runtime image lib/modules (or rt.jar), libjava, the class data sharing
// archive, the native libraries and configuration files the class library
// loads at start, then agent jars and the class path.
// JAVA_HOME is the real java binary's ../ (JDK 8's jre/ layout works too).
func (ja *javaAnalyzer) start(x *execution) {
	c, p, real, argv, env, cwd := ja.c, x.proc, x.real, x.argv, x.env, x.cwd
	home := path.Dir(path.Dir(real))
	var jar, cp string
	var agents, modpath []string
	cpSet := false
	argFiles := 0
	args := append(strings.Fields(env["JDK_JAVA_OPTIONS"]), argv[1:]...)
	for _, a := range strings.Fields(env["JAVA_TOOL_OPTIONS"]) {
		if j, ok := strings.CutPrefix(a, "-javaagent:"); ok {
			j, _, _ = strings.Cut(j, "=")
			agents = append(agents, j)
		}
	}
loop:
	for len(args) > 0 {
		a := args[0]
		args = args[1:]
		if strings.HasPrefix(a, "@") && len(a) > 1 {
			argFiles++
			if argFiles > maxArgFiles {
				continue
			}
			r, ok := c.use(cleanAbs(cwd, a[1:]))
			if !ok {
				c.warnf("java: argument file %s not found in the image", a[1:])
				continue
			}
			if b, ok := c.readText(r.Real); ok {
				args = append(argFileArgs(string(b)), args...)
			}
			continue
		}
		if !strings.HasPrefix(a, "-") {
			break // the main class; the rest are its arguments
		}
		name, val, hasVal := strings.Cut(a, "=")
		next := func() string {
			if hasVal {
				return val
			}
			if len(args) == 0 {
				return ""
			}
			v := args[0]
			args = args[1:]
			return v
		}
		switch {
		case a == "-jar":
			if len(args) > 0 {
				jar = args[0]
			}
			break loop
		case a == "-cp" || a == "-classpath":
			cp, cpSet = next(), true
		case name == "--class-path":
			cp, cpSet = next(), true
		case a == "-p" || name == "--module-path":
			modpath = append(modpath, strings.Split(next(), ":")...)
		case a == "-m" || name == "--module":
			break loop
		case strings.HasPrefix(a, "-javaagent:"):
			j, _, _ := strings.Cut(strings.TrimPrefix(a, "-javaagent:"), "=")
			agents = append(agents, j)
		case name == "--add-modules" || name == "--add-opens" || name == "--add-exports" || name == "--add-reads" ||
			name == "--patch-module" || name == "--limit-modules" || name == "--upgrade-module-path":
			next()
		}
	}
	if !cpSet && jar == "" {
		cp = env["CLASSPATH"]
	}

	if jar != "" {
		if _, ok := c.use(cleanAbs(cwd, jar)); !ok {
			c.warnf("java: jar %s not found in the image", jar)
		}
	}
	lib := path.Join(home, "lib")
	if _, ok := c.isDir(path.Join(home, "jre", "lib")); ok {
		if _, ok := c.resolveFile(path.Join(lib, "modules")); !ok {
			lib = path.Join(home, "jre", "lib") // JDK 8
		}
	}
	c.use(path.Join(lib, "jvm.cfg"))
	var vmDir string
	for _, d := range []string{"server", javaArch(p.arch) + "/server", "client", javaArch(p.arch) + "/client"} {
		if _, ok := c.resolveFile(path.Join(lib, d, "libjvm.so")); ok {
			vmDir = path.Join(lib, d)
			break
		}
	}
	libDir := ""
	if vmDir == "" {
		c.warnf("java: libjvm.so not found under %s", lib)
	} else {
		// The order HotSpot opens them in: libjvm, libjimage and the runtime
		// image, libjava, then the class data sharing archive.
		libDir = path.Dir(vmDir)
		c.elf.loadLibrary(p, path.Join(vmDir, "libjvm.so"))
		c.elf.loadLibrary(p, path.Join(libDir, "libjimage.so"))
		if _, ok := c.use(path.Join(lib, "modules")); !ok {
			c.use(path.Join(lib, "rt.jar"))
		}
		c.elf.loadLibrary(p, path.Join(libDir, "libjava.so"))
		c.use(path.Join(vmDir, "classes.jsa"))
		// Then, as a JDK 17 observed under fanotify loads them for a jar
		// that serves on the network: the vector math library (x86-64,
		// JDK 16+), the file system and network libraries the class
		// loaders use, and zip for jars. Small files, listed when present.
		for _, l := range []string{"libjsvml.so", "libnio.so", "libnet.so", "libzip.so"} {
			if _, ok := c.resolveFile(path.Join(libDir, l)); ok {
				c.elf.loadLibrary(p, path.Join(libDir, l))
			}
		}
	}
	if _, ok := c.use(path.Join(home, "conf", "security", "java.security")); !ok {
		c.use(path.Join(lib, "security", "java.security"))
	}
	// java.util.logging's and java.net's configuration, and the extended
	// socket options library, read when the program logs or opens a
	// socket, as services do at start.
	if _, ok := c.use(path.Join(home, "conf", "logging.properties")); !ok {
		c.use(path.Join(lib, "logging.properties"))
	}
	if libDir != "" {
		if _, ok := c.resolveFile(path.Join(libDir, "libextnet.so")); ok {
			c.elf.loadLibrary(p, path.Join(libDir, "libextnet.so"))
		}
	}
	if _, ok := c.use(path.Join(home, "conf", "net.properties")); !ok {
		c.use(path.Join(lib, "net.properties"))
	}
	for _, a := range agents {
		c.use(cleanAbs(cwd, a))
	}
	for _, e := range modpath {
		ja.classPathEntry(cleanAbs(cwd, e), true)
	}
	for _, e := range strings.Split(cp, ":") {
		if e == "" {
			continue
		}
		ja.classPathEntry(cleanAbs(cwd, e), false)
	}
}

// classPathEntry records a class path element: a jar, every jar of "dir/*"
// (sorted), or on a module path every jar of a directory. Plain class
// directories are read lazily, class by class, and are left out.
func (ja *javaAnalyzer) classPathEntry(e string, dirJars bool) {
	c := ja.c
	dir := ""
	if strings.HasSuffix(e, "/*") {
		dir = strings.TrimSuffix(e, "/*")
	} else if _, ok := c.isDir(e); ok {
		if !dirJars {
			return
		}
		dir = e
	}
	if dir == "" {
		c.use(e)
		return
	}
	r, ok := c.isDir(dir)
	if !ok {
		return
	}
	ents, err := c.fsys.ReadDir(r.Real)
	if err != nil {
		return
	}
	var jars []string
	for _, en := range ents {
		if n := en.Name(); strings.HasSuffix(n, ".jar") || strings.HasSuffix(n, ".JAR") {
			jars = append(jars, n)
		}
	}
	sort.Strings(jars)
	for _, j := range jars {
		c.use(path.Join(dir, j))
	}
}

// argFileArgs splits a java @argfile: whitespace-separated, with quotes and
// # comments.
func argFileArgs(s string) []string {
	var out []string
	var b strings.Builder
	in := false
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
			} else {
				b.WriteByte(c)
			}
		case c == '"' || c == '\'':
			q, in = c, true
		case c == '#' && !in:
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, b.String())
	}
	return out
}

// javaArch is the JDK 8 directory name of a machine under jre/lib.
func javaArch(a machineInfo) string {
	switch a.triplet {
	case "x86_64-linux-gnu":
		return "amd64"
	case "aarch64-linux-gnu":
		return "aarch64"
	case "i386-linux-gnu":
		return "i386"
	case "powerpc64le-linux-gnu":
		return "ppc64le"
	case "s390x-linux-gnu":
		return "s390x"
	case "arm-linux-gnueabihf", "arm-linux-gnueabi":
		return "arm"
	}
	return "amd64"
}
