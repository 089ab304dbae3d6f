package profile

import (
	"debug/elf"
	"encoding/binary"

	"github.com/coldstart-dev/coldstart/optimize/profile/internal/elfhdr"
	"github.com/coldstart-dev/coldstart/optimize/profile/internal/imagepath"
)

// elfInfo is what the loader needs from one ELF object, read by elfhdr:
// the file header, the program headers, PT_INTERP and PT_DYNAMIC. Section
// headers are never read, and every read is bounded.
type elfInfo = elfhdr.Info

// elfLoader follows what the kernel and the dynamic loader map when a
// program is executed (the ELF interpreter, ld.so.preload, ld.so.cache, the
// DT_NEEDED libraries) and what a program loads later with dlopen (Python
// extension modules, Node.js addons, libjvm.so). Its state spans the
// processes of one profile: the parsed objects, /etc/ld.so.cache and
// ld.so.conf, and the objects whose dependencies are already walked.
type elfLoader struct {
	c *core

	parsed    map[string]parsedELF // by real path
	startDone bool                 // the libc start-up files are listed
	cacheRead bool
	cache     *ldCache
	confRead  bool
	confDirs  []string
	walked    map[string]bool // real paths whose dependencies were walked
}

// parsedELF is the outcome of reading one ELF object.
type parsedELF struct {
	info *elfInfo
	err  error
}

func newELFLoader(c *core) *elfLoader {
	return &elfLoader{c: c, parsed: map[string]parsedELF{}, walked: map[string]bool{}}
}

// open parses the ELF object at real, caching the result by path.
func (l *elfLoader) open(real string) (*elfInfo, error) {
	if r, ok := l.parsed[real]; ok {
		return r.info, r.err
	}
	info, err := l.openUncached(real)
	l.parsed[real] = parsedELF{info, err}
	return info, err
}

func (l *elfLoader) openUncached(real string) (*elfInfo, error) {
	f, err := l.c.fsys.Open(real)
	if err != nil {
		return nil, imagepath.Underlying(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, imagepath.Underlying(err)
	}
	return elfhdr.Read(f, fi.Size())
}

// machineInfo describes the library directories of one ELF machine.
type machineInfo struct {
	triplet  string   // Debian multiarch tuple
	platform string   // $PLATFORM
	lib64    bool     // non-Debian 64-bit distributions use /lib64
	cache    []uint32 // ld.so.cache required-flag values accepted (nil: any)
}

// archOf maps an ELF object to its multiarch directories and the
// ld.so.cache flags of libraries it can load.
func archOf(info *elfInfo) machineInfo {
	is64 := info.Class == elf.ELFCLASS64
	le := info.Order == binary.LittleEndian
	switch info.Machine {
	case elf.EM_X86_64:
		if !is64 {
			return machineInfo{triplet: "x86_64-linux-gnux32", platform: "x86_64", cache: []uint32{0x0800}}
		}
		return machineInfo{triplet: "x86_64-linux-gnu", platform: "x86_64", lib64: true, cache: []uint32{0x0300}}
	case elf.EM_386:
		return machineInfo{triplet: "i386-linux-gnu", platform: "i686", cache: []uint32{0x0000}}
	case elf.EM_AARCH64:
		if !le {
			return machineInfo{triplet: "aarch64_be-linux-gnu", platform: "aarch64_be", lib64: true, cache: []uint32{0x0a00}}
		}
		return machineInfo{triplet: "aarch64-linux-gnu", platform: "aarch64", lib64: true, cache: []uint32{0x0a00}}
	case elf.EM_ARM:
		const efARMHardFloat = 0x400
		if info.Flags&efARMHardFloat != 0 {
			return machineInfo{triplet: "arm-linux-gnueabihf", platform: "v7l", cache: []uint32{0x0900}}
		}
		return machineInfo{triplet: "arm-linux-gnueabi", platform: "v5l", cache: []uint32{0x0000, 0x0b00}}
	case elf.EM_PPC64:
		if le {
			return machineInfo{triplet: "powerpc64le-linux-gnu", platform: "power8", lib64: true, cache: []uint32{0x0500}}
		}
		return machineInfo{triplet: "powerpc64-linux-gnu", platform: "power8", lib64: true, cache: []uint32{0x0500}}
	case elf.EM_PPC:
		return machineInfo{triplet: "powerpc-linux-gnu", platform: "ppc", cache: []uint32{0x0000}}
	case elf.EM_S390:
		if is64 {
			return machineInfo{triplet: "s390x-linux-gnu", platform: "z13", lib64: true, cache: []uint32{0x0400}}
		}
		return machineInfo{triplet: "s390-linux-gnu", platform: "s390", cache: []uint32{0x0000}}
	case elf.EM_RISCV:
		if is64 {
			return machineInfo{triplet: "riscv64-linux-gnu", platform: "riscv64", lib64: true, cache: []uint32{0x1000, 0x0f00}}
		}
	case elf.EM_MIPS:
		switch {
		case is64 && le:
			return machineInfo{triplet: "mips64el-linux-gnuabi64", platform: "mips64", lib64: true}
		case is64:
			return machineInfo{triplet: "mips64-linux-gnuabi64", platform: "mips64", lib64: true}
		case le:
			return machineInfo{triplet: "mipsel-linux-gnu", platform: "mips"}
		default:
			return machineInfo{triplet: "mips-linux-gnu", platform: "mips"}
		}
	case elf.EM_LOONGARCH:
		return machineInfo{triplet: "loongarch64-linux-gnu", platform: "loongarch64", lib64: true, cache: []uint32{0x1200, 0x1100}}
	case elf.EM_SPARCV9:
		return machineInfo{triplet: "sparc64-linux-gnu", platform: "sparc64", lib64: true, cache: []uint32{0x0100}}
	}
	return machineInfo{lib64: is64}
}

// compatible reports whether the loader of a would load b: same class,
// byte order and machine, and b must be a shared object or PIE.
func compatible(a, b *elfInfo) bool {
	return a.Class == b.Class && a.Order == b.Order && a.Machine == b.Machine && b.Type == elf.ET_DYN
}

// startFiles records, once per profile, the files libc and common runtimes
// read at start: name service and resolver configuration (glibc reads
// host.conf with the first host name lookup), the time zone, the
// locale (setlocale reads locale.alias, the locale archive or the C.utf8
// files, and iconv's module cache) and the CA bundle.
func (l *elfLoader) startFiles(p *process) {
	if l.startDone {
		return
	}
	l.startDone = true
	for _, f := range []string{
		"/etc/nsswitch.conf",
		"/etc/passwd",
		"/etc/group",
		"/etc/hosts",
		"/etc/host.conf",
		"/etc/resolv.conf",
		"/etc/localtime",
		"/usr/share/locale/locale.alias",
	} {
		l.c.use(f)
	}
	if _, ok := l.c.use("/usr/lib/locale/locale-archive"); !ok {
		l.c.useTree("/usr/lib/locale/C.utf8", 2)
	}
	if p != nil && p.arch.triplet != "" {
		l.c.use("/usr/lib/" + p.arch.triplet + "/gconv/gconv-modules.cache")
	}
	for _, ca := range []string{
		"/etc/ssl/certs/ca-certificates.crt",
		"/etc/pki/tls/certs/ca-bundle.crt",
		"/etc/ssl/ca-bundle.pem",
		"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
		"/etc/ssl/cert.pem",
	} {
		if _, ok := l.c.use(ca); ok {
			break
		}
	}
}

// useOpenSSLConf records the configuration file OpenSSL reads when a program
// initialises it: conf (a command-line option) if set, else $OPENSSL_CONF,
// else openssl.cnf in OpenSSL's directory, the first of the usual ones that
// exists (Debian's /usr/lib/ssl/openssl.cnf is a link into /etc/ssl).
func (c *core) useOpenSSLConf(conf string, env map[string]string, cwd string) {
	if conf == "" {
		conf = env["OPENSSL_CONF"]
	}
	if conf != "" {
		c.use(cleanAbs(cwd, conf))
		return
	}
	for _, f := range []string{"/usr/lib/ssl/openssl.cnf", "/usr/local/ssl/openssl.cnf", "/etc/ssl/openssl.cnf", "/etc/pki/tls/openssl.cnf"} {
		if _, ok := c.use(f); ok {
			return
		}
	}
}
