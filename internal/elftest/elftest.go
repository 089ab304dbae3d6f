package elftest

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// Spec describes a synthetic ELF object. Zero fields take the defaults of
// an x86-64 little-endian shared object (ET_DYN).
type Spec struct {
	Class   elf.Class
	Order   binary.ByteOrder
	Machine elf.Machine
	Type    elf.Type
	Flags   uint32
	Interp  string
	Needed  []string
	RPath   string
	RunPath string
	SOName  string
	Static  bool // no PT_DYNAMIC
	// Rodata, when set, is written after the rest with section headers
	// for it (.rodata) and for their names (.shstrtab).
	Rodata []byte
}

// Build writes a minimal but well-formed ELF object: header, program
// headers (PT_INTERP, PT_LOAD over the whole file at a non-zero address,
// PT_DYNAMIC), the interpreter path, the string table and the dynamic
// section.
func Build(s Spec) []byte {
	if s.Class == 0 {
		s.Class = elf.ELFCLASS64
	}
	if s.Order == nil {
		s.Order = binary.LittleEndian
	}
	if s.Machine == 0 {
		s.Machine = elf.EM_X86_64
	}
	if s.Type == 0 {
		s.Type = elf.ET_DYN
	}
	is64 := s.Class == elf.ELFCLASS64
	ehsize, phentsize, dynent := 52, 32, 8
	if is64 {
		ehsize, phentsize, dynent = 64, 56, 16
	}
	const base = 0x10000
	nph := 1
	if s.Interp != "" {
		nph++
	}
	if !s.Static {
		nph++
	}
	off := ehsize + nph*phentsize
	interpOff := off
	off += len(s.Interp) + 1
	var strtab bytes.Buffer
	strtab.WriteByte(0)
	addStr := func(v string) uint64 {
		o := uint64(strtab.Len())
		strtab.WriteString(v)
		strtab.WriteByte(0)
		return o
	}
	type dyn struct {
		tag elf.DynTag
		val uint64
	}
	var dyns []dyn
	for _, n := range s.Needed {
		dyns = append(dyns, dyn{elf.DT_NEEDED, addStr(n)})
	}
	if s.RPath != "" {
		dyns = append(dyns, dyn{elf.DT_RPATH, addStr(s.RPath)})
	}
	if s.RunPath != "" {
		dyns = append(dyns, dyn{elf.DT_RUNPATH, addStr(s.RunPath)})
	}
	if s.SOName != "" {
		dyns = append(dyns, dyn{elf.DT_SONAME, addStr(s.SOName)})
	}
	strOff := off
	off += strtab.Len()
	off = (off + 7) &^ 7
	dynOff := off
	dyns = append(dyns, dyn{elf.DT_STRTAB, uint64(base + strOff)}, dyn{elf.DT_STRSZ, uint64(strtab.Len())}, dyn{elf.DT_NULL, 0})
	total := dynOff
	if !s.Static {
		total += len(dyns) * dynent
	}

	// Optional sections: .rodata, .shstrtab, then the section headers.
	shstrtab := "\x00.rodata\x00.shstrtab\x00"
	rodataOff, shstrOff, shoff, shnum, shentsize, shstrndx := 0, 0, 0, 0, 0, 0
	if s.Rodata != nil {
		rodataOff = total
		shstrOff = rodataOff + len(s.Rodata)
		shoff = (shstrOff + len(shstrtab) + 7) &^ 7
		shnum, shentsize, shstrndx = 3, 40, 2
		if is64 {
			shentsize = 64
		}
	}

	var b bytes.Buffer
	bo := s.Order
	w := func(v any) { _ = binary.Write(&b, bo, v) }
	var ident [16]byte
	copy(ident[:], elf.ELFMAG)
	ident[elf.EI_CLASS] = byte(s.Class)
	if bo == binary.LittleEndian {
		ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	} else {
		ident[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
	}
	ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	if is64 {
		w(elf.Header64{Ident: ident, Type: uint16(s.Type), Machine: uint16(s.Machine), Version: 1,
			Entry: base, Phoff: uint64(ehsize), Shoff: uint64(shoff), Flags: s.Flags, Ehsize: uint16(ehsize),
			Phentsize: uint16(phentsize), Phnum: uint16(nph), Shentsize: uint16(shentsize), Shnum: uint16(shnum), Shstrndx: uint16(shstrndx)})
	} else {
		w(elf.Header32{Ident: ident, Type: uint16(s.Type), Machine: uint16(s.Machine), Version: 1,
			Entry: base, Phoff: uint32(ehsize), Shoff: uint32(shoff), Flags: s.Flags, Ehsize: uint16(ehsize),
			Phentsize: uint16(phentsize), Phnum: uint16(nph), Shentsize: uint16(shentsize), Shnum: uint16(shnum), Shstrndx: uint16(shstrndx)})
	}
	prog := func(t elf.ProgType, o, sz int) {
		if is64 {
			w(elf.Prog64{Type: uint32(t), Off: uint64(o), Vaddr: uint64(base + o), Paddr: uint64(base + o), Filesz: uint64(sz), Memsz: uint64(sz), Align: 8})
		} else {
			w(elf.Prog32{Type: uint32(t), Off: uint32(o), Vaddr: uint32(base + o), Paddr: uint32(base + o), Filesz: uint32(sz), Memsz: uint32(sz), Align: 4})
		}
	}
	if s.Interp != "" {
		prog(elf.PT_INTERP, interpOff, len(s.Interp)+1)
	}
	prog(elf.PT_LOAD, 0, total)
	if !s.Static {
		prog(elf.PT_DYNAMIC, dynOff, len(dyns)*dynent)
	}
	b.WriteString(s.Interp)
	b.WriteByte(0)
	b.Write(strtab.Bytes())
	for b.Len() < dynOff {
		b.WriteByte(0)
	}
	if !s.Static {
		for _, d := range dyns {
			if is64 {
				w(int64(d.tag))
				w(d.val)
			} else {
				w(int32(d.tag))
				w(uint32(d.val))
			}
		}
	}
	if s.Rodata != nil {
		b.Write(s.Rodata)
		b.WriteString(shstrtab)
		for b.Len() < shoff {
			b.WriteByte(0)
		}
		sect := func(name uint32, t elf.SectionType, flags elf.SectionFlag, o, sz int) {
			if is64 {
				w(elf.Section64{Name: name, Type: uint32(t), Flags: uint64(flags), Addr: uint64(base + o), Off: uint64(o), Size: uint64(sz), Addralign: 1})
			} else {
				w(elf.Section32{Name: name, Type: uint32(t), Flags: uint32(flags), Addr: uint32(base + o), Off: uint32(o), Size: uint32(sz), Addralign: 1})
			}
		}
		sect(0, elf.SHT_NULL, 0, 0, 0)
		sect(1, elf.SHT_PROGBITS, elf.SHF_ALLOC, rodataOff, len(s.Rodata))
		sect(9, elf.SHT_STRTAB, 0, shstrOff, len(shstrtab))
	}
	return b.Bytes()
}
