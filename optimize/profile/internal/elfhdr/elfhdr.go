package elfhdr

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
)

// The ELF reader looks only at what the kernel and the dynamic loader look
// at: the file header, the program headers, PT_INTERP and the PT_DYNAMIC
// entries with their strings. Section headers are never read, so stripped and
// sstrip'ed binaries work, and every read is bounded before it is made.
const (
	maxPhdrBytes   = 64 << 10 // program header table
	maxInterpBytes = 4096     // PATH_MAX
	maxDynBytes    = 1 << 20  // dynamic section
	maxDynString   = 4096     // one NEEDED / RPATH / SONAME string
	maxNeeded      = 1024     // DT_NEEDED entries per object
	maxELFBuffer   = 16 << 20 // prefix read from files that cannot seek
)

// Info is what the kernel and the dynamic loader need from one ELF object.
type Info struct {
	Class   elf.Class
	Order   binary.ByteOrder
	Machine elf.Machine
	Type    elf.Type
	Flags   uint32 // e_flags
	Interp  string // PT_INTERP, "" when static
	Dynamic bool   // has PT_DYNAMIC
	Needed  []string
	RPath   string
	RunPath string
	SOName  string
}

// ErrNotELF reports a file without the ELF magic.
var ErrNotELF = errors.New("not an ELF file")

// Parse reads the loader-relevant parts of the ELF object in r (size bytes).
func Parse(r io.ReaderAt, size int64) (*Info, error) {
	var ident [elf.EI_NIDENT]byte
	if err := readFull(r, ident[:], 0, size); err != nil {
		return nil, fmt.Errorf("reading ELF header: %w", err)
	}
	if !bytes.Equal(ident[:4], []byte(elf.ELFMAG)) {
		return nil, ErrNotELF
	}
	info := &Info{Class: elf.Class(ident[elf.EI_CLASS])}
	switch elf.Data(ident[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		info.Order = binary.LittleEndian
	case elf.ELFDATA2MSB:
		info.Order = binary.BigEndian
	default:
		return nil, fmt.Errorf("unknown ELF data encoding %d", ident[elf.EI_DATA])
	}
	if elf.Version(ident[elf.EI_VERSION]) != elf.EV_CURRENT {
		return nil, fmt.Errorf("unknown ELF version %d", ident[elf.EI_VERSION])
	}
	bo := info.Order

	var phoff uint64
	var phentsize, phnum, wantEnt int
	switch info.Class {
	case elf.ELFCLASS64:
		var h elf.Header64
		if err := readStruct(r, &h, 0, size, bo); err != nil {
			return nil, fmt.Errorf("reading ELF header: %w", err)
		}
		info.Type, info.Machine, info.Flags = elf.Type(h.Type), elf.Machine(h.Machine), h.Flags
		phoff, phentsize, phnum = h.Phoff, int(h.Phentsize), int(h.Phnum)
		wantEnt = binary.Size(elf.Prog64{})
	case elf.ELFCLASS32:
		var h elf.Header32
		if err := readStruct(r, &h, 0, size, bo); err != nil {
			return nil, fmt.Errorf("reading ELF header: %w", err)
		}
		info.Type, info.Machine, info.Flags = elf.Type(h.Type), elf.Machine(h.Machine), h.Flags
		phoff, phentsize, phnum = uint64(h.Phoff), int(h.Phentsize), int(h.Phnum)
		wantEnt = binary.Size(elf.Prog32{})
	default:
		return nil, fmt.Errorf("unknown ELF class %d", ident[elf.EI_CLASS])
	}
	if info.Type != elf.ET_EXEC && info.Type != elf.ET_DYN {
		return nil, fmt.Errorf("ELF type %v cannot be executed or loaded", info.Type)
	}
	if phnum == 0 {
		return info, nil
	}
	if phentsize != wantEnt {
		return nil, fmt.Errorf("ELF program header entry size %d, want %d", phentsize, wantEnt)
	}
	if phnum == 0xffff || phnum*phentsize > maxPhdrBytes {
		return nil, fmt.Errorf("ELF program header table of %d entries is too large", phnum)
	}
	if phoff > uint64(size) || uint64(phnum*phentsize) > uint64(size)-phoff {
		return nil, fmt.Errorf("ELF program header table [%d, +%d) is outside the %d-byte file", phoff, phnum*phentsize, size)
	}
	phdrs := make([]byte, phnum*phentsize)
	if err := readFull(r, phdrs, int64(phoff), size); err != nil {
		return nil, fmt.Errorf("reading ELF program headers: %w", err)
	}

	type seg struct{ typ, off, vaddr, filesz uint64 }
	segs := make([]seg, 0, phnum)
	for i := 0; i < phnum; i++ {
		b := phdrs[i*phentsize : (i+1)*phentsize]
		var s seg
		if info.Class == elf.ELFCLASS64 {
			var p elf.Prog64
			_ = binary.Read(bytes.NewReader(b), bo, &p)
			s = seg{uint64(p.Type), p.Off, p.Vaddr, p.Filesz}
		} else {
			var p elf.Prog32
			_ = binary.Read(bytes.NewReader(b), bo, &p)
			s = seg{uint64(p.Type), uint64(p.Off), uint64(p.Vaddr), uint64(p.Filesz)}
		}
		segs = append(segs, s)
	}

	var dyn *seg
	for i := range segs {
		s := &segs[i]
		switch elf.ProgType(s.typ) {
		case elf.PT_INTERP:
			if info.Interp != "" {
				continue
			}
			if s.filesz == 0 || s.filesz > maxInterpBytes {
				return nil, fmt.Errorf("ELF interpreter path of %d bytes", s.filesz)
			}
			b := make([]byte, s.filesz)
			if err := readFull(r, b, int64(s.off), size); err != nil {
				return nil, fmt.Errorf("reading ELF interpreter path: %w", err)
			}
			if i := bytes.IndexByte(b, 0); i >= 0 {
				b = b[:i]
			}
			if len(b) == 0 {
				return nil, fmt.Errorf("empty ELF interpreter path")
			}
			info.Interp = string(b)
		case elf.PT_DYNAMIC:
			if dyn == nil {
				dyn = s
			}
		}
	}
	if dyn == nil {
		return info, nil
	}
	info.Dynamic = true
	if dyn.filesz > maxDynBytes {
		return nil, fmt.Errorf("ELF dynamic section of %d bytes is too large", dyn.filesz)
	}
	dynb := make([]byte, dyn.filesz)
	if err := readFull(r, dynb, int64(dyn.off), size); err != nil {
		return nil, fmt.Errorf("reading ELF dynamic section: %w", err)
	}
	entSize := 16
	if info.Class == elf.ELFCLASS32 {
		entSize = 8
	}
	var strtab, strsz uint64
	var haveStrtab bool
	var neededOff []uint64
	var rpathOff, runpathOff, sonameOff uint64
	var haveRpath, haveRunpath, haveSoname bool
	for off := 0; off+entSize <= len(dynb); off += entSize {
		var tag int64
		var val uint64
		if entSize == 16 {
			tag = int64(bo.Uint64(dynb[off:]))
			val = bo.Uint64(dynb[off+8:])
		} else {
			tag = int64(int32(bo.Uint32(dynb[off:])))
			val = uint64(bo.Uint32(dynb[off+4:]))
		}
		switch elf.DynTag(tag) {
		case elf.DT_NULL:
			off = len(dynb)
		case elf.DT_NEEDED:
			if len(neededOff) >= maxNeeded {
				return nil, fmt.Errorf("more than %d DT_NEEDED entries", maxNeeded)
			}
			neededOff = append(neededOff, val)
		case elf.DT_STRTAB:
			strtab, haveStrtab = val, true
		case elf.DT_STRSZ:
			strsz = val
		case elf.DT_RPATH:
			rpathOff, haveRpath = val, true
		case elf.DT_RUNPATH:
			runpathOff, haveRunpath = val, true
		case elf.DT_SONAME:
			sonameOff, haveSoname = val, true
		}
	}
	if len(neededOff) == 0 && !haveRpath && !haveRunpath && !haveSoname {
		return info, nil
	}
	if !haveStrtab {
		return nil, fmt.Errorf("ELF dynamic section without a string table")
	}
	// DT_STRTAB is a virtual address: map it to a file offset through the
	// PT_LOAD segment that contains it, as the loader sees the file mapped.
	strOff, strEnd, ok := uint64(0), uint64(0), false
	for _, s := range segs {
		if elf.ProgType(s.typ) == elf.PT_LOAD && strtab >= s.vaddr && strtab-s.vaddr < s.filesz {
			strOff = s.off + (strtab - s.vaddr)
			strEnd = s.off + s.filesz
			ok = true
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("ELF string table at %#x is outside the loadable segments", strtab)
	}
	if strsz > 0 && strOff+strsz < strEnd {
		strEnd = strOff + strsz
	}
	str := func(o uint64) (string, error) {
		if o >= strEnd-strOff {
			return "", fmt.Errorf("ELF string offset %d is outside the string table", o)
		}
		n := strEnd - strOff - o
		if n > maxDynString {
			n = maxDynString
		}
		b := make([]byte, n)
		if err := readFull(r, b, int64(strOff+o), size); err != nil {
			return "", fmt.Errorf("reading ELF string: %w", err)
		}
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return "", fmt.Errorf("ELF string at %d is not terminated within %d bytes", o, n)
		}
		return string(b[:i]), nil
	}
	for _, o := range neededOff {
		s, err := str(o)
		if err != nil {
			return nil, err
		}
		if s != "" {
			info.Needed = append(info.Needed, s)
		}
	}
	var err error
	if haveRpath {
		if info.RPath, err = str(rpathOff); err != nil {
			return nil, err
		}
	}
	if haveRunpath {
		if info.RunPath, err = str(runpathOff); err != nil {
			return nil, err
		}
	}
	if haveSoname {
		if info.SOName, err = str(sonameOff); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// readFull reads len(b) bytes at off, failing cleanly past the end of a
// size-byte file.
func readFull(r io.ReaderAt, b []byte, off, size int64) error {
	if off < 0 || off > size || int64(len(b)) > size-off {
		return fmt.Errorf("range [%d, +%d) is outside the %d-byte file", off, len(b), size)
	}
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func readStruct(r io.ReaderAt, v any, off, size int64, bo binary.ByteOrder) error {
	b := make([]byte, binary.Size(v))
	if err := readFull(r, b, off, size); err != nil {
		return err
	}
	return binary.Read(bytes.NewReader(b), bo, v)
}

// Read parses the ELF object f of size bytes. It reads f directly when f
// implements io.ReaderAt, through Seek when it can seek, otherwise from a
// prefix of at most 16 MiB.
func Read(f fs.File, size int64) (*Info, error) {
	ra, size, err := readerAt(f, size)
	if err != nil {
		return nil, err
	}
	return Parse(ra, size)
}

// readerAt gives random access to f: directly when it implements
// io.ReaderAt, through Seek when it can seek, otherwise from a bounded prefix.
func readerAt(f fs.File, size int64) (io.ReaderAt, int64, error) {
	if ra, ok := f.(io.ReaderAt); ok {
		return ra, size, nil
	}
	if s, ok := f.(io.ReadSeeker); ok {
		return &seekReaderAt{rs: s}, size, nil
	}
	n := size
	if n > maxELFBuffer {
		n = maxELFBuffer
	}
	b, err := io.ReadAll(io.LimitReader(f, n))
	if err != nil {
		return nil, 0, err
	}
	return bytes.NewReader(b), int64(len(b)), nil
}

// seekReaderAt adapts an io.ReadSeeker to io.ReaderAt.
type seekReaderAt struct {
	mu sync.Mutex
	rs io.ReadSeeker
}

func (s *seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(s.rs, p)
}
