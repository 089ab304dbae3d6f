package profile

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseELF(t *testing.T) {
	tests := []struct {
		name string
		spec elfSpec
	}{
		{"x86_64 program", elfSpec{interp: ldx86, needed: []string{"libz.so.1", "libc.so.6"}, runpath: "$ORIGIN/../lib"}},
		{"shared object", elfSpec{soname: "libfoo.so.1", needed: []string{"libc.so.6"}, rpath: "/opt/lib:/x"}},
		{"static", elfSpec{typ: elf.ET_EXEC, static: true}},
		{"i386", elfSpec{class: elf.ELFCLASS32, machine: elf.EM_386, interp: "/lib/ld-linux.so.2", needed: []string{"libc.so.6"}}},
		{"s390x big-endian", elfSpec{order: binary.BigEndian, machine: elf.EM_S390, interp: "/lib/ld64.so.1", needed: []string{"libc.so.6"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := buildELF(tc.spec)
			info, err := parseELF(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			s := tc.spec
			if info.interp != s.interp || info.rpath != s.rpath || info.runpath != s.runpath || info.soname != s.soname {
				t.Errorf("got interp %q rpath %q runpath %q soname %q", info.interp, info.rpath, info.runpath, info.soname)
			}
			if diff := cmp.Diff(s.needed, info.needed); diff != "" {
				t.Errorf("needed (-want +got):\n%s", diff)
			}
			if info.dynamic == s.static {
				t.Errorf("dynamic = %v", info.dynamic)
			}
			// debug/elf must agree on what it can see.
			f, err := elf.NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if f.Machine != info.machine || f.Class != info.class {
				t.Errorf("machine/class %v/%v, debug/elf says %v/%v", info.machine, info.class, f.Machine, f.Class)
			}
		})
	}
}

func TestParseELFHost(t *testing.T) {
	b, err := os.ReadFile("/bin/ls")
	if err != nil {
		t.Skip("no /bin/ls on this host")
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Skip("host /bin/ls is not ELF")
	}
	want, err := f.ImportedLibraries()
	if err != nil {
		t.Skip(err)
	}
	info, err := parseELF(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, info.needed); diff != "" {
		t.Errorf("needed (-debug/elf +ours):\n%s", diff)
	}
	if info.interp == "" {
		t.Errorf("no interpreter found in a dynamic /bin/ls")
	}
}

// patch returns a copy of b with v written at off in the ELF's byte order.
func patch(b []byte, off int, v any) []byte {
	c := append([]byte{}, b...)
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.LittleEndian, v)
	copy(c[off:], buf.Bytes())
	return c
}

func TestParseELFRejectsGarbage(t *testing.T) {
	good := buildELF(elfSpec{interp: ldx86, needed: []string{"libc.so.6"}})
	// ELF64 header offsets: e_phoff 32, e_phentsize 54, e_phnum 56; the
	// first program header (PT_INTERP) starts at 64 with p_offset at +8 and
	// p_filesz at +32; the third (PT_DYNAMIC) at 64+2*56.
	dynPh := 64 + 2*56
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"truncated header", good[:40], "reading ELF header"},
		{"not ELF", []byte("#!/bin/sh\n" + strings.Repeat("x", 64)), "not an ELF file"},
		{"bad class", patch(good, int(elf.EI_CLASS), uint8(9)), "unknown ELF class"},
		{"bad data", patch(good, int(elf.EI_DATA), uint8(7)), "data encoding"},
		{"relocatable", patch(good, 16, uint16(elf.ET_REL)), "cannot be executed"},
		{"huge phnum", patch(good, 56, uint16(0xfffe)), "too large"},
		{"bad phentsize", patch(good, 54, uint16(12)), "entry size"},
		{"phoff beyond EOF", patch(good, 32, uint64(1<<40)), "outside"},
		{"phoff overflow", patch(good, 32, uint64(1<<63)), "outside"},
		{"huge interp", patch(good, 64+32, uint64(1<<32)), "interpreter path of"},
		{"interp beyond EOF", patch(good, 64+8, uint64(1<<40)), "interpreter path"},
		{"huge dynamic", patch(good, dynPh+32, uint64(1<<40)), "dynamic section of"},
		{"dynamic beyond EOF", patch(good, dynPh+8, uint64(len(good))), "dynamic section"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseELF(bytes.NewReader(tc.b), int64(len(tc.b)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestParseELFBadStrings(t *testing.T) {
	good := buildELF(elfSpec{interp: ldx86, needed: []string{"libc.so.6"}})
	// The dynamic section (PT_DYNAMIC is the third program header) holds
	// DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_NULL, 16 bytes each.
	dynOff := int(binary.LittleEndian.Uint64(good[64+2*56+8:]))
	if elf.DynTag(binary.LittleEndian.Uint64(good[dynOff:])) != elf.DT_NEEDED {
		t.Fatal("unexpected synthetic ELF layout")
	}
	bad := patch(good, dynOff+8, uint64(1<<50))
	if _, err := parseELF(bytes.NewReader(bad), int64(len(bad))); err == nil || !strings.Contains(err.Error(), "outside the string table") {
		t.Fatalf("err = %v", err)
	}
	// A DT_STRTAB that no PT_LOAD maps.
	bad = patch(good, dynOff+16+8, uint64(0xdead0000))
	if _, err := parseELF(bytes.NewReader(bad), int64(len(bad))); err == nil || !strings.Contains(err.Error(), "outside the loadable segments") {
		t.Fatalf("err = %v", err)
	}
	// A string that runs to the end of the table without a NUL.
	bad = patch(good, dynOff+32+8, uint64(3))
	if _, err := parseELF(bytes.NewReader(bad), int64(len(bad))); err == nil || !strings.Contains(err.Error(), "not terminated") {
		t.Fatalf("err = %v", err)
	}
}

func TestReaderAtFallbacks(t *testing.T) {
	for _, mode := range []string{"readerat", "seeker", "prefix"} {
		t.Run(mode, func(t *testing.T) {
			m := glibcRoot()
			m.exe("/usr/bin/app", prog("libz.so.1"))
			m.seekOnly = mode == "seeker"
			m.noReadAt = mode == "prefix"
			p := mustStatic(t, m, Config{Entrypoint: []string{"app"}})
			want := cat([]string{"/usr/bin/app"}, loaderFiles, []string{
				"/usr/lib/x86_64-linux-gnu/libz.so.1",
				"/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
				"/usr/lib/x86_64-linux-gnu/libc.so.6",
			})
			if diff := cmp.Diff(want, p.Files); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

// ldCacheBytes builds a new-format ld.so.cache.
func ldCacheBytes(entries [][3]any) []byte {
	var strs bytes.Buffer
	hdr := 48 + 24*len(entries)
	type e struct {
		flags      uint32
		key, value uint32
		hwcap      uint64
	}
	var es []e
	for _, en := range entries {
		k := uint32(hdr + strs.Len())
		strs.WriteString(en[0].(string) + "\x00")
		v := uint32(hdr + strs.Len())
		strs.WriteString(en[1].(string) + "\x00")
		es = append(es, e{en[2].(uint32), k, v, 0})
	}
	var b bytes.Buffer
	b.WriteString(ldCacheMagicNew)
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	w(uint32(len(entries)))
	w(uint32(strs.Len()))
	w([4]byte{})
	w([4]uint32{})
	for _, x := range es {
		w(int32(x.flags))
		w(x.key)
		w(x.value)
		w(uint32(0))
		w(x.hwcap)
	}
	b.Write(strs.Bytes())
	return b.Bytes()
}

func TestLDCache(t *testing.T) {
	b := ldCacheBytes([][3]any{
		{"libfoo.so.1", "/opt/i386/libfoo.so.1", uint32(0x0003)},
		{"libfoo.so.1", "/opt/x64/libfoo.so.1", uint32(0x0303)},
		{"libbar.so", "/opt/arm/libbar.so", uint32(0x0a03)},
	})
	c, err := parseLDCache(b)
	if err != nil {
		t.Fatal(err)
	}
	x64 := archOf(&elfInfo{class: elf.ELFCLASS64, order: binary.LittleEndian, machine: elf.EM_X86_64})
	if got := c.lookup("libfoo.so.1", x64); !cmp.Equal(got, []string{"/opt/x64/libfoo.so.1"}) {
		t.Errorf("x86_64 lookup = %v", got)
	}
	i386 := archOf(&elfInfo{class: elf.ELFCLASS32, order: binary.LittleEndian, machine: elf.EM_386})
	if got := c.lookup("libfoo.so.1", i386); !cmp.Equal(got, []string{"/opt/i386/libfoo.so.1"}) {
		t.Errorf("i386 lookup = %v", got)
	}
	if got := c.lookup("libbar.so", x64); len(got) != 0 {
		t.Errorf("arm64 library offered to x86_64: %v", got)
	}
	for _, bad := range [][]byte{nil, []byte("garbage"), b[:30], append([]byte(ldCacheMagicNew), 0xff, 0xff, 0xff, 0x7f)} {
		if _, err := parseLDCache(bad); err == nil {
			t.Errorf("parseLDCache(%q) succeeded", bad)
		}
	}
}

func TestLDCacheHost(t *testing.T) {
	b, err := os.ReadFile("/etc/ld.so.cache")
	if err != nil || !bytes.HasPrefix(b, []byte(ldCacheMagicNew)) {
		t.Skip("no new-format /etc/ld.so.cache on this host")
	}
	c, err := parseLDCache(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.entries["libc.so.6"]) == 0 {
		t.Fatalf("libc.so.6 not in the host cache (%d names)", len(c.entries))
	}
}

func TestArchOf(t *testing.T) {
	tests := []struct {
		info elfInfo
		want string
	}{
		{elfInfo{class: elf.ELFCLASS64, order: binary.LittleEndian, machine: elf.EM_X86_64}, "x86_64-linux-gnu"},
		{elfInfo{class: elf.ELFCLASS64, order: binary.LittleEndian, machine: elf.EM_AARCH64}, "aarch64-linux-gnu"},
		{elfInfo{class: elf.ELFCLASS32, order: binary.LittleEndian, machine: elf.EM_ARM, flags: 0x05000400}, "arm-linux-gnueabihf"},
		{elfInfo{class: elf.ELFCLASS64, order: binary.LittleEndian, machine: elf.EM_PPC64}, "powerpc64le-linux-gnu"},
		{elfInfo{class: elf.ELFCLASS64, order: binary.BigEndian, machine: elf.EM_S390}, "s390x-linux-gnu"},
		{elfInfo{class: elf.ELFCLASS64, order: binary.LittleEndian, machine: elf.EM_RISCV}, "riscv64-linux-gnu"},
		{elfInfo{class: elf.ELFCLASS32, order: binary.LittleEndian, machine: elf.EM_386}, "i386-linux-gnu"},
	}
	for _, tc := range tests {
		if got := archOf(&tc.info).triplet; got != tc.want {
			t.Errorf("archOf(%v) = %q, want %q", tc.info.machine, got, tc.want)
		}
	}
}

func TestStaticGarbageELF(t *testing.T) {
	m := glibcRoot()
	good := buildELF(elfSpec{interp: ldx86, needed: []string{"libc.so.6"}})
	m.exe("/app/huge", patch(good, 56, uint16(0xfffe)))
	m.exe("/app/short", []byte("\x7fELF\x02\x01"))
	// A garbage library earlier in the search path is skipped with a warning.
	m.file("/opt/lib/libc.so.6", []byte("\x7fELF garbage"), 0o644)
	m.exe("/app/ok", buildELF(elfSpec{interp: ldx86, needed: []string{"libc.so.6"}, runpath: "/opt/lib"}))
	for ep, warn := range map[string]string{"/app/huge": "too large", "/app/short": "reading ELF header"} {
		p := mustStatic(t, m, Config{Entrypoint: []string{ep}})
		if !cmp.Equal(p.Files, []string{ep}) || !hasWarning(p, warn) {
			t.Errorf("%s: files %q warnings %q", ep, p.Files, p.Warnings)
		}
	}
	p := mustStatic(t, m, Config{Entrypoint: []string{"/app/ok"}})
	want := cat([]string{"/app/ok"}, loaderFiles, []string{x64lib + "libc.so.6"})
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if !hasWarning(p, "/opt/lib/libc.so.6: reading ELF header") {
		t.Errorf("warnings %q", p.Warnings)
	}
}
