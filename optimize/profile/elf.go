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

// openELF opens real and parses it, caching the result by path.
func (w *walker) openELF(real string) (*elfInfo, error) {
	if c, ok := w.elfCache[real]; ok {
		return c.info, c.err
	}
	info, err := w.openELFUncached(real)
	w.elfCache[real] = elfResult{info, err}
	return info, err
}

func (w *walker) openELFUncached(real string) (*elfInfo, error) {
	f, err := w.fsys.Open(real)
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
